//! Overwrite and mirror restores move entries into an existing destination
//! one by one: a failure midway must leave every old entry in place, and
//! success must leave no `.coffer-restore-*` staging behind.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use coffer_engine::{Repo, RestoreMode, TreeBackupOptions};
use coffer_model::{BackupId, BackupRef, ComponentName, Label};
use coffer_targets::LocalStorage;
use coffer_testkit::tree::{self, assert_same_tree};

fn backup(dir: &Path, src: &Path) -> (Repo, String) {
    let repo = Repo::init(Arc::new(LocalStorage::new(dir)), "pw").unwrap();
    let id = BackupId::generate(&Label::new("test").unwrap());
    let r = BackupRef::new(id, ComponentName::new("files").unwrap(), 1);
    let snap = repo
        .backup_tree(src, &r, &TreeBackupOptions::default(), None)
        .unwrap();
    (repo, snap.id)
}

/// Path → content (`dir` for directories).
fn listing(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            if path.is_dir() {
                todo.push(path);
                out.insert(rel, "dir".to_owned());
            } else {
                out.insert(rel, String::from_utf8(fs::read(&path).unwrap()).unwrap());
            }
        }
    }
    out
}

fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".coffer-restore-"))
        .collect()
}

/// Sets or clears the immutable flag (`chattr`): nothing below the
/// directory can then be added, removed or renamed, even by root.
fn immutable(path: &Path, on: bool) -> bool {
    Command::new("chattr")
        .arg(if on { "+i" } else { "-i" })
        .arg(path)
        .status()
        .is_ok_and(|s| s.success())
}

/// Clears the flag however the test ends, so the temporary directory goes.
struct Unlock(PathBuf);

impl Drop for Unlock {
    fn drop(&mut self) {
        immutable(&self.0, false);
    }
}

#[test]
fn a_restore_failing_midway_keeps_every_old_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree::write(&src.join("a.txt"), b"new a");
    tree::write(&src.join("locked/f"), b"new f");
    tree::write(&src.join("fresh.txt"), b"fresh");
    let (repo, snap) = backup(&tmp.path().join("repo"), &src);

    let dest = tmp.path().join("dest");
    tree::write(&dest.join("a.txt"), b"old a");
    tree::write(&dest.join("mine.txt"), b"not in the backup");
    tree::write(&dest.join("locked/f"), b"old f");
    let before = listing(&dest);
    let locked = dest.join("locked");
    if !immutable(&locked, true) {
        eprintln!("cannot set the immutable flag (needs root, chattr, ext4/xfs/btrfs): skipped");
        return;
    }
    let unlock = Unlock(locked);
    // Mirror first: it deletes `mine.txt` before it reaches `locked/f`.
    for mode in [RestoreMode::Mirror, RestoreMode::Overwrite] {
        let e = repo.restore_tree(&snap, &dest, mode, None).unwrap_err();
        assert!(e.to_string().contains("locked"), "{mode:?}: {e}");
        assert_eq!(listing(&dest), before, "{mode:?}: the destination changed");
        assert!(leftovers(tmp.path()).is_empty(), "{mode:?}");
        assert!(leftovers(&dest).is_empty(), "{mode:?}");
    }
    drop(unlock);
    repo.restore_tree(&snap, &dest, RestoreMode::Mirror, None)
        .unwrap();
    assert_same_tree(&src, &dest);
    assert!(leftovers(tmp.path()).is_empty());
}

#[test]
fn overwrite_and_mirror_leave_no_staging_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree::build_rich_tree(&src);
    let (repo, snap) = backup(&tmp.path().join("repo"), &src);
    let dest = tmp.path().join("dest");
    tree::write(&dest.join("extra/old.txt"), b"not in the backup");
    repo.restore_tree(&snap, &dest, RestoreMode::Overwrite, None)
        .unwrap();
    assert!(dest.join("extra/old.txt").exists());
    assert!(leftovers(tmp.path()).is_empty() && leftovers(&dest).is_empty());
    repo.restore_tree(&snap, &dest, RestoreMode::Mirror, None)
        .unwrap();
    assert_same_tree(&src, &dest);
    assert!(leftovers(tmp.path()).is_empty() && leftovers(&dest).is_empty());
}

#[test]
fn one_file_or_directory_of_a_snapshot_is_restored_under_its_name() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree::write(&src.join("docs/2024/report.txt"), b"report");
    tree::write(&src.join("docs/2024/deep/x"), b"x");
    tree::write(&src.join("docs/readme"), b"readme");
    tree::write(&src.join("other"), b"other");
    let (repo, snap) = backup(&tmp.path().join("repo"), &src);
    let dest = tmp.path().join("dest");

    // A directory into a new place: dest/2024 and only what was below it.
    repo.restore_part(
        &snap,
        Path::new("docs/2024"),
        &dest,
        RestoreMode::RefuseNonEmpty,
        None,
    )
    .unwrap();
    assert_same_tree(&src.join("docs/2024"), &dest.join("2024"));
    assert_eq!(fs::read_dir(&dest).unwrap().count(), 1);

    // One file back into its live directory: only that entry is replaced.
    let live = src.join("docs/2024");
    fs::write(live.join("report.txt"), b"damaged").unwrap();
    fs::write(live.join("since"), b"written since").unwrap();
    repo.restore_part(
        &snap,
        Path::new("docs/2024/report.txt"),
        &live,
        RestoreMode::Overwrite,
        None,
    )
    .unwrap();
    assert_eq!(fs::read(live.join("report.txt")).unwrap(), b"report");
    assert_eq!(
        fs::read(live.join("since")).unwrap(),
        b"written since",
        "siblings stay"
    );
    assert_eq!(fs::read(live.join("deep/x")).unwrap(), b"x");
    assert!(leftovers(&live).is_empty());

    // Refused: a non-empty place by default, mirror, a missing or unsafe path.
    let refused = |part: &str, mode| {
        repo.restore_part(&snap, Path::new(part), &live, mode, None)
            .unwrap_err()
            .to_string()
    };
    assert!(refused("docs/readme", RestoreMode::RefuseNonEmpty).contains("not empty"));
    assert!(refused("docs/readme", RestoreMode::Mirror).contains("mirror"));
    assert!(refused("docs/missing", RestoreMode::Overwrite).contains("not in snapshot"));
    assert!(refused("docs/../other", RestoreMode::Overwrite).contains("plain names"));
    assert!(refused("", RestoreMode::Overwrite).contains("name a file or directory"));
    assert_eq!(
        fs::read(live.join("since")).unwrap(),
        b"written since",
        "nothing changed"
    );
}
