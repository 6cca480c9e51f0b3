//! The SFTP target against the real OpenSSH server from scripts/services.sh:
//! the storage contract with password, key and passphrase-protected key,
//! the engine through it (judged by plain restic on the server's directory),
//! validation (including a wrong host key), and the server going away.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use coffer_engine::{Repo, RestoreMode, TreeBackupOptions};
use coffer_model::{BackupId, BackupRef, ComponentName, Label};
use coffer_targets::validate::{StepStatus, ValidateOptions, validate_sftp};
use coffer_targets::{RetryPolicy, SftpAuth, SftpSettings, SftpStorage, Storage, StorageErrorKind};
use coffer_testkit::proxy::FaultProxy;
use coffer_testkit::tree::{self, assert_same_tree};
use coffer_testkit::{restic_check, service_setting};

mod common;

const PW: &str = "sftp target test password";

struct Env {
    host: String,
    port: u16,
    user: String,
    password: String,
    key: PathBuf,
    key_with_passphrase: PathBuf,
    host_key_line: String,
}

impl Env {
    fn get() -> Option<Self> {
        let pub_file = service_setting("COFFER_TEST_SFTP_HOST_KEY_PUB")?;
        Some(Self {
            host: service_setting("COFFER_TEST_SFTP_HOST")?,
            port: service_setting("COFFER_TEST_SFTP_PORT")?.parse().ok()?,
            user: service_setting("COFFER_TEST_SFTP_USER")?,
            password: service_setting("COFFER_TEST_SFTP_PASSWORD")?,
            key: service_setting("COFFER_TEST_SFTP_KEY")?.into(),
            key_with_passphrase: service_setting("COFFER_TEST_SFTP_KEY_WITH_PASSPHRASE")?.into(),
            host_key_line: std::fs::read_to_string(pub_file).ok()?.trim().to_owned(),
        })
    }

    fn settings(&self, auth: SftpAuth, dir: &str) -> SftpSettings {
        let mut s = SftpSettings::new(
            &self.host,
            self.port,
            &self.user,
            auth,
            &self.host_key_line,
            dir,
        );
        s.retry = RetryPolicy {
            attempts: 3,
            base: Duration::from_millis(50),
            cap: Duration::from_millis(200),
        };
        s.timeout = Duration::from_secs(10);
        s
    }

    fn password(&self) -> SftpAuth {
        SftpAuth::Password(self.password.clone())
    }

    fn local(&self, dir: &str) -> PathBuf {
        PathBuf::from(dir)
    }
}

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("/home/coffer_test/{name}-{}-{nanos:x}", std::process::id())
}

fn bref() -> BackupRef {
    BackupRef::new(
        BackupId::generate(&Label::new("sftptest").unwrap()),
        ComponentName::new("files").unwrap(),
        1,
    )
}

#[test]
fn sftp_storage_keeps_the_contract_with_every_kind_of_login() {
    let Some(env) = Env::get() else { return };
    let auths = [
        env.password(),
        SftpAuth::Key {
            path: env.key.clone(),
            passphrase: None,
        },
        SftpAuth::Key {
            path: env.key_with_passphrase.clone(),
            passphrase: Some(env.password.clone()),
        },
    ];
    for auth in auths {
        let dir = unique("contract");
        let s = SftpStorage::new(env.settings(auth, &dir)).unwrap();
        s.put_parts("data/ab/abc", &[b"hello ", b"world"]).unwrap();
        assert_eq!(s.get("data/ab/abc").unwrap(), b"hello world");
        assert_eq!(s.get_range("data/ab/abc", 6, 5).unwrap(), b"world");
        let err = s.get_range("data/ab/abc", 6, 50).unwrap_err();
        assert_eq!(err.kind, StorageErrorKind::Corrupt, "{err}");
        let big = tree::random_bytes(4, 3 << 20);
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
        assert_eq!(
            s.list("").unwrap().len(),
            3,
            "temporaries must not be listed"
        );
        let err = s.get("nope").unwrap_err();
        assert_eq!(err.kind, StorageErrorKind::NotFound, "{err}");
        assert!(err.to_string().contains("sftp://"), "{err}");
        s.delete("config").unwrap();
        s.delete("config").unwrap();
        drop(s);
        let _ = std::fs::remove_dir_all(env.local(&dir));
    }
}

#[test]
fn the_engine_backs_up_and_restores_through_sftp_and_restic_reads_it() {
    let Some(env) = Env::get() else { return };
    let dir = unique("engine");
    let storage = Arc::new(SftpStorage::new(env.settings(env.password(), &dir)).unwrap());
    let repo = Repo::init(storage, PW).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree::build_rich_tree(&src);
    let snap = repo
        .backup_tree(&src, &bref(), &TreeBackupOptions::default(), None)
        .unwrap();
    let dest = tmp.path().join("restored");
    repo.restore_tree(&snap.id, &dest, RestoreMode::RefuseNonEmpty, None)
        .unwrap();
    assert_same_tree(&src, &dest);
    restic_check(&env.local(&dir), PW);
    drop(repo);
    let _ = std::fs::remove_dir_all(env.local(&dir));
}

#[test]
fn validation_passes_and_names_each_failure() {
    let Some(env) = Env::get() else { return };
    let opts = ValidateOptions::default();
    let dir = unique("validate");
    let r = validate_sftp(
        Arc::new(SftpStorage::new(env.settings(env.password(), &dir)).unwrap()),
        opts,
    );
    assert!(r.ok, "{r:#?}");
    assert!(
        r.steps
            .iter()
            .any(|s| s.name == "free space" && s.message.contains("MiB free")),
        "{r:#?}"
    );
    let _ = std::fs::remove_dir_all(env.local(&dir));

    let r = validate_sftp(
        Arc::new(SftpStorage::new(env.settings(SftpAuth::Password("wrong".into()), &dir)).unwrap()),
        opts,
    );
    let auth = r.steps.iter().find(|s| s.name == "authenticated").unwrap();
    assert!(
        !r.ok && auth.status == StepStatus::Failed && auth.message.contains("authentication"),
        "{r:#?}"
    );

    // A pinned key that is not the server's: refused before any credential is sent.
    let mut wrong_key = env.settings(env.password(), &dir);
    wrong_key.host_key = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into();
    let r = validate_sftp(Arc::new(SftpStorage::new(wrong_key).unwrap()), opts);
    let hk = r
        .steps
        .iter()
        .find(|s| s.name == "host key matches the pinned one")
        .unwrap();
    assert!(
        !r.ok && hk.status == StepStatus::Failed && hk.message.contains("host key mismatch"),
        "{r:#?}"
    );
    assert!(
        r.steps
            .iter()
            .find(|s| s.name == "authenticated")
            .unwrap()
            .status
            == StepStatus::Skipped
    );

    // A directory the user may not write to.
    let ro = "/var/lib/coffer-test-readonly-sftp";
    std::fs::create_dir_all(ro).unwrap();
    let r = validate_sftp(
        Arc::new(SftpStorage::new(env.settings(env.password(), ro)).unwrap()),
        opts,
    );
    let write = r.steps.iter().find(|s| s.name == "write").unwrap();
    assert!(
        !r.ok && write.status == StepStatus::Failed && write.message.contains("permission denied"),
        "{r:#?}"
    );

    let mut down = env.settings(env.password(), &dir);
    down.port = 1;
    let r = validate_sftp(Arc::new(SftpStorage::new(down).unwrap()), opts);
    assert!(!r.ok && r.steps[0].status == StepStatus::Failed, "{r:#?}");
}

#[test]
fn the_server_going_down_fails_the_backup_cleanly_and_the_next_one_works() {
    let Some(env) = Env::get() else { return };
    let upstream: SocketAddr = format!("{}:{}", env.host, env.port).parse().unwrap();
    let proxy = FaultProxy::start(upstream);
    let dir = unique("down");
    let mut settings = env.settings(env.password(), &dir);
    settings.host = "127.0.0.1".into();
    settings.port = proxy.addr().port();
    let repo = Repo::init(Arc::new(SftpStorage::new(settings).unwrap()), PW).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    for i in 0..40 {
        tree::write(
            &src.join(format!("f{i:02}.bin")),
            &tree::random_bytes(i, 1 << 20),
        );
    }
    proxy.go_down_after(12 << 20);
    let err = repo
        .backup_tree(&src, &bref(), &TreeBackupOptions::default(), None)
        .unwrap_err();
    assert!(proxy.is_down());
    assert!(err.to_string().contains("sftp://"), "{err}");
    proxy.come_back();
    assert!(repo.snapshots(&Default::default()).unwrap().is_empty());
    restic_check(&env.local(&dir), PW);
    let snap = repo
        .backup_tree(&src, &bref(), &TreeBackupOptions::default(), None)
        .expect("backup after the server came back");
    let dest = tmp.path().join("restored");
    repo.restore_tree(&snap.id, &dest, RestoreMode::RefuseNonEmpty, None)
        .unwrap();
    assert_same_tree(&src, &dest);
    restic_check(&env.local(&dir), PW);
    drop(repo);
    let _ = std::fs::remove_dir_all(env.local(&dir));
}

/// A restore through a 10 ms round trip capped at 8 MiB/s, and one whose
/// connections are all reset midway, give the tree exactly.
#[test]
fn restores_through_a_slow_link_and_a_reset_are_exact() {
    let Some(env) = Env::get() else { return };
    let dir = unique("link");
    let storage = Arc::new(SftpStorage::new(env.settings(env.password(), &dir)).unwrap());
    let repo = Repo::init(storage, PW).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree::build_rich_tree(&src);
    tree::write(&src.join("big.bin"), &tree::random_bytes(22, 3 << 20));
    let snap = repo
        .backup_tree(&src, &bref(), &TreeBackupOptions::default(), None)
        .unwrap();
    let upstream: SocketAddr = format!("{}:{}", env.host, env.port).parse().unwrap();
    let link = common::slow_link(upstream, false);
    let mut via = env.settings(env.password(), &dir);
    via.host = "127.0.0.1".into();
    via.port = link.addr().port();
    let remote = Repo::open(Arc::new(SftpStorage::new(via).unwrap()), PW).unwrap();
    common::restore_through_link(&remote, &link, &snap.id, &src, tmp.path());
    drop((repo, remote));
    let _ = std::fs::remove_dir_all(env.local(&dir));
}
