//! Packs in flight: several uploads at once under a backup, with every pack
//! stored before the index and snapshot that name it; restores that read
//! spans of packs rather than single blobs, and refuse damaged blobs.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coffer_engine::{Repo, RestoreMode, TreeBackupOptions};
use coffer_targets::{LocalStorage, ObjectInfo, Storage, StorageError, StorageErrorKind};
use coffer_testkit::restic_check;
use coffer_testkit::tree::{self, assert_same_tree};

mod common;
use common::*;

/// What a pack upload should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PackFault {
    None,
    /// The n-th pack upload (from 1) fails.
    Fail(usize),
    /// The n-th pack upload panics, as a storage library might.
    Panic(usize),
}

/// A local storage that takes several pack writes at once, each slowed down
/// like a long link, and records what happened in which order.
#[derive(Debug)]
struct Observed {
    inner: LocalStorage,
    fault: PackFault,
    packs_started: AtomicUsize,
    /// Pack uploads running now, and the most ever at once.
    running: AtomicUsize,
    most: AtomicUsize,
    /// `start <key>` / `end <key>`, in order.
    events: Mutex<Vec<String>>,
    ranged_reads: AtomicUsize,
}

impl Observed {
    fn new(dir: &Path, fault: PackFault) -> Arc<Self> {
        Arc::new(Self {
            inner: LocalStorage::new(dir),
            fault,
            packs_started: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
            events: Mutex::new(Vec::new()),
            ranged_reads: AtomicUsize::new(0),
        })
    }

    fn log(&self, what: String) {
        self.events.lock().unwrap().push(what);
    }

    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }
}

impl Storage for Observed {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn parallel_writes(&self) -> usize {
        3
    }
    fn parallel_reads(&self) -> usize {
        4
    }
    fn put_parts(&self, key: &str, parts: &[&[u8]]) -> coffer_targets::StorageResult<()> {
        if !key.starts_with("data/") {
            self.log(format!("start {key}"));
            let r = self.inner.put_parts(key, parts);
            self.log(format!("end {key}"));
            return r;
        }
        let n = self.packs_started.fetch_add(1, Ordering::SeqCst) + 1;
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        self.log(format!("start {key}"));
        // A long link: long enough that the next pack is ready before this one is stored.
        std::thread::sleep(Duration::from_millis(800));
        let r = match self.fault {
            PackFault::Fail(k) if k == n => Err(StorageError::new(
                StorageErrorKind::NoSpace,
                &self.inner.location(),
                "put",
                key,
                "simulated: no space left",
            )),
            PackFault::Panic(k) if k == n => {
                self.running.fetch_sub(1, Ordering::SeqCst);
                panic!("simulated panic uploading {key}")
            }
            _ => self.inner.put_parts(key, parts),
        };
        self.log(format!("end {key}"));
        self.running.fetch_sub(1, Ordering::SeqCst);
        r
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
        self.ranged_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get_range(key, offset, len)
    }
    fn list(&self, prefix: &str) -> coffer_targets::StorageResult<Vec<ObjectInfo>> {
        self.inner.list(prefix)
    }
    fn delete(&self, key: &str) -> coffer_targets::StorageResult<()> {
        self.log(format!("delete {key}"));
        self.inner.delete(key)
    }
    fn ensure_prefix(&self, prefix: &str) -> coffer_targets::StorageResult<()> {
        self.inner.ensure_prefix(prefix)
    }
}

/// ~100 MiB of random data: rustic_core's data packs hold 32 MiB, so this
/// makes at least three.
fn many_packs(src: &Path) {
    for i in 0..4u64 {
        tree::write(
            &src.join(format!("part{i}.bin")),
            &tree::random_bytes(i + 1, 25 << 20),
        );
    }
}

fn backup(repo: &Repo, src: &Path) -> coffer_engine::EngineResult<coffer_engine::SnapshotInfo> {
    repo.backup_tree(
        src,
        &bref("test", "files", 1),
        &TreeBackupOptions::default(),
        None,
    )
}

#[test]
fn packs_upload_in_parallel_and_are_stored_before_the_index_and_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, src) = (tmp.path().join("repo"), tmp.path().join("src"));
    many_packs(&src);
    new_repo(&dir);
    let observed = Observed::new(&dir, PackFault::None);
    let repo = Repo::open(observed.clone(), PW).unwrap();
    let snap = backup(&repo, &src).expect("backup");

    assert!(
        observed.most.load(Ordering::SeqCst) >= 2,
        "packs were uploaded one at a time"
    );
    // Every pack upload ended before any index or snapshot write started.
    let events = observed.events();
    let last_pack_end = events
        .iter()
        .rposition(|e| e.starts_with("end data/"))
        .expect("packs were written");
    let first_other = events
        .iter()
        .position(|e| e.starts_with("start index/") || e.starts_with("start snapshots/"))
        .expect("an index and a snapshot were written");
    assert!(last_pack_end < first_other, "{events:#?}");

    restic_check(&dir, PW);
    let dest = tmp.path().join("dest");
    repo.restore_tree(&snap.id, &dest, RestoreMode::RefuseNonEmpty, None)
        .unwrap();
    assert_same_tree(&src, &dest);
}

#[test]
fn a_failed_pack_upload_fails_the_backup_and_records_nothing() {
    for fault in [PackFault::Fail(2), PackFault::Panic(2)] {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, src) = (tmp.path().join("repo"), tmp.path().join("src"));
        many_packs(&src);
        new_repo(&dir);
        let observed = Observed::new(&dir, fault);
        let repo = Repo::open(observed.clone(), PW).unwrap();
        // A panicking uploader must not leave the backup waiting for it.
        let err = backup(&repo, &src).expect_err("the backup must fail");
        let text = err.to_string();
        match fault {
            PackFault::Fail(_) => assert!(text.contains("no space left"), "{text}"),
            _ => assert!(text.contains("panic"), "{text}"),
        }
        drop(repo);
        assert!(
            fs::read_dir(dir.join("snapshots"))
                .unwrap()
                .next()
                .is_none(),
            "{fault:?}: a snapshot was recorded"
        );
        assert!(
            !observed
                .events()
                .iter()
                .any(|e| e.starts_with("start snapshots/")),
            "{fault:?}"
        );
        // What was stored is a valid repository without the backup.
        restic_check(&dir, PW);
        let repo = Repo::open(storage(&dir), PW).unwrap();
        assert!(repo.snapshots(&Default::default()).unwrap().is_empty());
    }
}

#[test]
fn a_restore_reads_spans_of_packs_not_one_blob_per_request() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, src) = (tmp.path().join("repo"), tmp.path().join("src"));
    // 600 small files in 30 directories, and one sparse file.
    for i in 0..600u64 {
        tree::write(
            &src.join(format!("d{}/f{i}.txt", i % 30)),
            format!("file {i} ")
                .repeat(1 + (i as usize % 50))
                .as_bytes(),
        );
    }
    let sparse = src.join("sparse.img");
    let f = fs::File::create(&sparse).unwrap();
    f.set_len(8 << 20).unwrap();
    drop(f);
    let snap = backup_dir(&new_repo(&dir), &src, "files");

    let observed = Observed::new(&dir, PackFault::None);
    let repo = Repo::open(observed.clone(), PW).unwrap();
    let dest = tmp.path().join("dest");
    repo.restore_tree(&snap.id, &dest, RestoreMode::RefuseNonEmpty, None)
        .unwrap();
    assert_same_tree(&src, &dest);
    let reads = observed.ranged_reads.load(Ordering::SeqCst);
    // One read per tree level and per pack span — not one per file.
    assert!(reads < 30, "{reads} ranged reads for 601 files");
    use std::os::unix::fs::MetadataExt;
    let restored = fs::metadata(dest.join("sparse.img")).unwrap();
    assert_eq!(restored.len(), 8 << 20);
    assert!(
        restored.blocks() * 512 < 1 << 20,
        "the hole was written out"
    );
}

#[test]
fn a_damaged_blob_is_refused_and_nothing_is_restored() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, src) = (tmp.path().join("repo"), tmp.path().join("src"));
    tree::write(&src.join("a.bin"), &tree::random_bytes(9, 3 << 20));
    let repo = new_repo(&dir);
    let snap = backup_dir(&repo, &src, "files");
    let stream = repo
        .backup_stream(
            Box::new(std::io::Cursor::new(tree::random_bytes(10, 2 << 20))),
            "db.dump",
            &bref("test", "db", 1),
            None,
        )
        .unwrap();
    // Flip a byte in every pack of file data (the MAC must catch it).
    for pack in fs::read_dir(dir.join("data"))
        .unwrap()
        .flat_map(|d| fs::read_dir(d.unwrap().path()).unwrap())
    {
        let path = pack.unwrap().path();
        let mut bytes = fs::read(&path).unwrap();
        if bytes.len() < 1 << 20 {
            continue; // a tree pack: the snapshot must still open
        }
        let mid = bytes.len() / 3;
        bytes[mid] ^= 0x5a;
        let mut perms = fs::metadata(&path).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        fs::set_permissions(&path, perms).unwrap();
        fs::write(&path, bytes).unwrap();
    }
    let dest = tmp.path().join("dest");
    let err = repo
        .restore_tree(&snap.id, &dest, RestoreMode::RefuseNonEmpty, None)
        .unwrap_err();
    assert!(err.to_string().contains("damaged"), "{err}");
    assert!(!dest.exists());
    let mut out = Vec::new();
    let err = repo.restore_stream(&stream.id, &mut out).unwrap_err();
    assert!(err.to_string().contains("damaged"), "{err}");
}
