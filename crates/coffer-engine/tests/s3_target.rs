//! The S3 target against the real S3 server (Garage) from scripts/services.sh:
//! the storage contract, the engine through it (judged by plain restic),
//! validation, and faults injected by a TCP proxy (the server going down, slow
//! links, resets) and an HTTP one (S3 errors, responses cut short).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use coffer_engine::{Repo, RestoreMode, TreeBackupOptions};
use coffer_model::{BackupId, BackupRef, ComponentName, Label};
use coffer_targets::validate::{StepStatus, ValidateOptions, validate_local, validate_s3};
use coffer_targets::{LocalStorage, RetryPolicy, S3Settings, S3Storage, Storage, StorageErrorKind};
use coffer_testkit::http_faults::HttpFaultProxy;
use coffer_testkit::proxy::FaultProxy;
use coffer_testkit::tree::{self, assert_same_tree};
use coffer_testkit::{restic_url, service_setting};

mod common;

const PW: &str = "s3 target test password";

struct Env {
    endpoint: String,
    region: String,
    key: String,
    secret: String,
    bucket: String,
}

impl Env {
    fn get() -> Option<Self> {
        Some(Self {
            endpoint: service_setting("COFFER_TEST_S3_ENDPOINT")?,
            region: service_setting("COFFER_TEST_S3_REGION")?,
            key: service_setting("COFFER_TEST_S3_ACCESS_KEY")?,
            secret: service_setting("COFFER_TEST_S3_SECRET_KEY")?,
            bucket: service_setting("COFFER_TEST_S3_BUCKET")?,
        })
    }

    fn settings(&self, prefix: &str) -> S3Settings {
        let mut s = S3Settings::new(
            &self.endpoint,
            &self.region,
            &self.bucket,
            &self.key,
            &self.secret,
        );
        s.prefix = prefix.to_owned();
        s
    }

    /// Settings that go through `proxy`, retrying quickly.
    fn via(&self, proxy: &FaultProxy, prefix: &str) -> S3Settings {
        let mut s = self.settings(prefix);
        s.endpoint = format!("http://{}", proxy.addr());
        s.retry = RetryPolicy {
            attempts: 3,
            base: Duration::from_millis(50),
            cap: Duration::from_millis(200),
        };
        s
    }

    /// Settings that go through an HTTP fault proxy, retrying quickly.
    fn via_http(&self, proxy: &HttpFaultProxy, prefix: &str) -> S3Settings {
        let mut s = self.settings(prefix);
        s.endpoint = format!("http://{}", proxy.addr());
        s.retry = RetryPolicy {
            attempts: 4,
            base: Duration::from_millis(20),
            cap: Duration::from_millis(100),
        };
        s
    }

    fn upstream(&self) -> SocketAddr {
        self.endpoint
            .trim_start_matches("http://")
            .parse()
            .expect("endpoint is http://host:port")
    }

    fn restic_repo(&self, prefix: &str) -> String {
        format!("s3:{}/{}/{prefix}", self.endpoint, self.bucket)
    }

    fn restic_env(&self) -> Vec<(&str, &str)> {
        vec![
            ("AWS_ACCESS_KEY_ID", self.key.as_str()),
            ("AWS_SECRET_ACCESS_KEY", self.secret.as_str()),
            ("AWS_DEFAULT_REGION", self.region.as_str()),
        ]
    }

    fn restic_check(&self, prefix: &str) {
        let region = format!("s3.region={}", self.region);
        restic_url(
            &self.restic_repo(prefix),
            PW,
            &self.restic_env(),
            &["-o", &region, "--no-lock", "check", "--read-data"],
        );
    }
}

fn unique(name: &str) -> String {
    format!("{name}-{}-{:x}", std::process::id(), rand_u32())
}

fn rand_u32() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

fn bref(component: &str) -> BackupRef {
    BackupRef::new(
        BackupId::generate(&Label::new("s3test").unwrap()),
        ComponentName::new(component).unwrap(),
        1,
    )
}

fn wipe(s: &S3Storage) {
    for o in s.list("").unwrap() {
        s.delete(&o.key).unwrap();
    }
}

#[test]
fn s3_storage_keeps_the_contract() {
    let Some(env) = Env::get() else { return };
    let mut settings = env.settings(&unique("contract"));
    settings.multipart_threshold = 6 << 20;
    settings.part_size = 5 << 20;
    let s = S3Storage::new(settings).unwrap();
    s.put_parts("data/ab/abc", &[b"hello ", b"world"]).unwrap();
    assert_eq!(s.get("data/ab/abc").unwrap(), b"hello world");
    assert_eq!(s.get_range("data/ab/abc", 6, 5).unwrap(), b"world");
    let err = s.get_range("data/ab/abc", 6, 50).unwrap_err();
    assert_eq!(err.kind, StorageErrorKind::Corrupt, "{err}");
    // multipart: 12 MiB in 5 MiB parts
    let big = tree::random_bytes(5, 12 << 20);
    s.put("data/cd/big", &big).unwrap();
    assert_eq!(s.get("data/cd/big").unwrap(), big);
    s.put("config", b"one").unwrap();
    s.put("config", b"two").unwrap();
    assert_eq!(s.get("config").unwrap(), b"two");
    let mut keys: Vec<String> = s
        .list("data/")
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    keys.sort();
    assert_eq!(keys, ["data/ab/abc", "data/cd/big"]);
    assert_eq!(s.list("").unwrap().len(), 3);
    let err = s.get("nope").unwrap_err();
    assert_eq!(err.kind, StorageErrorKind::NotFound);
    assert!(
        err.to_string().contains("s3:http://") && err.to_string().contains("\"nope\""),
        "{err}"
    );
    s.delete("config").unwrap();
    s.delete("config").unwrap(); // missing: still fine
    assert!(s.check_invalid_key_refused());
    wipe(&s);
}

trait InvalidKey {
    fn check_invalid_key_refused(&self) -> bool;
}
impl InvalidKey for S3Storage {
    fn check_invalid_key_refused(&self) -> bool {
        self.put("../escape", b"x").is_err() && self.put("a//b", b"x").is_err()
    }
}

#[test]
fn the_engine_backs_up_and_restores_through_s3_and_restic_reads_it() {
    let Some(env) = Env::get() else { return };
    let prefix = unique("engine");
    let storage = Arc::new(S3Storage::new(env.settings(&prefix)).unwrap());
    let repo = Repo::init(storage.clone(), PW).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree::build_rich_tree(&src);
    let snap = repo
        .backup_tree(&src, &bref("files"), &TreeBackupOptions::default(), None)
        .unwrap();
    let dest = tmp.path().join("restored");
    repo.restore_tree(&snap.id, &dest, RestoreMode::RefuseNonEmpty, None)
        .unwrap();
    assert_same_tree(&src, &dest);
    env.restic_check(&prefix);
    let region = format!("s3.region={}", env.region);
    let listed = restic_url(
        &env.restic_repo(&prefix),
        PW,
        &env.restic_env(),
        &["-o", &region, "snapshots", "--json"],
    );
    if let Some(listed) = listed {
        assert!(listed.contains(&snap.id), "{listed}");
    }
    wipe(&storage);
}

#[test]
fn validation_reports_every_step_and_names_what_is_wrong() {
    let Some(env) = Env::get() else { return };
    let good = validate_s3(
        Arc::new(S3Storage::new(env.settings(&unique("validate"))).unwrap()),
        ValidateOptions::default(),
    );
    assert!(good.ok, "{good:#?}");
    let names: Vec<&str> = good.steps.iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        [
            "reachable, authenticated, bucket exists",
            "may write",
            "write",
            "read",
            "ranged read",
            "list",
            "overwrite",
            "delete",
            "multipart upload",
            "free space",
            "clock skew"
        ]
    );
    assert!(good.steps[2].message.contains("MiB/s") && good.steps[3].message.contains("MiB/s"));
    assert_eq!(good.steps[9].status, StepStatus::Skipped);
    // It cleaned up after itself.
    let s = S3Storage::new(env.settings("")).unwrap();
    assert!(s.list("coffer/validate/").unwrap().is_empty());

    let mut wrong_secret = env.settings("x");
    wrong_secret.secret_key = "0".repeat(64);
    let r = validate_s3(
        Arc::new(S3Storage::new(wrong_secret).unwrap()),
        ValidateOptions::default(),
    );
    assert!(!r.ok);
    assert_eq!(r.steps[0].status, StepStatus::Failed);
    assert!(
        r.steps[0].message.contains("HTTP 403"),
        "{}",
        r.steps[0].message
    );
    assert!(r.steps[1..].iter().all(|s| s.status == StepStatus::Skipped));
    assert!(
        r.steps[0]
            .message
            .contains("needs valid credentials and s3:ListBucket on arn:aws:s3:::"),
        "{}",
        r.steps[0].message
    );

    // A key that may only read: the write step is refused, and the report
    // names the permission it lacks and on what.
    let mut read_only = env.settings("validate-ro");
    read_only.access_key = service_setting("COFFER_TEST_S3_RO_ACCESS_KEY").unwrap_or_default();
    read_only.secret_key = service_setting("COFFER_TEST_S3_RO_SECRET_KEY").unwrap_or_default();
    let r = validate_s3(
        Arc::new(S3Storage::new(read_only).unwrap()),
        ValidateOptions::default(),
    );
    assert!(!r.ok);
    let write = r.steps.iter().find(|s| s.name == "may write").unwrap();
    assert_eq!(write.status, StepStatus::Failed, "{r:#?}");
    assert!(
        write.message.contains(&format!(
            "needs s3:PutObject on arn:aws:s3:::{}/validate-ro/*",
            env.bucket
        )),
        "{}",
        write.message
    );

    let mut wrong_bucket = env.settings("");
    wrong_bucket.bucket = "coffer-no-such-bucket".into();
    let r = validate_s3(
        Arc::new(S3Storage::new(wrong_bucket).unwrap()),
        ValidateOptions::default(),
    );
    assert!(
        !r.ok && r.steps[0].message.contains("404"),
        "{:?}",
        r.steps[0]
    );

    let mut down = env.settings("");
    down.endpoint = "http://127.0.0.1:1".into();
    down.retry = RetryPolicy {
        attempts: 2,
        base: Duration::from_millis(10),
        cap: Duration::from_millis(10),
    };
    let r = validate_s3(
        Arc::new(S3Storage::new(down).unwrap()),
        ValidateOptions::default(),
    );
    assert!(
        !r.ok && r.steps[0].message.contains("127.0.0.1:1"),
        "{:?}",
        r.steps[0]
    );

    let tmp = tempfile::tempdir().unwrap();
    let local = validate_local(
        Arc::new(LocalStorage::new(tmp.path().join("repo"))),
        ValidateOptions::default(),
    );
    assert!(local.ok, "{local:#?}");
    assert!(local.steps.last().unwrap().message.contains("MiB free"));
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let bad = validate_local(
        Arc::new(LocalStorage::new(file.join("repo"))),
        ValidateOptions::default(),
    );
    assert!(
        !bad.ok && bad.steps[0].status == StepStatus::Failed,
        "{bad:#?}"
    );
}

#[test]
fn an_upload_cut_midway_leaves_nothing_under_its_name() {
    let Some(env) = Env::get() else { return };
    let proxy = FaultProxy::start(env.upstream());
    let prefix = unique("cut");
    let mut settings = env.via(&proxy, &prefix);
    settings.multipart_threshold = 6 << 20;
    settings.part_size = 5 << 20;
    let s = S3Storage::new(settings).unwrap();
    let direct = S3Storage::new(env.settings(&prefix)).unwrap();
    proxy.cut_each_connection_after(1 << 20);
    // A single PUT and a multipart upload, each cut after 1 MiB.
    let err = s
        .put("data/aa/single", &tree::random_bytes(1, 3 << 20))
        .unwrap_err();
    assert_eq!(err.kind, StorageErrorKind::Transient, "{err}");
    assert!(err.message.contains("attempts"), "{err}");
    let err = s
        .put("data/aa/multi", &tree::random_bytes(2, 12 << 20))
        .unwrap_err();
    assert!(err.to_string().contains("data/aa/multi"), "{err}");
    proxy.come_back();
    assert!(
        direct.list("").unwrap().is_empty(),
        "a cut upload became visible"
    );
    // And the same uploads succeed once the network is fine.
    s.put("data/aa/multi", &tree::random_bytes(2, 12 << 20))
        .unwrap();
    assert_eq!(
        direct.get("data/aa/multi").unwrap(),
        tree::random_bytes(2, 12 << 20)
    );
    wipe(&direct);
}

#[test]
fn the_server_going_down_fails_the_backup_cleanly_and_the_next_one_works() {
    let Some(env) = Env::get() else { return };
    let proxy = FaultProxy::start(env.upstream());
    let prefix = unique("down");
    let storage = Arc::new(S3Storage::new(env.via(&proxy, &prefix)).unwrap());
    let repo = Repo::init(storage.clone(), PW).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    for i in 0..40 {
        tree::write(
            &src.join(format!("f{i:02}.bin")),
            &tree::random_bytes(i, 1 << 20),
        );
    }
    // The server disappears after 12 MiB of the ~40 MiB backup.
    proxy.go_down_after(12 << 20);
    let err = repo
        .backup_tree(&src, &bref("files"), &TreeBackupOptions::default(), None)
        .unwrap_err();
    assert!(proxy.is_down());
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("127.0.0.1:{}", proxy.addr().port())) || msg.contains("s3:"),
        "{msg}"
    );
    proxy.come_back();
    assert!(
        repo.snapshots(&Default::default()).unwrap().is_empty(),
        "a snapshot of the failed backup was recorded"
    );
    env.restic_check(&prefix);
    // The next backup succeeds and restores exactly.
    let snap = repo
        .backup_tree(&src, &bref("files"), &TreeBackupOptions::default(), None)
        .expect("backup after the server came back");
    let dest = tmp.path().join("restored");
    repo.restore_tree(&snap.id, &dest, RestoreMode::RefuseNonEmpty, None)
        .unwrap();
    assert_same_tree(&src, &dest);
    env.restic_check(&prefix);
    wipe(&S3Storage::new(env.settings(&prefix)).unwrap());
}

/// A restore through a 10 ms round trip capped at 8 MiB/s, and one whose
/// connections are all reset midway, give the tree exactly.
#[test]
fn restores_through_a_slow_link_and_a_reset_are_exact() {
    let Some(env) = Env::get() else { return };
    let prefix = unique("link");
    let storage = Arc::new(S3Storage::new(env.settings(&prefix)).unwrap());
    let repo = Repo::init(storage.clone(), PW).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree::build_rich_tree(&src);
    tree::write(&src.join("big.bin"), &tree::random_bytes(21, 3 << 20));
    let snap = repo
        .backup_tree(&src, &bref("files"), &TreeBackupOptions::default(), None)
        .unwrap();
    let link = common::slow_link(env.upstream(), false);
    let mut via = env.settings(&prefix);
    via.endpoint = format!("http://{}", link.addr());
    let remote = Repo::open(Arc::new(S3Storage::new(via).unwrap()), PW).unwrap();
    common::restore_through_link(&remote, &link, &snap.id, &src, tmp.path());
    wipe(&storage);
}

/// A repository through an HTTP fault proxy, and eight 1 MiB files to back up.
struct Faulty {
    env: Env,
    proxy: HttpFaultProxy,
    prefix: String,
    storage: Arc<S3Storage>,
    repo: Repo,
    tmp: tempfile::TempDir,
    src: std::path::PathBuf,
}

impl Faulty {
    fn new(name: &str) -> Option<Self> {
        let env = Env::get()?;
        let proxy = HttpFaultProxy::start(env.upstream());
        let prefix = unique(name);
        let storage = Arc::new(S3Storage::new(env.via_http(&proxy, &prefix)).unwrap());
        let repo = Repo::init(storage.clone(), PW).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let src = eight_files(tmp.path());
        Some(Self {
            env,
            proxy,
            prefix,
            storage,
            repo,
            tmp,
            src,
        })
    }

    fn backup(&self) -> coffer_engine::EngineResult<coffer_engine::SnapshotInfo> {
        self.repo.backup_tree(
            &self.src,
            &bref("files"),
            &TreeBackupOptions::default(),
            None,
        )
    }

    /// Restores `snap` and compares it with the source.
    fn restores_exactly(&self, snap: &str, what: &str) {
        let dest = self.tmp.path().join(unique("restored"));
        self.repo
            .restore_tree(snap, &dest, RestoreMode::RefuseNonEmpty, None)
            .expect(what);
        assert_same_tree(&self.src, &dest);
    }

    /// Checks the repository with restic, then removes it.
    fn checked_and_wiped(self) {
        self.proxy.heal();
        self.env.restic_check(&self.prefix);
        wipe(&S3Storage::new(self.env.settings(&self.prefix)).unwrap());
    }
}

fn eight_files(dir: &std::path::Path) -> std::path::PathBuf {
    let src = dir.join("src");
    for i in 0..8 {
        tree::write(
            &src.join(format!("f{i}.bin")),
            &tree::random_bytes(100 + i, 1 << 20),
        );
    }
    src
}

/// Bursts of `503 SlowDown` and `500 InternalError` (every 4th request) are
/// retried: the backup and the restore through them are whole.
#[test]
fn slowdown_and_internal_errors_are_retried_and_the_data_is_whole() {
    let Some(f) = Faulty::new("slowdown") else {
        return;
    };
    f.proxy.fail_every(4, 503, "SlowDown");
    let snap = f.backup().expect("a backup through SlowDown answers");
    let during_backup = f.proxy.injected();
    assert!(during_backup > 3, "{during_backup} answers injected");
    f.proxy.fail_every(4, 500, "InternalError");
    f.restores_exactly(&snap.id, "a restore through InternalError answers");
    assert!(f.proxy.injected() > during_backup);
    f.checked_and_wiped();
}

/// A server that answers `500` to everything fails the backup cleanly
/// (the error names the status), records nothing; once it answers again
/// the next backup works and the failed one's locks go with it.
#[test]
fn a_server_failing_every_request_fails_the_backup_cleanly() {
    let Some(f) = Faulty::new("fail500") else {
        return;
    };
    // The backup starts (lock, listings, the first packs), then every
    // request fails.
    f.proxy.fail_all_after(12, 500, "InternalError");
    let msg = f.backup().unwrap_err().to_string();
    assert!(
        msg.contains("500") || msg.contains("InternalError"),
        "{msg}"
    );
    f.proxy.heal();
    assert!(f.repo.snapshots(&Default::default()).unwrap().is_empty());
    f.env.restic_check(&f.prefix);
    let snap = f.backup().expect("the backup after the server recovered");
    assert!(
        f.storage.list("locks/").unwrap().is_empty(),
        "a lock was left"
    );
    assert!(f.storage.list("coffer/locks/").unwrap().is_empty());
    f.restores_exactly(&snap.id, "a restore after the server recovered");
    f.checked_and_wiped();
}

/// Responses cut short of their `Content-Length` are read again: the
/// restore is exact, never restored from a truncated body.
#[test]
fn bodies_cut_short_are_read_again_and_the_restore_is_exact() {
    let Some(f) = Faulty::new("cut") else { return };
    let snap = f.backup().unwrap();
    // Three responses cut after their headers and a little of the body.
    f.proxy.cut_next_gets(3, 700);
    f.restores_exactly(&snap.id, "a restore through cut responses");
    assert_eq!(f.proxy.injected(), 3);
    f.checked_and_wiped();
}
