//! Plain restic's locks: a `restic backup` in progress holds one in
//! `locks/`, which Coffer reads (decrypted with the repository key) and
//! which keeps a prune from running under it.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use coffer_engine::{EngineError, PruneSettings};
use common::*;

#[test]
fn a_running_restic_backup_blocks_prune_until_it_ends() {
    if !coffer_testkit::require_tool("restic") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let repo = new_repo(&dir);
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a"), b"some data").unwrap();
    backup_dir(&repo, &src, "files");
    assert!(repo.restic_locks().unwrap().is_empty());

    // `restic backup --stdin` holds its lock while it waits for input.
    let mut restic = Command::new("restic")
        .args(["-r"])
        .arg(&dir)
        .args(["backup", "--stdin", "--stdin-filename", "waiting", "-q"])
        .env("RESTIC_PASSWORD", PW)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let lock = loop {
        if let Some(l) = repo.restic_locks().unwrap().into_iter().next() {
            break l;
        }
        assert!(Instant::now() < deadline, "restic never took its lock");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!lock.stale && !lock.exclusive, "{lock:?}");
    assert!(lock.key.starts_with("locks/"), "{lock:?}");
    assert!(lock.holder.contains("pid"), "{lock:?}");

    match repo.prune_with(PruneSettings::default(), None) {
        Err(EngineError::Locked { holder, .. }) => {
            assert!(holder.contains("plain restic"), "{holder}");
        }
        other => panic!("prune ran under restic's lock: {other:?}"),
    }
    // Coffer's own lock was released: a prune later is not blocked by it.
    assert!(
        std::fs::read_dir(dir.join("coffer/locks"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 0
    );

    let mut stdin = restic.stdin.take().unwrap();
    stdin.write_all(b"from restic").unwrap();
    drop(stdin);
    let out = restic.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(repo.restic_locks().unwrap().is_empty());
    let report = repo
        .prune_with(
            PruneSettings {
                instant: false,
                grace_secs: Some(0),
            },
            None,
        )
        .unwrap();
    assert_eq!(report.packs_removed, 0, "{report:?}");
    coffer_testkit::restic_check(&dir, PW);
}
