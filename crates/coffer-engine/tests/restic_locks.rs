//! Plain restic's locks: a `restic backup` in progress holds one in
//! `locks/`, which Coffer reads (decrypted with the repository key) and
//! which keeps a prune from running under it.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

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
    wait_for("restic never took its lock", || {
        !repo.restic_locks().unwrap().is_empty()
    });
    let lock = repo.restic_locks().unwrap().remove(0);
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

fn restic(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new("restic")
        .arg("-r")
        .arg(dir)
        .args(args)
        .env("RESTIC_PASSWORD", PW)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn restic_sees_coffer_at_work_and_refuses_to_prune_under_it() {
    if !coffer_testkit::require_tool("restic") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let repo = new_repo(&dir);
    let (tx, backup) = waiting_backup(&repo, &dir, "slow");
    // restic reads Coffer's lock: its prune is refused, naming this process.
    let prune = restic(&dir, &["prune"]);
    let said = String::from_utf8_lossy(&prune.stderr);
    assert!(
        !prune.status.success(),
        "restic pruned under a Coffer backup"
    );
    assert!(
        said.contains("locked") && said.contains(&format!("PID {}", std::process::id())),
        "{said}"
    );
    // A shared restic operation goes on beside it, and Coffer does not count its own file as restic's.
    let listed = restic(&dir, &["snapshots", "--json"]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(
        repo.restic_locks().unwrap().is_empty(),
        "Coffer's own restic lock is not plain restic's"
    );

    tx.send(b"the dump".to_vec()).unwrap();
    drop(tx);
    backup.join().unwrap().unwrap();
    assert_eq!(
        std::fs::read_dir(dir.join("locks")).unwrap().count(),
        0,
        "released with the backup"
    );
    assert!(restic(&dir, &["prune"]).status.success());
    coffer_testkit::restic_check(&dir, PW);
}

#[test]
fn coffer_refuses_to_work_under_an_exclusive_restic_lock() {
    if !coffer_testkit::require_tool("restic") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let repo = new_repo(&dir);
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a"), b"a").unwrap();
    // `restic key passwd` holds an exclusive lock while it waits for the new password.
    let mut holder = Command::new("restic")
        .arg("-r")
        .arg(&dir)
        .args(["key", "passwd", "--new-password-file", "/dev/stdin"])
        .env("RESTIC_PASSWORD", PW)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("restic never took its lock", || {
        !repo.restic_locks().unwrap().is_empty()
    });
    let err = repo
        .backup_tree(
            &src,
            &bref("blocked", "files", 1),
            &coffer_engine::TreeBackupOptions::default(),
            None,
        )
        .unwrap_err();
    match &err {
        EngineError::Locked { holder, .. } => {
            assert!(
                holder.contains("plain restic") && holder.contains("exclusive"),
                "{holder}"
            )
        }
        other => panic!("backed up under restic's exclusive lock: {other:?}"),
    }
    let all = coffer_engine::SnapshotFilter::default();
    assert!(repo.snapshots(&all).unwrap().is_empty(), "nothing written");
    assert!(
        std::fs::read_dir(dir.join("coffer/locks"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 0,
        "Coffer's refused lock is gone"
    );
    let _ = holder.kill();
    let _ = holder.wait();
    // restic's lock of a process that is gone is stale: Coffer works again.
    backup_dir(&repo, &src, "files");
}
