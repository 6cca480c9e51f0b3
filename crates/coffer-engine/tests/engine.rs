//! The engine against a real local repository, with plain `restic` as the
//! independent judge of every repository a test leaves behind.

use std::fs;
use std::io::{self, Read};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use coffer_engine::{
    AgeIdentity, AgeRecipients, ContentKind, EngineError, Repo, RestoreMode, SnapshotFilter,
    TreeBackupOptions,
};
use coffer_model::{BackupId, BackupRef, ComponentName, Label};
use coffer_targets::{LocalStorage, Storage};
use coffer_testkit::tree::{self, assert_same_tree};
use coffer_testkit::{restic, restic_bytes, restic_check};

const PW: &str = "correct horse battery staple";

fn storage(dir: &Path) -> Arc<dyn Storage> {
    Arc::new(LocalStorage::new(dir))
}

fn new_repo(dir: &Path) -> Repo {
    Repo::init(storage(dir), PW).expect("init")
}

fn bref(label: &str, component: &str, count: u32) -> BackupRef {
    let id = BackupId::generate(&Label::new(label).unwrap());
    BackupRef::new(id, ComponentName::new(component).unwrap(), count)
}

fn backup_dir(repo: &Repo, src: &Path, component: &str) -> coffer_engine::SnapshotInfo {
    repo.backup_tree(
        src,
        &bref("test", component, 1),
        &TreeBackupOptions::default(),
        None,
    )
    .expect("backup")
}

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

/// A reader that fails after `ok` bytes, like a dump whose connection drops.
struct FailingReader {
    ok: usize,
    done: usize,
}

impl Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done >= self.ok {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "connection reset by peer",
            ));
        }
        let n = buf.len().min(self.ok - self.done);
        buf[..n].fill(0x5a);
        self.done += n;
        Ok(n)
    }
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

fn staging_leftovers(parent: &Path) -> Vec<String> {
    fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".coffer-restore-"))
        .collect()
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

#[test]
fn a_file_over_4_gib_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    // Mostly a hole, so the test is cheap on disk, with data past 4 GiB.
    let big = src.join("big.img");
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = fs::File::create(&big).unwrap();
        f.write_all(&tree::random_bytes(20, 1 << 20)).unwrap();
        f.seek(SeekFrom::Start((4 << 30) + 12345)).unwrap();
        f.write_all(&tree::random_bytes(21, 1 << 20)).unwrap();
    }
    let dir = tmp.path().join("repo");
    let repo = new_repo(&dir);
    let snap = backup_dir(&repo, &src, "big");
    assert!(snap.bytes > 4 << 30);
    let dest = tmp.path().join("dest");
    repo.restore_tree(&snap.id, &dest, RestoreMode::RefuseNonEmpty, None)
        .unwrap();
    assert_same_tree(&src, &dest);
    assert!(tree::allocated_bytes(&dest.join("big.img")) < 64 << 20);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn name() -> impl Strategy<Value = String> {
        // unicode, spaces, newlines, dots — but never "." or ".."
        "[a-zA-Z0-9 ü€\n._-]{1,12}".prop_filter("not . or ..", |s| s != "." && s != "..")
    }

    /// One generated file: path components, content, mode, mtime seconds and nanoseconds.
    type GenFile = (Vec<String>, Vec<u8>, u32, i64, u32);

    fn files() -> impl Strategy<Value = Vec<GenFile>> {
        prop::collection::vec(
            (
                prop::collection::vec(name(), 1..4),
                prop::collection::vec(any::<u8>(), 0..20_000),
                prop::sample::select(vec![0o600u32, 0o644, 0o755, 0o400, 0o4755]),
                0i64..2_000_000_000,
                0u32..1_000_000_000,
            ),
            1..12,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

        #[test]
        fn random_trees_round_trip_exactly(files in files()) {
            let tmp = tempfile::tempdir().unwrap();
            let src = tmp.path().join("src");
            fs::create_dir_all(&src).unwrap();
            let mut made = Vec::new();
            for (parts, content, mode, secs, nanos) in &files {
                let rel: std::path::PathBuf = parts.iter().collect();
                let path = src.join(&rel);
                // skip paths that collide with an existing file or directory
                if made.iter().any(|m: &std::path::PathBuf| m.starts_with(&rel) || rel.starts_with(m)) {
                    continue;
                }
                tree::write(&path, content);
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(&path, fs::Permissions::from_mode(*mode)).unwrap();
                tree::set_mtime(&path, *secs, *nanos);
                made.push(rel);
            }
            let dir = tmp.path().join("repo");
            let repo = Repo::init(storage(&dir), PW).unwrap();
            let snap = backup_dir(&repo, &src, "files");
            let dest = tmp.path().join("dest");
            repo.restore_tree(&snap.id, &dest, RestoreMode::RefuseNonEmpty, None).unwrap();
            let (a, b) = (tree::walk(&src), tree::walk(&dest));
            for (k, e) in &a {
                // directory mtimes changed while files were added; compare files exactly
                if e.kind == "file" {
                    prop_assert_eq!(Some(e), b.get(k), "{}", k.display());
                }
            }
            prop_assert_eq!(a.len(), b.len());
        }

        /// Mutated native tars (flipped, overwritten and cut bytes) never
        /// panic, and whatever they do, nothing lands outside the root.
        #[test]
        fn mutated_tree_tars_never_escape(
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..24),
            cut in prop::option::of(any::<prop::sample::Index>()),
        ) {
            use std::sync::OnceLock;
            static TAR: OnceLock<Vec<u8>> = OnceLock::new();
            let base = TAR.get_or_init(|| {
                let tmp = tempfile::tempdir().unwrap();
                let src = tmp.path().join("src");
                tree::build_rich_tree(&src);
                // From the staging directory beside `dest`, this is `root/outside`.
                std::os::unix::fs::symlink("../outside", src.join("escape")).unwrap();
                let mut out = Vec::new();
                coffer_engine::write_dir_tar(&src, &[], &mut out, None).unwrap();
                out
            });
            let mut bytes = base.clone();
            for (at, value) in edits {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            if let Some(c) = cut {
                bytes.truncate(c.index(bytes.len()));
            }
            let tmp = tempfile::tempdir().unwrap();
            let root = tmp.path().join("root");
            fs::create_dir(&root).unwrap();
            let _ = coffer_engine::seal::verify_tree_tar(&mut bytes.as_slice());
            let _ = coffer_engine::restore_tree_from_tar(
                &mut bytes.as_slice(),
                &root.join("dest"),
                RestoreMode::RefuseNonEmpty,
                None,
            );
            // Only `dest` (when it restored), no staging, nothing through the link.
            let top: Vec<_> = fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name()).collect();
            prop_assert!(top.is_empty() || top == ["dest"], "{:?}", top);
            prop_assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);
        }

        #[test]
        fn random_streams_round_trip_exactly(data in prop::collection::vec(any::<u8>(), 0..3_000_000)) {
            let tmp = tempfile::tempdir().unwrap();
            let repo = Repo::init(storage(&tmp.path().join("repo")), PW).unwrap();
            let snap = repo
                .backup_stream(Box::new(io::Cursor::new(data.clone())), "s", &bref("test", "s", 1), None)
                .unwrap();
            let mut out = Vec::new();
            repo.restore_stream(&snap.id, &mut out).unwrap();
            prop_assert_eq!(out, data);
        }
    }
}

// ------------------------------------------------------------------ sealed components

fn sealing() -> (Arc<AgeIdentity>, Arc<AgeRecipients>) {
    let id = AgeIdentity::generate();
    let recipients = AgeRecipients::parse(&[id.recipient()]).unwrap();
    (Arc::new(id), Arc::new(recipients))
}

/// Backs `src` up as component `keys`, sealed to a new identity.
fn sealed_tree_backup(repo: &Repo, src: &Path) -> (Arc<AgeIdentity>, coffer_engine::SnapshotInfo) {
    let (identity, recipients) = sealing();
    let snap = repo
        .sealed_to(recipients)
        .backup_tree(
            src,
            &bref("test", "keys", 1),
            &TreeBackupOptions::default(),
            None,
        )
        .unwrap();
    (identity, snap)
}

#[test]
fn a_sealed_tree_round_trips_and_needs_its_identity() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree::build_rich_tree(&src);
    // A FIFO too: the tar crate alone would bring it back as a regular file.
    let fifo = std::ffi::CString::new(src.join("nested/pipe").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o640) }, 0);
    tree::set_mtime(&src.join("nested/pipe"), 1_500_000_000, 5);
    tree::set_mtime(&src.join("nested"), 1_600_000_000, 7);
    let dir = tmp.path().join("repo");
    let repo = new_repo(&dir);
    let (identity, snap) = sealed_tree_backup(&repo, &src);
    assert!(snap.sealed);
    assert_eq!(snap.kind, Some(ContentKind::Tree));
    assert_eq!(snap.paths, ["keys.tar.age"]);
    assert!(snap.tags.iter().any(|t| t == coffer_engine::tags::SEALED));

    let dest = tmp.path().join("restored");
    let err = repo
        .restore_tree(&snap.id, &dest, RestoreMode::RefuseNonEmpty, None)
        .unwrap_err();
    assert!(
        matches!(err, EngineError::SealedWithoutIdentity { .. }),
        "{err}"
    );
    let wrong = repo.with_identity(Arc::new(AgeIdentity::generate()));
    let err = wrong
        .restore_tree(&snap.id, &dest, RestoreMode::RefuseNonEmpty, None)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("is not one this component was sealed to"),
        "{err}"
    );
    assert!(wrong.check_identity(&snap.id).is_err());
    assert!(!dest.exists(), "nothing restored with the wrong identity");
    assert!(staging_leftovers(tmp.path()).is_empty());

    let opener = repo.with_identity(Arc::clone(&identity));
    opener.check_identity(&snap.id).unwrap();
    opener
        .restore_tree(&snap.id, &dest, RestoreMode::RefuseNonEmpty, None)
        .unwrap();
    // Everything but the holes: a tar stores a sparse file densely.
    assert_same_tree(&src, &dest);
    restic_check(&dir, PW);

    // Disaster recovery without Coffer: restic dump, age, tar.
    if let Some(sealed) = restic_bytes(&dir, PW, &["dump", &snap.id, "/keys.tar.age"]) {
        assert!(sealed.starts_with(b"age-encryption.org/v1"));
        assert!(!sealed.windows(12).any(|w| w == b"hello coffer"));
        let mut sealed = sealed.as_slice();
        let plain = coffer_engine::seal::open_sealed(&mut sealed, &identity).unwrap();
        let mut names = Vec::new();
        for e in tar::Archive::new(plain).entries().unwrap() {
            names.push(e.unwrap().path().unwrap().display().to_string());
        }
        assert!(names.iter().any(|n| n == "plain.txt"), "{names:?}");
    }
}

#[test]
fn a_sealed_tree_restores_with_overwrite_and_mirror() {
    restore_modes_behave(true);
}

#[test]
fn a_sealed_stream_round_trips_and_a_failing_source_records_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let repo = new_repo(&dir);
    let (identity, recipients) = sealing();
    let sealer = repo.sealed_to(recipients);
    let data = tree::random_bytes(9, 3_000_000);
    let snap = sealer
        .backup_stream(
            Box::new(io::Cursor::new(data.clone())),
            "vault.snap",
            &bref("test", "vault", 1),
            None,
        )
        .unwrap();
    assert!(snap.sealed);
    assert_eq!(snap.kind, Some(ContentKind::Stream));
    assert_eq!(snap.paths, ["vault.snap.age"]);

    let mut out = Vec::new();
    assert!(matches!(
        repo.restore_stream(&snap.id, &mut out),
        Err(EngineError::SealedWithoutIdentity { .. })
    ));
    assert!(out.is_empty());
    repo.with_identity(identity)
        .restore_stream(&snap.id, &mut out)
        .unwrap();
    assert!(out == data, "the sealed stream restores byte for byte");

    let err = sealer
        .backup_stream(
            Box::new(FailingReader {
                ok: 1 << 20,
                done: 0,
            }),
            "vault.snap",
            &bref("test", "vault", 1),
            None,
        )
        .unwrap_err();
    assert!(matches!(err, EngineError::Incomplete { .. }), "{err}");
    let all = repo.snapshots(&SnapshotFilter::default()).unwrap();
    assert_eq!(all.len(), 1, "the failed sealed backup recorded nothing");
    // An unsealed snapshot needs no identity.
    let plain = repo
        .backup_stream(
            Box::new(io::Cursor::new(b"x".to_vec())),
            "p",
            &bref("test", "p", 1),
            None,
        )
        .unwrap();
    repo.check_identity(&plain.id).unwrap();
    restic_check(&dir, PW);
}

#[test]
fn a_snapshot_travels_as_one_file_of_the_announced_length() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree::build_rich_tree(&src);
    let dir = tmp.path().join("repo");
    let repo = new_repo(&dir);

    // A tree: a tar whose length is known before a byte of it is written.
    let snap = backup_dir(&repo, &src, "files");
    let form = repo.portable_form(&snap.id).unwrap();
    assert_eq!(form.file_name, "files.tar");
    assert_eq!(form.content, ContentKind::Tree);
    assert!(!form.sealed);
    let mut tar_bytes = Vec::new();
    let written = repo.write_portable(&snap.id, &mut tar_bytes).unwrap();
    assert_eq!((written, tar_bytes.len() as u64), (form.len, form.len));
    let out = tmp.path().join("from-tar");
    fs::create_dir(&out).unwrap();
    let mut archive = tar::Archive::new(tar_bytes.as_slice());
    archive.set_preserve_permissions(true);
    archive.unpack(&out).unwrap();
    let (a, b) = (tree::walk(&src), tree::walk(&out));
    assert_eq!(a.len(), b.len());
    for (k, e) in &a {
        assert_eq!(e.content_hash, b[k].content_hash, "{}", k.display());
        assert_eq!(e.mode, b[k].mode, "{}", k.display());
        assert_eq!(e.link, b[k].link, "{}", k.display());
    }

    // A stream: its bytes, though its node records no size.
    let data = tree::random_bytes(3, 1_234_567);
    let s = repo
        .backup_stream(
            Box::new(io::Cursor::new(data.clone())),
            "db.dump",
            &bref("test", "db", 1),
            None,
        )
        .unwrap();
    let form = repo.portable_form(&s.id).unwrap();
    assert_eq!((form.file_name.as_str(), form.len), ("db.dump", 1_234_567));
    let mut out = Vec::new();
    repo.write_portable(&s.id, &mut out).unwrap();
    assert!(out == data);

    // A sealed snapshot travels still sealed.
    let (_, sealed) = sealed_tree_backup(&repo, &src);
    let form = repo.portable_form(&sealed.id).unwrap();
    assert!(form.sealed);
    assert_eq!(form.file_name, "keys.tar.age");
    let mut out = Vec::new();
    repo.write_portable(&sealed.id, &mut out).unwrap();
    assert_eq!(out.len() as u64, form.len);
    assert!(out.starts_with(b"age-encryption.org/v1"));
}

#[test]
fn a_tree_tar_from_outside_restores_like_a_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree::build_rich_tree(&src);
    // The native form of a directory, as a per-component download gives it.
    let mut tar_bytes = Vec::new();
    let written = coffer_engine::write_dir_tar(&src, &[], &mut tar_bytes, None).unwrap();
    assert_eq!(written, tar_bytes.len() as u64);
    assert!(coffer_engine::seal::verify_tree_tar(&mut tar_bytes.as_slice()).unwrap() > 10);
    let dest = tmp.path().join("dest");
    coffer_engine::restore_tree_from_tar(
        &mut tar_bytes.as_slice(),
        &dest,
        RestoreMode::RefuseNonEmpty,
        None,
    )
    .unwrap();
    // Everything but the owners: an upload's files belong to the user
    // Coffer runs as (`TarOrigin::Untrusted`).
    let mut expected = tree::walk(&src);
    // SAFETY: geteuid and getegid have no preconditions.
    let me = unsafe { (libc::geteuid(), libc::getegid()) };
    for e in expected.values_mut() {
        e.uid_gid = e.uid_gid.map(|_| me);
    }
    assert_eq!(expected, tree::walk(&dest));
    // A non-empty destination is refused, as for a snapshot.
    let e = coffer_engine::restore_tree_from_tar(
        &mut tar_bytes.as_slice(),
        &dest,
        RestoreMode::RefuseNonEmpty,
        None,
    )
    .unwrap_err();
    assert!(matches!(e, EngineError::DestinationNotEmpty(_)), "{e}");
}

/// A tar with raw entries (names the `tar` crate's builder would refuse).
fn hostile_tar(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, kind, link, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

#[test]
fn hostile_tree_tars_are_refused_and_write_nothing_outside() {
    use tar::EntryType as T;
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let escape = outside.to_str().unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("dotdot", hostile_tar(&[("../evil", T::Regular, "", b"x")])),
        (
            "absolute",
            hostile_tar(&[("/tmp/evil", T::Regular, "", b"x")]),
        ),
        (
            "symlink escape",
            hostile_tar(&[
                ("link", T::Symlink, escape, b""),
                ("link/evil", T::Regular, "", b"x"),
            ]),
        ),
        (
            "directory through a symlink",
            hostile_tar(&[
                ("link", T::Symlink, escape, b""),
                ("link/sub", T::Directory, "", b""),
            ]),
        ),
        (
            "hard link",
            hostile_tar(&[("hard", T::Link, "/etc/passwd", b"")]),
        ),
        ("block device", hostile_tar(&[("sda", T::Block, "", b"")])),
        ("char device", hostile_tar(&[("mem", T::Char, "", b"")])),
        ("sparse", hostile_tar(&[("holes", T::GNUSparse, "", b"")])),
    ];
    for (what, bytes) in cases {
        assert!(
            coffer_engine::seal::verify_tree_tar(&mut bytes.as_slice()).is_err(),
            "{what}: verified"
        );
        let dest = tmp.path().join(format!("dest-{}", what.replace(' ', "-")));
        let e = coffer_engine::restore_tree_from_tar(
            &mut bytes.as_slice(),
            &dest,
            RestoreMode::RefuseNonEmpty,
            None,
        )
        .expect_err(what);
        assert!(matches!(e, EngineError::InvalidInput(_)), "{what}: {e}");
        // Nothing outside, no destination, no staging left behind.
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "{what}");
        assert!(!dest.exists(), "{what}");
        assert!(!tmp.path().join("evil").exists(), "{what}");
        assert!(staging_leftovers(tmp.path()).is_empty(), "{what}");
    }
    // A truncated archive fails too, and leaves the destination alone.
    let src = tmp.path().join("src");
    tree::build_rich_tree(&src);
    let mut whole = Vec::new();
    coffer_engine::write_dir_tar(&src, &[], &mut whole, None).unwrap();
    let cut = &whole[..whole.len() / 2];
    let dest = tmp.path().join("dest-truncated");
    assert!(
        coffer_engine::restore_tree_from_tar(&mut &cut[..], &dest, RestoreMode::Overwrite, None)
            .is_err()
    );
    assert!(!dest.exists());
}
