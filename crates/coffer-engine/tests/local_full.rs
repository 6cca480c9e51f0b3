//! A local target whose file system fills up (a real tmpfs of a few MiB,
//! when the tests run as root): the backup fails cleanly, naming the full
//! disk; nothing is recorded; the repository stays valid; once there is
//! room the next backup works.

mod common;

use std::sync::Arc;

use coffer_engine::{Repo, RestoreMode, TreeBackupOptions};
use coffer_targets::LocalStorage;
use coffer_testkit::tmpfs::Tmpfs;
use coffer_testkit::tree::{self, assert_same_tree};
use common::*;

#[test]
fn a_full_local_target_fails_the_backup_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&tmp.path().join("disk"), 6) else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let dir = tmp.path().join("disk/repo");
    let repo = Repo::init(Arc::new(LocalStorage::new(&dir)), PW).unwrap();
    let src = tmp.path().join("src");
    for i in 0..12 {
        tree::write(
            &src.join(format!("f{i:02}.bin")),
            &tree::random_bytes(300 + i, 1 << 20),
        );
    }
    let err = repo
        .backup_tree(
            &src,
            &bref("full", "files", 1),
            &TreeBackupOptions::default(),
            None,
        )
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("no space"), "{msg}");
    assert!(
        repo.snapshots(&Default::default()).unwrap().is_empty(),
        "nothing recorded"
    );
    coffer_testkit::restic_check(&dir, PW);

    fs.resize(64);
    let snap = backup_dir(&repo, &src, "files");
    assert!(
        std::fs::read_dir(dir.join("locks")).unwrap().count() == 0,
        "the failed backup's locks went with the next one"
    );
    let dest = tmp.path().join("restored");
    repo.restore_tree(&snap.id, &dest, RestoreMode::RefuseNonEmpty, None)
        .unwrap();
    assert_same_tree(&src, &dest);
    coffer_testkit::restic_check(&dir, PW);
}
