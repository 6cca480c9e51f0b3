//! The FTP/FTPS target against the real vsftpd from scripts/services.sh:
//! the storage contract, the engine through it (the FTP directory is local
//! here, so plain restic checks it in place — the mirror an operator would
//! make first), validation, and faults injected by a TCP proxy.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use coffer_engine::{Repo, RestoreMode, TreeBackupOptions};
use coffer_model::{BackupId, BackupRef, ComponentName, Label};
use coffer_targets::validate::{StepStatus, ValidateOptions, validate_ftp};
use coffer_targets::{FtpSettings, FtpStorage, FtpTls, RetryPolicy, Storage, StorageErrorKind};
use coffer_testkit::proxy::FaultProxy;
use coffer_testkit::tree::{self, assert_same_tree};
use coffer_testkit::{restic_check, service_setting};

mod common;

const PW: &str = "ftp target test password";

struct Env {
    host: String,
    port: u16,
    user: String,
    password: String,
    ca: PathBuf,
}

impl Env {
    fn get() -> Option<Self> {
        Some(Self {
            host: service_setting("COFFER_TEST_FTP_HOST")?,
            port: service_setting("COFFER_TEST_FTP_PORT")?.parse().ok()?,
            user: service_setting("COFFER_TEST_FTP_USER")?,
            password: service_setting("COFFER_TEST_FTP_PASSWORD")?,
            ca: service_setting("COFFER_TEST_FTPS_CA")?.into(),
        })
    }

    fn settings(&self, dir: &str) -> FtpSettings {
        let mut s = FtpSettings::new(&self.host, self.port, &self.user, &self.password, dir);
        s.retry = RetryPolicy {
            attempts: 3,
            base: Duration::from_millis(50),
            cap: Duration::from_millis(200),
        };
        s.timeout = Duration::from_secs(10);
        s
    }

    fn ftps(&self, dir: &str) -> FtpSettings {
        let mut s = self.settings(dir);
        s.tls = FtpTls::Explicit {
            verify: true,
            ca_file: Some(self.ca.clone()),
        };
        s
    }

    /// Where the server keeps `dir` (the FTP user is chrooted to its home).
    fn local(&self, dir: &str) -> PathBuf {
        PathBuf::from(format!("/home/{}{dir}", self.user))
    }
}

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("/{name}-{}-{nanos:x}", std::process::id())
}

fn bref() -> BackupRef {
    BackupRef::new(
        BackupId::generate(&Label::new("ftptest").unwrap()),
        ComponentName::new("files").unwrap(),
        1,
    )
}

#[test]
fn ftp_storage_keeps_the_contract_with_and_without_tls() {
    let Some(env) = Env::get() else { return };
    for settings in [
        env.settings(&unique("contract")),
        env.ftps(&unique("contract-tls")),
    ] {
        let dir = settings.directory.clone();
        let s = FtpStorage::new(settings).unwrap();
        s.put_parts("data/ab/abc", &[b"hello ", b"world"]).unwrap();
        assert_eq!(s.get("data/ab/abc").unwrap(), b"hello world");
        assert_eq!(s.get_range("data/ab/abc", 6, 5).unwrap(), b"world");
        assert_eq!(s.get_range("data/ab/abc", 0, 5).unwrap(), b"hello");
        let err = s.get_range("data/ab/abc", 6, 50).unwrap_err();
        assert_eq!(err.kind, StorageErrorKind::Corrupt, "{err}");
        let big = tree::random_bytes(9, 3 << 20);
        s.put("data/cd/big", &big).unwrap();
        assert_eq!(s.get("data/cd/big").unwrap(), big);
        assert_eq!(
            s.get_range("data/cd/big", 1 << 20, 1000).unwrap(),
            &big[1 << 20..(1 << 20) + 1000]
        );
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
        assert_eq!(s.list("nothing/").unwrap().len(), 0);
        let err = s.get("nope").unwrap_err();
        assert_eq!(err.kind, StorageErrorKind::NotFound, "{err}");
        assert!(
            err.to_string().contains("\"nope\"") && err.to_string().contains("ftp"),
            "{err}"
        );
        s.delete("config").unwrap();
        s.delete("config").unwrap();
        let _ = std::fs::remove_dir_all(env.local(&dir));
    }
}

#[test]
fn the_engine_backs_up_and_restores_through_ftps_and_restic_reads_the_mirror() {
    let Some(env) = Env::get() else { return };
    let dir = unique("engine");
    let storage = Arc::new(FtpStorage::new(env.ftps(&dir)).unwrap());
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
    let _ = std::fs::remove_dir_all(env.local(&dir));
}

/// A fake FTP server that greets and refuses `AUTH TLS`, as a server without
/// TLS does: what "TLS required" must refuse to talk to.
fn no_tls_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut w = conn.try_clone().unwrap();
            let _ = w.write_all(b"220 plain only\r\n");
            for line in BufReader::new(conn).lines() {
                let Ok(line) = line else { break };
                let reply: &[u8] = if line.starts_with("AUTH") {
                    b"502 AUTH not supported here\r\n"
                } else {
                    b"530 Please login with USER and PASS.\r\n"
                };
                if w.write_all(reply).is_err() {
                    break;
                }
            }
        }
    });
    addr
}

#[test]
fn validation_passes_and_names_each_failure() {
    let Some(env) = Env::get() else { return };
    let opts = ValidateOptions::default();
    for settings in [
        env.settings(&unique("validate")),
        env.ftps(&unique("validate-tls")),
    ] {
        let dir = settings.directory.clone();
        let r = validate_ftp(Arc::new(FtpStorage::new(settings).unwrap()), opts);
        assert!(r.ok, "{r:#?}");
        assert!(
            r.steps
                .iter()
                .any(|s| s.name == "write" && s.message.contains("MiB/s"))
        );
        // vsftpd has no AVBL: Validate says plainly that it cannot tell.
        let space = r.steps.iter().find(|s| s.name == "free space").unwrap();
        assert_eq!(space.status, StepStatus::Ok, "{space:?}");
        assert!(space.message.contains("cannot tell"), "{space:?}");
        let left: Vec<_> = walkdir(&env.local(&dir))
            .into_iter()
            .filter(|p| p.contains("validate/"))
            .collect();
        assert!(left.is_empty(), "probe left {left:?}");
        let _ = std::fs::remove_dir_all(env.local(&dir));
    }

    let mut wrong = env.settings(&unique("x"));
    wrong.password = "wrong".into();
    let r = validate_ftp(Arc::new(FtpStorage::new(wrong).unwrap()), opts);
    let auth = r.steps.iter().find(|s| s.name == "authenticated").unwrap();
    assert!(
        !r.ok && auth.status == StepStatus::Failed && auth.message.contains("530"),
        "{r:#?}"
    );

    // A directory the FTP user may not write to.
    let ro = unique("readonly");
    std::fs::create_dir_all(env.local(&ro)).unwrap();
    let r = validate_ftp(Arc::new(FtpStorage::new(env.settings(&ro)).unwrap()), opts);
    let write = r.steps.iter().find(|s| s.name == "write").unwrap();
    assert!(!r.ok && write.status == StepStatus::Failed, "{r:#?}");
    assert!(
        write.message.contains("permission denied") || write.message.contains("553"),
        "{}",
        write.message
    );
    let _ = std::fs::remove_dir_all(env.local(&ro));

    // TLS required, server without it.
    let fake = no_tls_server();
    let mut s = env.ftps("/x");
    s.host = fake.ip().to_string();
    s.port = fake.port();
    let r = validate_ftp(Arc::new(FtpStorage::new(s).unwrap()), opts);
    let tls = r
        .steps
        .iter()
        .find(|s| s.name == "TLS (explicit FTPS)")
        .unwrap();
    assert!(
        !r.ok && tls.status == StepStatus::Failed && tls.message.contains("TLS is required"),
        "{r:#?}"
    );

    // TLS with a certificate nobody vouches for.
    let mut s = env.settings("/x");
    s.tls = FtpTls::Explicit {
        verify: true,
        ca_file: None,
    };
    let r = validate_ftp(Arc::new(FtpStorage::new(s).unwrap()), opts);
    let tls = r
        .steps
        .iter()
        .find(|s| s.name == "TLS (explicit FTPS)")
        .unwrap();
    assert!(
        !r.ok
            && tls.status == StepStatus::Failed
            && tls.message.to_lowercase().contains("certificate"),
        "{r:#?}"
    );

    // Nobody listening.
    let mut s = env.settings("/x");
    s.port = 1;
    let r = validate_ftp(Arc::new(FtpStorage::new(s).unwrap()), opts);
    assert!(!r.ok && r.steps[0].status == StepStatus::Failed, "{r:#?}");
}

fn walkdir(p: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(p) {
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                out.extend(walkdir(&path));
            } else {
                out.push(path.display().to_string());
            }
        }
    }
    out
}

#[test]
fn the_server_going_down_fails_the_backup_cleanly_and_the_next_one_works() {
    let Some(env) = Env::get() else { return };
    let upstream: SocketAddr = format!("{}:{}", env.host, env.port).parse().unwrap();
    let proxy = FaultProxy::start(upstream);
    let dir = unique("down");
    let mut settings = env.settings(&dir);
    settings.host = "127.0.0.1".into();
    settings.port = proxy.addr().port();
    let repo = Repo::init(Arc::new(FtpStorage::new(settings).unwrap()), PW).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    for i in 0..200 {
        tree::write(
            &src.join(format!("d{}/f{i:03}.bin", i % 7)),
            &tree::random_bytes(i, 64 << 10),
        );
    }
    // The control connections die after 1 KiB of commands, about ten with
    // their paths: a backup of one pack (lock, upload, index, snapshot)
    // needs about twice that.
    proxy.go_down_after(1 << 10);
    let err = repo
        .backup_tree(&src, &bref(), &TreeBackupOptions::default(), None)
        .unwrap_err();
    assert!(proxy.is_down());
    assert!(err.to_string().contains("ftp://"), "{err}");
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
    // The failed backup's lock files, left while the server was down, went
    // with the next lock taken: restic is not kept out by a live process's.
    for locks in ["locks", "coffer/locks"] {
        let left = std::fs::read_dir(env.local(&dir).join(locks))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(left, 0, "{locks} left behind");
    }
    // Nothing truncated under a final name: every object restic knows is whole
    // (check --read-data above), and leftovers stay in coffer/tmp.
    let _ = std::fs::remove_dir_all(env.local(&dir));
}

/// Plain FTP through a 10 ms round trip capped at 8 MiB/s — the passive
/// data connections shaped too — and with every connection reset midway:
/// the tree restores exactly.
#[test]
fn restores_through_a_slow_link_and_a_reset_are_exact() {
    let Some(env) = Env::get() else { return };
    let dir = unique("link");
    let storage = Arc::new(FtpStorage::new(env.settings(&dir)).unwrap());
    let repo = Repo::init(storage, PW).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree::build_rich_tree(&src);
    tree::write(&src.join("big.bin"), &tree::random_bytes(23, 3 << 20));
    let snap = repo
        .backup_tree(&src, &bref(), &TreeBackupOptions::default(), None)
        .unwrap();
    let upstream: SocketAddr = format!("{}:{}", env.host, env.port).parse().unwrap();
    let link = common::slow_link(upstream, true);
    let mut via = env.settings(&dir);
    via.host = "127.0.0.1".into();
    via.port = link.addr().port();
    let remote = Repo::open(Arc::new(FtpStorage::new(via).unwrap()), PW).unwrap();
    common::restore_through_link(&remote, &link, &snap.id, &src, tmp.path());

    // A stream (a database dump) is written in order from runs of spans,
    // each run one transfer: cut midway, it still comes out exact.
    let dump = tree::random_bytes(31, 6 << 20);
    let streamed = repo
        .backup_stream(
            Box::new(std::io::Cursor::new(dump.clone())),
            "db.dump",
            &bref(),
            None,
        )
        .unwrap();
    let remote = Repo::open(Arc::clone(remote.storage()), PW).unwrap();
    for cut in [false, true] {
        let mut out = Vec::new();
        std::thread::scope(|s| {
            if cut {
                s.spawn(|| {
                    std::thread::sleep(Duration::from_millis(300));
                    link.reset_connections();
                });
            }
            remote.restore_stream(&streamed.id, &mut out).unwrap();
        });
        assert!(out == dump, "the stream differs (cut: {cut})");
    }
    drop((repo, remote));
    let _ = std::fs::remove_dir_all(env.local(&dir));
}

/// A run of ranges read through one stream, with every connection reset
/// after the first range: the rest is read again from the range that
/// failed, on a new connection, and every byte is right.
#[test]
fn a_stream_of_ranges_cut_midway_resumes_at_the_range_that_failed() {
    let Some(env) = Env::get() else { return };
    let dir = unique("runs");
    let direct = FtpStorage::new(env.settings(&dir)).unwrap();
    let data = tree::random_bytes(29, 6 << 20);
    direct.put("data/ab/pack", &data).unwrap();
    let upstream: SocketAddr = format!("{}:{}", env.host, env.port).parse().unwrap();
    let link = common::slow_link(upstream, true);
    let mut via = env.settings(&dir);
    via.host = "127.0.0.1".into();
    via.port = link.addr().port();
    let remote = FtpStorage::new(via).unwrap();
    let mib = 1u64 << 20;
    let asked: Vec<(u64, u64)> = (0..6).map(|i| (i * mib + 7, mib / 2)).collect();
    let mut reads = remote.get_ranges("data/ab/pack", asked.clone());
    let mut got = vec![reads.next().unwrap().unwrap()];
    link.reset_connections();
    got.extend(reads.map(|r| r.unwrap()));
    for ((offset, length), got) in asked.iter().zip(&got) {
        assert!(
            got[..] == data[*offset as usize..(offset + length) as usize],
            "the range at {offset} differs"
        );
    }
    assert_eq!(got.len(), asked.len());
    let _ = std::fs::remove_dir_all(env.local(&dir));
}
