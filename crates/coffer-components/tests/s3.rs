//! S3 components against the real S3 server (Garage) from scripts/services.sh.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use coffer_components::RestoreOptions;
use coffer_model::component::ComponentSpec;
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
