//! S3 components against the real S3 server (Garage) from scripts/services.sh.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use coffer_components::RestoreOptions;
use coffer_model::component::ComponentSpec;
use coffer_testkit::service_setting;
use common::{Fixture, spec};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

const SIGN: Duration = Duration::from_secs(600);

/// A minimal S3 client for setting up and checking buckets.
struct S3 {
    endpoint: String,
    region: String,
    creds: Credentials,
    agent: ureq::Agent,
}

/// An object as the test compares it.
#[derive(Debug, PartialEq, Eq)]
struct Object {
    body: Vec<u8>,
    content_type: Option<String>,
    meta: BTreeMap<String, String>,
}

impl S3 {
    fn from_env() -> Option<Self> {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build();
        Some(Self {
            endpoint: service_setting("COFFER_TEST_S3_ENDPOINT")?,
            region: service_setting("COFFER_TEST_S3_REGION")?,
            creds: Credentials::new(
                service_setting("COFFER_TEST_S3_ACCESS_KEY")?,
                service_setting("COFFER_TEST_S3_SECRET_KEY")?,
            ),
            agent: ureq::Agent::new_with_config(config),
        })
    }

    fn bucket(&self, name: &str) -> Bucket {
        Bucket::new(
            self.endpoint.parse().unwrap(),
            UrlStyle::Path,
            name.to_owned(),
            self.region.clone(),
        )
        .unwrap()
    }

    fn put(&self, bucket: &str, key: &str, body: &[u8], ct: Option<&str>, meta: &[(&str, &str)]) {
        let b = self.bucket(bucket);
        let mut action = b.put_object(Some(&self.creds), key);
        let mut headers: Vec<(String, String)> = meta
            .iter()
            .map(|(k, v)| (format!("x-amz-meta-{k}"), (*v).to_owned()))
            .collect();
        if let Some(ct) = ct {
            headers.push(("content-type".into(), ct.into()));
        }
        for (k, v) in &headers {
            action.headers_mut().insert(k.clone(), v.clone());
        }
        let mut req = self.agent.put(action.sign(SIGN).as_str());
        for (k, v) in &headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let r = req.send(body).unwrap();
        assert!(r.status().is_success(), "put {key}: {}", r.status());
    }

    fn delete(&self, bucket: &str, key: &str) {
        let b = self.bucket(bucket);
        let url = b.delete_object(Some(&self.creds), key).sign(SIGN);
        self.agent.delete(url.as_str()).call().unwrap();
    }

    fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let b = self.bucket(bucket);
        let mut action = b.list_objects_v2(Some(&self.creds));
        action.with_prefix(prefix);
        let mut r = self.agent.get(action.sign(SIGN).as_str()).call().unwrap();
        let text = r.body_mut().read_to_string().unwrap();
        let page = rusty_s3::actions::ListObjectsV2::parse_response(&text).unwrap();
        assert!(page.next_continuation_token.is_none());
        page.contents.into_iter().map(|o| o.key).collect()
    }

    /// Every object under `prefix`, keyed without the prefix.
    fn objects(&self, bucket: &str, prefix: &str) -> BTreeMap<String, Object> {
        let b = self.bucket(bucket);
        let mut out = BTreeMap::new();
        for key in self.keys(bucket, prefix) {
            let url = b.get_object(Some(&self.creds), &key).sign(SIGN);
            let mut r = self.agent.get(url.as_str()).call().unwrap();
            assert!(r.status().is_success());
            let content_type = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned());
            let meta = r
                .headers()
                .iter()
                .filter_map(|(k, v)| {
                    Some((
                        k.as_str().strip_prefix("x-amz-meta-")?.to_owned(),
                        v.to_str().ok()?.to_owned(),
                    ))
                })
                .collect();
            let body = r
                .body_mut()
                .with_config()
                .limit(1 << 30)
                .read_to_vec()
                .unwrap();
            out.insert(
                key[prefix.len()..].to_owned(),
                Object {
                    body,
                    content_type,
                    meta,
                },
            );
        }
        out
    }

    fn spec(&self, bucket: &str, prefix: &str, extra: &str) -> ComponentSpec {
        spec(&format!(
            "name = \"blobs\"\nkind = \"s3\"\nendpoint = \"{}\"\nregion = \"{}\"\nbucket = \"{bucket}\"\n\
             prefix = \"{prefix}\"\naccess_key = {{ env = \"COFFER_TEST_S3_ACCESS_KEY\" }}\n\
             secret_key = {{ env = \"COFFER_TEST_S3_SECRET_KEY\" }}\n{extra}",
            self.endpoint, self.region
        ))
    }
}

#[test]
fn s3_round_trip_keeps_keys_bytes_and_metadata() {
    let (Some(s3), Some(bucket)) = (S3::from_env(), service_setting("COFFER_TEST_S3_BUCKET"))
    else {
        return;
    };
    let f = Fixture::new();
    let prefix = format!("src-{}/", std::process::id());
    let big = coffer_testkit::tree::random_bytes(3, 20 << 20); // multipart on restore
    let put = |k: &str, body: &[u8], ct: Option<&str>, meta: &[(&str, &str)]| {
        s3.put(&bucket, &format!("{prefix}{k}"), body, ct, meta)
    };
    // Keys that are not valid paths: a file and a "directory" of the same
    // name, empty segments, dots, spaces and non-ASCII.
    put("a", b"file a", Some("text/plain"), &[("owner", "alice")]);
    put(
        "a/b",
        b"under a",
        Some("application/json"),
        &[("k1", "v1"), ("k2", "v 2")],
    );
    put("x//y", b"double slash", None, &[]);
    put("dots/..hidden/x..", b"dots", None, &[]);
    put(
        "space name \u{fc}.txt",
        "ünïcode body".as_bytes(),
        Some("text/plain; charset=utf-8"),
        &[],
    );
    put(
        "nested/deep/er/file.bin",
        &coffer_testkit::tree::random_bytes(1, 300_000),
        Some("application/octet-stream"),
        &[],
    );
    put("empty", b"", None, &[("empty", "yes")]);
    put(
        "big.bin",
        &big,
        Some("application/x-big"),
        &[("size", "20MiB")],
    );
    let original = s3.objects(&bucket, &prefix);
    assert_eq!(original.len(), 8);

    let s = s3.spec(&bucket, &prefix, "");
    let snap = f.backup(&s).expect("backup");
    assert_eq!(snap.paths, ["blobs.tar"]);

    // Destroy, restore into the same place.
    for k in s3.keys(&bucket, &prefix) {
        s3.delete(&bucket, &k);
    }
    f.restore(&s, &snap, &RestoreOptions::default())
        .expect("restore");
    assert!(
        s3.objects(&bucket, &prefix) == original,
        "same bucket differs"
    );

    // Into another bucket (created) at the root, then clean removes extras.
    let other = format!("coffer-restore-{}", std::process::id());
    let other_spec = s3.spec(&other, "", "");
    let report = f
        .restore(&other_spec, &snap, &RestoreOptions::default())
        .expect("restore into another bucket");
    assert!(
        report.notes.iter().any(|n| n.contains("created bucket")),
        "{report:?}"
    );
    assert!(s3.objects(&other, "") == original, "other bucket differs");
    s3.put(&other, "extra", b"not in the backup", None, &[]);
    let clean = RestoreOptions {
        clean: true,
        ..RestoreOptions::default()
    };
    f.restore(&other_spec, &snap, &clean)
        .expect("clean restore");
    assert!(s3.objects(&other, "") == original, "clean restore differs");

    for k in s3.keys(&bucket, &prefix) {
        s3.delete(&bucket, &k);
    }
    for k in s3.keys(&other, "") {
        s3.delete(&other, &k);
    }
    f.assert_clean();
}

#[test]
fn s3_objects_changing_during_the_backup_fail_it_or_warn() {
    let (Some(s3), Some(bucket)) = (S3::from_env(), service_setting("COFFER_TEST_S3_BUCKET"))
    else {
        return;
    };
    let s3 = Arc::new(s3);
    let f = Fixture::new();
    let prefix = format!("hot-{}/", std::process::id());
    for i in 0..20 {
        s3.put(
            &bucket,
            &format!("{prefix}obj{i:02}"),
            &coffer_testkit::tree::random_bytes(i, 200_000),
            None,
            &[],
        );
    }
    let hot = format!("{prefix}obj00");
    s3.put(&bucket, &hot, b"version 0", None, &[]);
    // A writer that keeps rewriting one object while the backup runs.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (s3, bucket, hot, stop) = (
            Arc::clone(&s3),
            bucket.clone(),
            hot.clone(),
            Arc::clone(&stop),
        );
        std::thread::spawn(move || {
            let mut n = 1u64;
            while !stop.load(Ordering::Relaxed) {
                s3.put(&bucket, &hot, format!("version {n}").as_bytes(), None, &[]);
                n += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    let err = f.backup(&s3.spec(&bucket, &prefix, "")).unwrap_err();
    assert!(
        err.to_string()
            .contains("changed while the bucket was copied"),
        "{err}"
    );
    assert!(err.to_string().contains("obj00"), "{err}");
    assert_eq!(
        f.snapshot_count(),
        0,
        "a backup that is not a point in time was recorded"
    );
    let snap = f
        .backup(&s3.spec(&bucket, &prefix, "on_change = \"warn\""))
        .expect("with on_change = warn the backup is kept");
    assert_eq!(snap.paths, ["blobs.tar"]);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    for k in s3.keys(&bucket, &prefix) {
        s3.delete(&bucket, &k);
    }
    f.assert_clean();
}

#[test]
fn s3_failures_are_clear_and_record_nothing() {
    let (Some(s3), Some(bucket)) = (S3::from_env(), service_setting("COFFER_TEST_S3_BUCKET"))
    else {
        return;
    };
    let f = Fixture::new();
    let wrong_secret = spec(&format!(
        "name = \"blobs\"\nkind = \"s3\"\nendpoint = \"{}\"\nregion = \"{}\"\nbucket = \"{bucket}\"\n\
         access_key = {{ env = \"COFFER_TEST_S3_ACCESS_KEY\" }}\nsecret_key = \"0000000000000000000000000000000000000000000000000000000000000000\"",
        s3.endpoint, s3.region
    ));
    let err = f.backup(&wrong_secret).unwrap_err();
    assert!(err.to_string().contains("HTTP 403"), "{err}");
    let err = f
        .backup(&s3.spec("coffer-no-such-bucket", "", ""))
        .unwrap_err();
    assert!(err.to_string().contains("NoSuchBucket"), "{err}");
    let down = spec(
        "name = \"blobs\"\nkind = \"s3\"\nendpoint = \"http://127.0.0.1:1\"\nbucket = \"b\"\n\
         access_key = \"k\"\nsecret_key = \"s\"",
    );
    let err = f.backup(&down).unwrap_err();
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    assert_eq!(f.snapshot_count(), 0);
    // Restoring into a missing bucket when creating is not allowed.
    let snap = f
        .backup(&s3.spec(&bucket, "nothing-here/", ""))
        .expect("empty prefix backs up");
    let opts = RestoreOptions {
        create_database: false,
        ..RestoreOptions::default()
    };
    let err = f
        .restore(&s3.spec("coffer-missing-bucket", "", ""), &snap, &opts)
        .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
    f.assert_clean();
}
