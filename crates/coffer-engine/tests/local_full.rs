//! A local target whose file system fills up (a real tmpfs of a few MiB,
//! when the tests run as root): the backup fails cleanly, naming the full
//! disk; nothing is recorded; the repository stays valid; once there is
//! room the next backup works.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use coffer_engine::{Repo, RestoreMode, TreeBackupOptions};
use coffer_targets::LocalStorage;
use coffer_testkit::tree::{self, assert_same_tree};
use common::*;

/// A tmpfs of `mib` MiB at `dir`, unmounted when dropped; `None` when this
/// process may not mount (not root).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, mib: u32) -> Option<Self> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Self(dir.to_owned()))
    }

    fn grow(&self, mib: u32) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={mib}m")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

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

    fs.grow(64);
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
