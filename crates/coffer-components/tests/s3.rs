//! S3 components against the real S3 server (Garage) from scripts/services.sh.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use coffer_components::RestoreOptions;
use coffer_model::component::ComponentSpec;
use coffer_testkit::proxy::FaultProxy;
use coffer_testkit::s3::S3;
use coffer_testkit::service_setting;
use common::{Fixture, spec};

/// The S3 test client, with the spec of a `blobs` component on it.
trait BlobsSpec {
    fn spec(&self, bucket: &str, prefix: &str, extra: &str) -> ComponentSpec;
}

impl BlobsSpec for S3 {
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
        "name = \"blobs\"\nkind = \"s3\"\nendpoint = \"http://127.0.0.1:1\"\nbucket = \"down-bucket\"\n\
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

/// A tar as the S3 component writes it, with any keys (no checks).
fn hand_made_tar(keys: &[&str]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (i, key) in keys.iter().enumerate() {
        tar.append_pax_extensions([("COFFER.s3.key", key.as_bytes())])
            .unwrap();
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(7);
        header.set_mode(0o600);
        tar.append_data(&mut header, format!("objects/{i:08}"), &b"escaped"[..])
            .unwrap();
    }
    tar.into_inner().unwrap()
}

#[test]
fn s3_restore_refuses_keys_that_would_escape_the_bucket() {
    let (Some(s3), Some(other)) = (S3::from_env(), service_setting("COFFER_TEST_S3_BUCKET")) else {
        return;
    };
    let f = Fixture::new();
    let pid = std::process::id();
    let bucket = format!("coffer-escape-{pid}");
    let escape = format!("escape-{pid}");
    // Path-style URLs are normalised: `bucket/../other/x` is `other/x`.
    for key in [
        format!("../{other}/{escape}"),
        format!("a/../../{other}/{escape}"),
        format!("..\\{other}\\{escape}"),
        format!("/{escape}"),
        format!("./{escape}"),
    ] {
        let file = f.file("blobs.tar", &hand_made_tar(&[&key]));
        let err = f
            .restore_file(
                &s3.spec(&bucket, "", ""),
                &file,
                &RestoreOptions::default(),
                None,
            )
            .unwrap_err();
        assert!(err.to_string().contains("is refused"), "{key}: {err}");
        assert!(
            s3.keys(&other, &escape).is_empty(),
            "{key}: an object escaped into bucket {other}"
        );
        assert!(s3.keys(&bucket, "").is_empty(), "{key}: written anyway");
    }
    f.assert_clean();
}

#[test]
fn s3_refuses_an_upload_that_is_not_a_tar_before_touching_the_bucket() {
    let (Some(s3), Some(bucket)) = (S3::from_env(), service_setting("COFFER_TEST_S3_BUCKET"))
    else {
        return;
    };
    let f = Fixture::new();
    let prefix = format!("sniff-{}/", std::process::id());
    s3.put(&bucket, &format!("{prefix}precious"), b"keep", None, &[]);
    let s = s3.spec(&bucket, &prefix, "");
    let clean = RestoreOptions {
        clean: true,
        ..RestoreOptions::default()
    };
    let mut bad_checksum = hand_made_tar(&["x"]);
    bad_checksum[0] ^= 1;
    for (what, junk) in [
        ("text", b"not a tar at all".to_vec()),
        ("RDB", b"REDIS0011".repeat(100)),
        ("bad checksum", bad_checksum),
        ("nothing", Vec::new()),
    ] {
        let file = f.file("blobs.tar", &junk);
        let err = f.restore_file(&s, &file, &clean, None).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("blobs.tar") && text.contains("tar"),
            "{what}: {text}"
        );
        assert_eq!(
            s3.keys(&bucket, &prefix),
            [format!("{prefix}precious")],
            "{what}: the bucket was touched"
        );
    }
    // An empty bucket's backup (a tar of zero entries) passes and, with
    // clean, empties the prefix.
    let file = f.file(
        "blobs.tar",
        &tar::Builder::new(Vec::new()).into_inner().unwrap(),
    );
    f.restore_file(&s, &file, &clean, None)
        .expect("an empty tar restores");
    assert!(s3.keys(&bucket, &prefix).is_empty());
    f.assert_clean();
}

/// Takes the proxy down whenever it goes down by itself, and brings it back
/// `after` later, until `stop`.
fn keep_coming_back(
    proxy: Arc<FaultProxy>,
    after: Duration,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<u32> {
    std::thread::spawn(move || {
        let mut outages = 0;
        while !stop.load(Ordering::Relaxed) {
            if proxy.is_down() {
                std::thread::sleep(after);
                proxy.come_back();
                outages += 1;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        outages
    })
}

#[test]
fn s3_component_requests_are_retried_when_the_server_drops_out() {
    let (Some(s3), Some(bucket)) = (S3::from_env(), service_setting("COFFER_TEST_S3_BUCKET"))
    else {
        return;
    };
    let upstream = s3
        .endpoint
        .trim_start_matches("http://")
        .parse()
        .expect("endpoint is http://host:port");
    let proxy = Arc::new(FaultProxy::start(upstream));
    let via = |bucket: &str, prefix: &str| {
        spec(&format!(
            "name = \"blobs\"\nkind = \"s3\"\nendpoint = \"http://{}\"\nregion = \"{}\"\n\
             bucket = \"{bucket}\"\nprefix = \"{prefix}\"\n\
             access_key = {{ env = \"COFFER_TEST_S3_ACCESS_KEY\" }}\n\
             secret_key = {{ env = \"COFFER_TEST_S3_SECRET_KEY\" }}\n",
            proxy.addr(),
            s3.region
        ))
    };
    let f = Fixture::new();
    let prefix = format!("flaky-{}/", std::process::id());
    for i in 0..5u64 {
        let body = coffer_testkit::tree::random_bytes(i, 3 << 20);
        s3.put(&bucket, &format!("{prefix}obj{i}"), &body, None, &[]);
    }
    let original = s3.objects(&bucket, &prefix);
    let stop = Arc::new(AtomicBool::new(false));
    let helper = keep_coming_back(
        Arc::clone(&proxy),
        Duration::from_millis(100),
        Arc::clone(&stop),
    );

    // A backup sends little upstream (requests): go down in the middle of it.
    proxy.go_down_after(2 << 10);
    let snap = f
        .backup(&via(&bucket, &prefix))
        .expect("the backup rides out the outage");
    // A restore uploads 15 MiB: go down in the middle of an object.
    let copy = format!("flaky-copy-{}/", std::process::id());
    proxy.go_down_after(4 << 20);
    f.restore(&via(&bucket, &copy), &snap, &RestoreOptions::default())
        .expect("the restore rides out the outage");
    stop.store(true, Ordering::Relaxed);
    let outages = helper.join().unwrap();
    assert!(outages >= 2, "the proxy went down {outages} times");
    let restored: std::collections::BTreeMap<_, _> = s3
        .objects(&bucket, &copy)
        .into_iter()
        .map(|(k, v)| (k.replacen(&copy, &prefix, 1), v))
        .collect();
    assert!(restored == original, "the restored objects differ");
    for k in s3
        .keys(&bucket, &prefix)
        .into_iter()
        .chain(s3.keys(&bucket, &copy))
    {
        s3.delete(&bucket, &k);
    }
    f.assert_clean();
}

#[test]
fn drills_never_write_under_what_the_component_backs_up() {
    use coffer_components::drill::scratch_spec;
    use coffer_model::component::ComponentKind;
    let s3 = |prefix: &str, extra: &str| {
        spec(&format!(
            "name = \"blobs\"\nkind = \"s3\"\nendpoint = \"http://127.0.0.1:9\"\nbucket = \"live\"\n\
             prefix = \"{prefix}\"\naccess_key = \"a\"\nsecret_key = \"b\"\n{extra}"
        ))
    };
    let dir = std::path::Path::new("/nonexistent");
    // The whole bucket, or a prefix the scratch prefix would fall under.
    for prefix in ["", "c", "coffer-drill"] {
        let e = scratch_spec(&s3(prefix, ""), "abc", dir).unwrap_err();
        assert!(e.to_string().contains("drill_bucket"), "{prefix:?}: {e}");
    }
    let bucket_and_prefix = |spec: &ComponentSpec| match &spec.kind {
        ComponentKind::S3(s) => (s.bucket.clone(), s.prefix.clone()),
        other => panic!("{other:?}"),
    };
    let beside = scratch_spec(&s3("img/", ""), "abc", dir).unwrap();
    assert_eq!(
        bucket_and_prefix(&beside),
        ("live".into(), "coffer-drill-abc/".into())
    );
    let elsewhere = scratch_spec(&s3("", "drill_bucket = \"scratch\""), "abc", dir).unwrap();
    assert_eq!(
        bucket_and_prefix(&elsewhere),
        ("scratch".into(), "coffer-drill-abc/".into())
    );
}
