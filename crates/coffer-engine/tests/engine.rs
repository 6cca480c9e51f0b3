//! The engine against a real local repository, with plain `restic` as the
//! independent judge of every repository a test leaves behind: repository
//! keys, tree and stream round trips, restore modes, failures that record
//! nothing, snapshots, maintenance, locks and panics.

use std::fs;
use std::io;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use coffer_engine::{
    ContentKind, EngineError, Repo, RestoreMode, SnapshotFilter, TreeBackupOptions,
};
use coffer_model::{BackupId, BackupRef, ComponentName, Label};
use coffer_targets::{LocalStorage, Storage};
use coffer_testkit::tree::{self, assert_same_tree};
use coffer_testkit::{restic, restic_bytes, restic_check};

mod common;

use common::*;
#[test]
fn init_open_and_password_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    assert!(matches!(
        Repo::open(storage(&dir), PW),
        Err(EngineError::RepositoryNotFound { .. })
    ));
    new_repo(&dir);
    assert!(matches!(
        Repo::init(storage(&dir), PW),
        Err(EngineError::AlreadyInitialized { .. })
    ));
    let err = Repo::open(storage(&dir), "wrong").unwrap_err();
    assert!(matches!(err, EngineError::WrongPassword { .. }), "{err}");
    assert!(err.to_string().contains("wrong password"));
    Repo::open(storage(&dir), PW).expect("open");
    restic_check(&dir, PW);
}

#[test]
fn keys_can_be_added_listed_and_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let repo = new_repo(&dir);
    let id = repo.add_key("second password").unwrap();
    let keys = repo.list_keys().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys.iter().filter(|k| k.current).count(), 1);
    let current = keys.iter().find(|k| k.current).unwrap().id.clone();
    // the new password opens it, also with plain restic
    let second = Repo::open(storage(&dir), "second password").unwrap();
    restic_check(&dir, "second password");
    // refuse removing the key in use
    assert!(matches!(
        repo.remove_key(&current),
        Err(EngineError::InvalidInput(_))
    ));
    // remove the first key through the second
    second.remove_key(&current[..8]).unwrap();
    assert!(matches!(
        Repo::open(storage(&dir), PW),
        Err(EngineError::WrongPassword { .. })
    ));
    // the last key cannot go
    let err = second.remove_key(&id).unwrap_err();
    assert!(
        err.to_string().contains("key this session") || err.to_string().contains("last key"),
        "{err}"
    );
}

#[test]
fn tree_round_trip_keeps_content_and_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree::build_rich_tree(&src);
    let dir = tmp.path().join("repo");
    let repo = new_repo(&dir);
    let snap = backup_dir(&repo, &src, "files");
    assert_eq!(snap.kind, Some(ContentKind::Tree));
    let b = snap.backup.as_ref().unwrap();
    assert_eq!(b.component.as_str(), "files");
    assert_eq!(b.component_count, 1);
    assert!(
        snap.tags
            .iter()
            .any(|t| t == &format!("coffer-backup={}", b.backup_id))
    );

    let dest = tmp.path().join("restored");
    repo.restore_tree(&snap.id, &dest, RestoreMode::RefuseNonEmpty, None)
        .expect("restore");
    assert_same_tree(&src, &dest);
    // the sparse file came back with its holes
    assert!(tree::allocated_bytes(&dest.join("sparse.img")) < 1 << 20);
    // no staging directory is left behind
    let leftovers: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".coffer-restore")
        })
        .collect();
    assert!(leftovers.is_empty());
    restic_check(&dir, PW);

    // plain restic restores the same tree (disaster recovery without Coffer)
    let via_restic = tmp.path().join("via-restic");
    if restic(
        &dir,
        PW,
        &[
            "restore",
            &snap.id,
            "--target",
            via_restic.to_str().unwrap(),
        ],
    )
    .is_some()
    {
        let (a, b) = (tree::walk(&src), tree::walk(&via_restic.join("files")));
        assert_eq!(a.len(), b.len());
        for (k, e) in &a {
            assert_eq!(e.content_hash, b[k].content_hash, "{}", k.display());
            assert_eq!(e.mode, b[k].mode, "{}", k.display());
        }
    }
}

#[test]
fn restore_refuses_non_empty_and_supports_overwrite_and_mirror() {
    restore_modes_behave(false);
}

#[test]
fn a_sealed_tree_restores_with_overwrite_and_mirror() {
    restore_modes_behave(true);
}

/// Refuse, overwrite and mirror on a destination with a changed and an
/// extra file; `sealed` backs the tree up sealed to an age recipient.
fn restore_modes_behave(sealed: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree::write(&src.join("a.txt"), b"from backup");
    tree::write(&src.join("sub/b.txt"), b"also from backup");
    let dir = tmp.path().join("repo");
    let mut repo = new_repo(&dir);
    let snap = if sealed {
        let (identity, snap) = sealed_tree_backup(&repo, &src);
        repo = repo.with_identity(identity);
        snap
    } else {
        backup_dir(&repo, &src, "files")
    };

    let dest = tmp.path().join("dest");
    tree::write(&dest.join("a.txt"), b"local change");
    tree::write(&dest.join("extra.txt"), b"not in backup");
    let err = repo
        .restore_tree(&snap.id, &dest, RestoreMode::RefuseNonEmpty, None)
        .unwrap_err();
    assert!(matches!(err, EngineError::DestinationNotEmpty(_)), "{err}");
    assert_eq!(fs::read(dest.join("a.txt")).unwrap(), b"local change");

    repo.restore_tree(&snap.id, &dest, RestoreMode::Overwrite, None)
        .unwrap();
    assert_eq!(fs::read(dest.join("a.txt")).unwrap(), b"from backup");
    assert_eq!(
        fs::read(dest.join("sub/b.txt")).unwrap(),
        b"also from backup"
    );
    assert!(
        dest.join("extra.txt").exists(),
        "overwrite keeps other files"
    );

    repo.restore_tree(&snap.id, &dest, RestoreMode::Mirror, None)
        .unwrap();
    assert!(
        !dest.join("extra.txt").exists(),
        "mirror deletes other files"
    );
    assert_same_tree(&src, &dest);
}

#[test]
fn excludes_leave_files_out() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree::write(&src.join("keep.txt"), b"keep");
    tree::write(&src.join("skip.tmp"), b"skip");
    tree::write(&src.join("cache/big.bin"), b"skip too");
    tree::write(&src.join("sub/deep.tmp"), b"skip at any depth");
    tree::write(&src.join("sub/deep.txt"), b"keep");
    let repo = new_repo(&tmp.path().join("repo"));
    // a leading '!' would turn rustic_core's glob into a whitelist: refused
    let bad = TreeBackupOptions {
        excludes: vec!["!*.txt".into()],
    };
    assert!(matches!(
        repo.backup_tree(&src, &bref("test", "files", 1), &bad, None),
        Err(EngineError::InvalidInput(_))
    ));
    let opts = TreeBackupOptions {
        excludes: vec!["*.tmp".into(), "cache".into()],
    };
    let snap = repo
        .backup_tree(&src, &bref("test", "files", 1), &opts, None)
        .unwrap();
    let dest = tmp.path().join("dest");
    repo.restore_tree(&snap.id, &dest, RestoreMode::RefuseNonEmpty, None)
        .unwrap();
    assert!(dest.join("keep.txt").exists());
    assert!(dest.join("sub/deep.txt").exists());
    assert!(!dest.join("skip.tmp").exists());
    assert!(!dest.join("sub/deep.tmp").exists());
    assert!(!dest.join("cache").exists());
    assert_eq!(snap.files, 2);
}

#[test]
fn unchanged_rebackup_reads_only_metadata_and_adds_under_one_percent() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    for i in 0..200u64 {
        tree::write(
            &src.join(format!("d{}/f{i}.bin", i % 10)),
            &tree::random_bytes(i, 50_000),
        );
    }
    let dir = tmp.path().join("repo");
    let repo = new_repo(&dir);
    let first = backup_dir(&repo, &src, "files");
    assert_eq!(first.files, 200);
    let second = backup_dir(&repo, &src, "files");
    assert_eq!(
        second.files_unmodified, 200,
        "every file taken from the parent"
    );
    assert!(
        second.bytes_added * 100 < first.bytes,
        "second backup added {} bytes of {}",
        second.bytes_added,
        first.bytes
    );
    // another component does not use this one as parent
    let other = backup_dir(&repo, &src, "other");
    assert_eq!(other.files_unmodified, 0);
    assert!(
        other.bytes_added * 100 < first.bytes,
        "but its data deduplicates"
    );
    restic_check(&dir, PW);
}

#[test]
fn stream_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let repo = new_repo(&dir);
    let data = tree::random_bytes(7, 5_000_000);
    let snap = repo
        .backup_stream(
            Box::new(io::Cursor::new(data.clone())),
            "db.dump",
            &bref("test", "db", 1),
            None,
        )
        .unwrap();
    assert_eq!(snap.kind, Some(ContentKind::Stream));
    assert_eq!(snap.bytes, 5_000_000);
    let mut out = Vec::new();
    repo.restore_stream(&snap.id, &mut out).unwrap();
    assert_eq!(out, data);
    // a stream is not a tree and vice versa
    assert!(matches!(
        repo.restore_tree(
            &snap.id,
            &tmp.path().join("x"),
            RestoreMode::RefuseNonEmpty,
            None
        ),
        Err(EngineError::InvalidInput(_))
    ));
    // plain restic can dump it
    if let Some(dumped) = restic_bytes(&dir, PW, &["dump", &snap.id, "/db.dump"]) {
        assert!(dumped == data, "restic dump returns the stream's bytes");
    }
    restic_check(&dir, PW);
}

#[test]
fn a_stream_that_fails_midway_records_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let repo = new_repo(&dir);
    let r = bref("test", "db", 1);
    let err = repo
        .backup_stream(
            Box::new(FailingReader {
                ok: 3_000_000,
                done: 0,
            }),
            "db.dump",
            &r,
            None,
        )
        .unwrap_err();
    let EngineError::Incomplete { component, reasons } = &err else {
        panic!("expected Incomplete, got {err}");
    };
    assert_eq!(component, "db");
    assert!(
        reasons.iter().any(|r| r.contains("connection reset")),
        "{reasons:?}"
    );
    assert!(
        repo.snapshots(&SnapshotFilter::default())
            .unwrap()
            .is_empty()
    );
    restic_check(&dir, PW);
}

#[test]
fn a_dump_command_that_exits_non_zero_records_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let repo = new_repo(&dir);
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("head -c 2000000 /dev/zero; echo 'pg_dump: error: connection lost' >&2; exit 3");
    let err = repo
        .backup_command(&mut cmd, "db.dump", &bref("test", "db", 1), None)
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, EngineError::Incomplete { .. }), "{text}");
    assert!(
        text.contains("exit status: 3") && text.contains("connection lost"),
        "{text}"
    );
    assert!(
        repo.snapshots(&SnapshotFilter::default())
            .unwrap()
            .is_empty()
    );

    // and a command that succeeds is recorded with exactly its output
    let mut ok = Command::new("sh");
    ok.arg("-c").arg("printf 'dump contents'");
    let snap = repo
        .backup_command(&mut ok, "db.dump", &bref("test", "db", 1), None)
        .unwrap();
    let mut out = Vec::new();
    repo.restore_stream(&snap.id, &mut out).unwrap();
    assert_eq!(out, b"dump contents");
    restic_check(&dir, PW);
}

#[test]
fn snapshots_carry_their_backup_and_can_be_filtered() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree::write(&src.join("x"), b"x");
    let repo = new_repo(&tmp.path().join("repo"));
    let id = BackupId::generate(&Label::new("nightly").unwrap());
    for c in ["files", "config"] {
        let r = BackupRef::new(id.clone(), ComponentName::new(c).unwrap(), 3);
        repo.backup_tree(&src, &r, &TreeBackupOptions::default(), None)
            .unwrap();
    }
    let r = BackupRef::new(id.clone(), ComponentName::new("db").unwrap(), 3);
    repo.backup_stream(
        Box::new(io::Cursor::new(b"sql".to_vec())),
        "db.sql",
        &r,
        None,
    )
    .unwrap();
    backup_dir(&repo, &src, "files"); // another backup, label "test"

    let all = repo.snapshots(&SnapshotFilter::default()).unwrap();
    assert_eq!(all.len(), 4);
    let of_backup = repo
        .snapshots(&SnapshotFilter {
            backup_id: Some(id.to_string()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(of_backup.len(), 3);
    assert!(
        of_backup
            .iter()
            .all(|s| s.backup.as_ref().unwrap().component_count == 3)
    );
    let nightly = repo
        .snapshots(&SnapshotFilter {
            label: Some("nightly".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(nightly.len(), 3);
    let files = repo
        .snapshots(&SnapshotFilter {
            component: Some("files".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(files.len(), 2);

    // plain restic finds a backup by its tag, as docs/disaster-recovery.md says
    let dir = tmp.path().join("repo");
    let tag = format!("coffer-backup={id}");
    if let Some(json) = restic(&dir, PW, &["snapshots", "--json", "--tag", &tag]) {
        let listed: serde_json::Value = serde_json::from_str(&json).unwrap();
        let mut ids: Vec<String> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect();
        let mut want: Vec<String> = of_backup.iter().map(|s| s.id.clone()).collect();
        ids.sort();
        want.sort();
        assert_eq!(ids, want, "full ids, the same set");
    }
}

#[test]
fn forget_and_prune_free_space_and_keep_the_rest_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let repo = new_repo(&dir);
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    tree::write(&a.join("big.bin"), &tree::random_bytes(10, 8_000_000));
    tree::write(&b.join("other.bin"), &tree::random_bytes(11, 2_000_000));
    let sa = backup_dir(&repo, &a, "a");
    let sb = backup_dir(&repo, &b, "b");
    let size = |d: &Path| -> u64 { tree::walk(d).values().map(|e| e.size).sum() };
    let before = size(&dir);
    assert_eq!(repo.forget(std::slice::from_ref(&sa.id)).unwrap(), 1);
    // two-phase by default: the unused packs are only marked
    let report = repo.prune(false).unwrap();
    assert!(report.packs_marked > 0, "{report:?}");
    assert_eq!(report.packs_removed, 0, "{report:?}");
    assert!(size(&dir) + 1_000_000 > before, "nothing deleted yet");
    restic_check(&dir, PW);
    // instant deletes them (the marked ones included)
    let report = repo.prune(true).unwrap();
    assert!(report.packs_removed > 0, "{report:?}");
    assert!(report.bytes_freed > 6_000_000, "{report:?}");
    let after = size(&dir);
    assert!(after + 6_000_000 < before, "{before} -> {after}");
    let dest = tmp.path().join("dest");
    repo.restore_tree(&sb.id, &dest, RestoreMode::RefuseNonEmpty, None)
        .unwrap();
    assert_same_tree(&b, &dest);
    restic_check(&dir, PW);
}

#[test]
fn a_prune_plans_again_when_a_backup_ended_after_its_plan() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let repo = new_repo(&dir);
    let a = tmp.path().join("a");
    tree::write(&a.join("big.bin"), &tree::random_bytes(12, 6_000_000));
    let sa = backup_dir(&repo, &a, "a");
    assert_eq!(repo.forget(std::slice::from_ref(&sa.id)).unwrap(), 1);
    let instant = coffer_engine::PruneSettings {
        instant: true,
        grace_secs: None,
    };
    // Planned (under a shared lock, released after): a's packs are unused.
    let prepared = repo.prune_prepare(instant, None).unwrap();
    // Meanwhile a backup of the same data ends; it reuses those packs.
    let sc = backup_dir(&repo, &a, "c");
    let report = prepared.execute(std::time::Duration::from_secs(5)).unwrap();
    assert!(report.replanned, "{report:?}");
    assert_eq!(report.packs_removed, 0, "{report:?}");
    // The stale plan would have deleted c's data: it restores whole.
    let dest = tmp.path().join("dest");
    repo.restore_tree(&sc.id, &dest, RestoreMode::RefuseNonEmpty, None)
        .unwrap();
    assert_same_tree(&a, &dest);
    restic_check(&dir, PW);
    // Nothing in between: the plan stands, and the report says how long
    // each phase took.
    assert_eq!(repo.forget(std::slice::from_ref(&sc.id)).unwrap(), 1);
    let report = repo.prune_with(instant, None).unwrap();
    assert!(!report.replanned, "{report:?}");
    assert!(report.packs_removed > 0, "{report:?}");
    assert!(
        report.planning_secs > 0.0 && report.exclusive_secs > 0.0,
        "{report:?}"
    );
    restic_check(&dir, PW);
}

#[test]
fn check_finds_a_flipped_byte_and_restore_refuses_wrong_data() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let repo = new_repo(&dir);
    let src = tmp.path().join("src");
    tree::write(&src.join("only.bin"), &tree::random_bytes(3, 1_000_000));
    let snap = backup_dir(&repo, &src, "files");
    assert!(repo.check(Some("all")).unwrap().is_ok());
    assert!(repo.check(Some("50%")).unwrap().is_ok());
    assert!(repo.check(Some("1/2")).unwrap().is_ok());
    assert!(matches!(
        repo.check(Some("bogus")),
        Err(EngineError::InvalidInput(_))
    ));

    // the largest pack holds the file's data
    let packs: Vec<_> = tree::walk(&dir.join("data"))
        .into_iter()
        .filter(|(_, e)| e.kind == "file")
        .collect();
    let (rel, _) = packs.iter().max_by_key(|(_, e)| e.size).unwrap();
    let pack = dir.join("data").join(rel);
    let pack_id = pack.file_name().unwrap().to_string_lossy().into_owned();
    let mut bytes = fs::read(&pack).unwrap();
    bytes[100] ^= 0x01;
    fs::write(&pack, bytes).unwrap();

    let report = repo.check(Some("all")).unwrap();
    assert!(!report.is_ok());
    assert!(
        report.errors.iter().any(|e| e.contains(&pack_id[..8])),
        "the damaged pack {pack_id} should be named: {:?}",
        report.errors
    );
    let dest = tmp.path().join("dest");
    let err = repo
        .restore_tree(&snap.id, &dest, RestoreMode::RefuseNonEmpty, None)
        .unwrap_err();
    assert!(
        !dest.exists(),
        "nothing half-written at the destination ({err})"
    );
}

#[test]
fn an_exclusive_lock_blocks_backups() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let repo = new_repo(&dir);
    let src = tmp.path().join("src");
    tree::write(&src.join("x"), b"x");
    let held = coffer_engine::lock::RepoLock::acquire(
        Arc::clone(repo.storage()),
        coffer_engine::lock::LockMode::Exclusive,
        "prune",
    )
    .unwrap();
    let err = repo
        .backup_tree(
            &src,
            &bref("test", "files", 1),
            &TreeBackupOptions::default(),
            None,
        )
        .unwrap_err();
    assert!(matches!(err, EngineError::Locked { .. }), "{err}");
    drop(held);
    backup_dir(&repo, &src, "files");
    restic_check(&dir, PW);
}

/// Local storage that panics — as rustic_core does on some I/O errors — on
/// ranged reads (restore) or on writes of pack files (backup).
#[derive(Debug)]
struct PanickyStorage {
    inner: LocalStorage,
    on_read: bool,
    on_pack_write: bool,
}

impl Storage for PanickyStorage {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn put_parts(&self, key: &str, parts: &[&[u8]]) -> coffer_targets::StorageResult<()> {
        if self.on_pack_write && key.starts_with("data/") {
            panic!("simulated engine panic writing {key}")
        }
        self.inner.put_parts(key, parts)
    }
    fn get(&self, key: &str) -> coffer_targets::StorageResult<Vec<u8>> {
        self.inner.get(key)
    }
    fn get_range(
        &self,
        key: &str,
        offset: u64,
        len: u64,
    ) -> coffer_targets::StorageResult<Vec<u8>> {
        if self.on_read {
            panic!("simulated engine panic reading {key}")
        }
        self.inner.get_range(key, offset, len)
    }
    fn list(&self, prefix: &str) -> coffer_targets::StorageResult<Vec<coffer_targets::ObjectInfo>> {
        self.inner.list(prefix)
    }
    fn delete(&self, key: &str) -> coffer_targets::StorageResult<()> {
        self.inner.delete(key)
    }
    fn ensure_prefix(&self, prefix: &str) -> coffer_targets::StorageResult<()> {
        self.inner.ensure_prefix(prefix)
    }
}

fn panicky(dir: &Path, on_read: bool, on_pack_write: bool) -> Repo {
    let storage = PanickyStorage {
        inner: LocalStorage::new(dir),
        on_read,
        on_pack_write,
    };
    Repo::open(Arc::new(storage), PW).unwrap()
}

#[test]
fn a_panic_inside_the_engine_is_a_clean_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let src = tmp.path().join("src");
    tree::write(&src.join("f.bin"), &tree::random_bytes(5, 200_000));
    let snap = backup_dir(&new_repo(&dir), &src, "files");

    // restore into a fresh destination: nothing appears
    let dest = tmp.path().join("dest");
    let err = panicky(&dir, true, false)
        .restore_tree(&snap.id, &dest, RestoreMode::RefuseNonEmpty, None)
        .unwrap_err();
    assert!(matches!(err, EngineError::Panicked(_)), "{err}");
    assert!(!dest.exists());

    // mirror over an existing tree: it stays exactly as it was
    let existing = tmp.path().join("existing");
    tree::write(&existing.join("mine.txt"), b"operator data");
    tree::write(&existing.join("f.bin"), b"older version");
    let before = tmp.path().join("before");
    fs::create_dir_all(&before).unwrap();
    for name in ["mine.txt", "f.bin"] {
        fs::copy(existing.join(name), before.join(name)).unwrap();
    }
    let err = panicky(&dir, true, false)
        .restore_tree(&snap.id, &existing, RestoreMode::Mirror, None)
        .unwrap_err();
    assert!(matches!(err, EngineError::Panicked(_)), "{err}");
    assert_eq!(
        fs::read(existing.join("mine.txt")).unwrap(),
        b"operator data"
    );
    assert_eq!(fs::read(existing.join("f.bin")).unwrap(), b"older version");
    assert!(staging_leftovers(tmp.path()).is_empty(), "staging removed");

    // a backup whose pack upload panics records nothing and leaves a valid repository
    let src2 = tmp.path().join("src2");
    tree::write(&src2.join("g.bin"), &tree::random_bytes(6, 3_000_000));
    let err = panicky(&dir, false, true)
        .backup_tree(
            &src2,
            &bref("test", "other", 1),
            &TreeBackupOptions::default(),
            None,
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::Panicked(_) | EngineError::Incomplete { .. }
        ),
        "{err}"
    );

    // and the locks were released: a normal handle works at once
    let repo = Repo::open(storage(&dir), PW).unwrap();
    let snaps = repo.snapshots(&SnapshotFilter::default()).unwrap();
    assert_eq!(snaps.len(), 1, "the failed backup left no snapshot");
    repo.restore_tree(&snap.id, &dest, RestoreMode::RefuseNonEmpty, None)
        .unwrap();
    assert_same_tree(&src, &dest);
    restic_check(&dir, PW);
}

#[test]
fn progress_is_reported() {
    use std::sync::Mutex;
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    for i in 0..5u64 {
        tree::write(&src.join(format!("f{i}")), &tree::random_bytes(i, 100_000));
    }
    let repo = new_repo(&tmp.path().join("repo"));
    let last = Arc::new(Mutex::new(coffer_engine::ProgressInfo::default()));
    let l = Arc::clone(&last);
    let cb: coffer_engine::ProgressFn = Arc::new(move |p| *l.lock().unwrap() = p);
    let snap = repo
        .backup_tree(
            &src,
            &bref("test", "files", 1),
            &TreeBackupOptions::default(),
            Some(cb.clone()),
        )
        .unwrap();
    let p = *last.lock().unwrap();
    assert_eq!(p.bytes_done, 500_000);
    assert_eq!(p.files_done, 5);
    repo.restore_tree(
        &snap.id,
        &tmp.path().join("dest"),
        RestoreMode::RefuseNonEmpty,
        Some(cb),
    )
    .unwrap();
    let p = *last.lock().unwrap();
    assert_eq!((p.bytes_done, p.bytes_total), (500_000, Some(500_000)));
    assert_eq!((p.files_done, p.files_total), (5, Some(5)));
}
