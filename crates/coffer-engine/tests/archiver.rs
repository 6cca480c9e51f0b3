//! Coffer's archiver, judged by plain restic: every repository it writes
//! passes `restic check --read-data`, and `restic restore` gives back the
//! source byte for byte and metadata for metadata. It deduplicates against
//! what rustic_core's archiver and restic wrote (same chunker), reads no
//! unchanged file, and stops for real when cancelled.
//!
//! The restic is the one `scripts/services.sh` installs (0.14.0). It cannot
//! judge symlink targets that are not UTF-8 (it rewrites them): those are
//! checked through Coffer's own restore.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use coffer_engine::{
    ArchiverKind, CancelToken, EngineError, ProgressFn, Repo, RestoreMode, TreeBackupOptions,
};
use coffer_testkit::{restic, restic_check, tree};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

mod common;

use common::*;

/// `src` restored by plain restic from the latest snapshot.
fn restic_restore(repo: &Path, out: &Path, component: &str) -> Option<PathBuf> {
    restic(
        repo,
        PW,
        &["restore", "latest", "--target", &out.to_string_lossy()],
    )?;
    Some(out.join(component))
}

/// The tree of each snapshot in `repo`, oldest first, as plain restic
/// lists them (`None` without restic).
fn snapshot_trees(repo: &Path) -> Option<Vec<String>> {
    restic(repo, PW, &["snapshots", "--json"]).map(|json| {
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s["tree"].as_str().unwrap().to_owned())
            .collect()
    })
}

fn sha256_of(path: &Path) -> Vec<u8> {
    let mut f = fs::File::open(path).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            return h.finalize().to_vec();
        }
        h.update(&buf[..n]);
    }
}

/// Inode groups of hard-linked files (relative paths), to compare link
/// structure between two trees.
fn link_groups(root: &Path) -> Vec<Vec<PathBuf>> {
    let mut by_inode: BTreeMap<u64, Vec<PathBuf>> = BTreeMap::new();
    for (rel, e) in tree::walk(root) {
        if e.kind == "file" {
            let m = fs::metadata(root.join(&rel)).unwrap();
            if m.nlink() > 1 {
                by_inode.entry(m.ino()).or_default().push(rel);
            }
        }
    }
    let mut groups: Vec<_> = by_inode.into_values().collect();
    groups.iter_mut().for_each(|g| g.sort());
    groups.sort();
    groups
}

/// The rich tree plus what the archiver must also get right: hard links,
/// a long name, a non-UTF-8 name, chunk boundaries (a 3 MiB file) and a
/// file larger than a chunk's maximum.
fn build_source(root: &Path) {
    tree::build_rich_tree(root);
    tree::write(
        &root.join("multi/three-mib.bin"),
        &tree::random_bytes(7, 3 << 20),
    );
    tree::write(
        &root.join("multi/ten-mib.bin"),
        &tree::random_bytes(8, 10 << 20),
    );
    fs::hard_link(root.join("plain.txt"), root.join("multi/hard-link")).unwrap();
    tree::write(&root.join("n".repeat(255)), b"long name");
    tree::write(
        &root.join(OsStr::from_bytes(b"latin1-caf\xe9")),
        b"not utf-8",
    );
}

#[test]
fn a_rich_tree_restores_with_plain_restic_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    build_source(&src);
    let dir = tmp.path().join("repo");
    let repo = new_repo(&dir);
    let snap = backup_dir(&repo, &src, "files");
    assert_eq!(snap.files_new, snap.files);
    // Bytes are regular files' contents (not symlink targets), as restic counts them.
    let walked = tree::walk(&src);
    let content: u64 = walked
        .values()
        .filter(|e| e.kind == "file")
        .map(|e| e.size)
        .sum();
    assert_eq!(snap.bytes, content);
    restic_check(&dir, PW);
    let Some(restored) = restic_restore(&dir, &tmp.path().join("out"), "files") else {
        return;
    };
    tree::assert_same_tree(&src, &restored);
    assert_eq!(link_groups(&src), link_groups(&restored));
    // And through Coffer's own restore.
    let dest = tmp.path().join("dest");
    repo.restore_tree(&snap.id, &dest, RestoreMode::RefuseNonEmpty, None)
        .unwrap();
    tree::assert_same_tree(&src, &dest);
}

#[test]
fn both_archivers_write_the_same_trees_and_chunks() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    build_source(&src);
    // Old path first, then the new one: nothing new is stored.
    let dir = tmp.path().join("repo");
    let repo = new_repo(&dir);
    let old = backup_dir(&repo.with_archiver(ArchiverKind::Rustic), &src, "files");
    let new = backup_dir(&repo.with_archiver(ArchiverKind::Coffer), &src, "files");
    assert!(old.bytes_added > 10 << 20);
    assert_eq!(new.bytes_added, 0, "{new:?}");
    // The new path first, then the old one.
    let dir2 = tmp.path().join("repo2");
    let repo2 = new_repo(&dir2);
    let first = backup_dir(&repo2.with_archiver(ArchiverKind::Coffer), &src, "files");
    let second = backup_dir(&repo2.with_archiver(ArchiverKind::Rustic), &src, "files");
    assert!(first.bytes_added > 10 << 20);
    assert_eq!(second.bytes_added, 0, "{second:?}");
    // The same tree in each repository (each has its own chunker
    // polynomial, so the two repositories' trees differ).
    for d in [&dir, &dir2] {
        if let Some(t) = snapshot_trees(d) {
            assert!(t.len() == 2 && t[0] == t[1], "{t:?}");
        }
    }
    restic_check(&dir, PW);
    restic_check(&dir2, PW);
}

#[test]
fn data_restic_wrote_is_not_stored_again() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    tree::write(&src.join("big.bin"), &tree::random_bytes(3, 12 << 20));
    let dir = tmp.path().join("repo");
    // A repository restic made, with restic's own backup in it.
    if restic(&dir, PW, &["init"]).is_none() {
        return;
    }
    restic(&dir, PW, &["backup", &src.to_string_lossy()]).unwrap();
    let repo = Repo::open(storage(&dir), PW).unwrap();
    let snap = backup_dir(&repo, &src, "files");
    assert!(snap.bytes_added < 64 * 1024, "{snap:?}");
    restic_check(&dir, PW);
}

#[test]
fn a_version_1_repository_gets_uncompressed_blobs() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    build_source(&src);
    let dir = tmp.path().join("repo");
    if restic(&dir, PW, &["init", "--repository-version", "1"]).is_none() {
        return;
    }
    let repo = Repo::open(storage(&dir), PW).unwrap();
    backup_dir(&repo, &src, "files");
    restic_check(&dir, PW);
    let restored = restic_restore(&dir, &tmp.path().join("out"), "files").unwrap();
    tree::assert_same_tree(&src, &restored);
}

#[test]
fn unchanged_files_are_not_read_and_changed_ones_are() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    build_source(&src);
    let repo = new_repo(&tmp.path().join("repo"));
    let first = backup_dir(&repo, &src, "files");
    let again = backup_dir(&repo, &src, "files");
    assert_eq!(again.files_unmodified, first.files, "{again:?}");
    assert_eq!(again.bytes_added, 0, "{again:?}");
    // Same size, same mtime, but a new inode: read again (restic's rule).
    let f = src.join("multi/three-mib.bin");
    let meta = fs::metadata(&f).unwrap();
    let copy = src.join("multi/copy.tmp");
    fs::copy(&f, &copy).unwrap();
    fs::rename(&copy, &f).unwrap();
    tree::set_mtime(&f, meta.mtime(), meta.mtime_nsec() as u32);
    // And one changed in place (with its hard link, the same inode).
    fs::OpenOptions::new()
        .append(true)
        .open(src.join("plain.txt"))
        .unwrap()
        .write_all(b"more")
        .unwrap();
    let third = backup_dir(&repo, &src, "files");
    assert_eq!(third.files_changed, 3, "{third:?}");
    assert_eq!(third.files_unmodified, first.files - 3, "{third:?}");
    let dest = tmp.path().join("dest");
    repo.restore_tree(&third.id, &dest, RestoreMode::RefuseNonEmpty, None)
        .unwrap();
    tree::assert_same_tree(&src, &dest);
}

/// A changed file is chunked with its parent's chunks as hints: the
/// chunks found again are not scanned for cut points. The cuts must stay
/// the chunker's: rustic_core's archiver, chunking the same file from
/// scratch, finds every chunk stored and writes the same tree.
#[test]
fn a_changed_file_is_cut_where_a_fresh_chunking_cuts_it() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let old = tree::random_bytes(21, 24 << 20);
    let f = src.join("db.bin");
    tree::write(&f, &old);
    let dir = tmp.path().join("repo");
    let repo = new_repo(&dir);
    let coffer = repo.with_archiver(ArchiverKind::Coffer);
    backup_dir(&coffer, &src, "files");
    // Bytes inserted in the middle, a region overwritten, a tail appended.
    let noise = tree::random_bytes(22, 2 << 20);
    let mid = old.len() / 2;
    let mut new = [&old[..mid], &noise[..45], &old[mid..]].concat();
    new[4 << 20..5 << 20].copy_from_slice(&noise[..1 << 20]);
    new.extend_from_slice(&noise[1 << 20..]);
    tree::write(&f, &new);
    let changed = backup_dir(&coffer, &src, "files");
    assert_eq!(changed.files_changed, 1, "{changed:?}");
    // Three changes touch about six chunks of 0.5–8 MiB (1.5 MiB on
    // average, the repository's random polynomial decides): far from all.
    assert!(
        changed.bytes_added < new.len() as u64 * 3 / 4,
        "most chunks are found again: {changed:?}"
    );
    let fresh = backup_dir(&repo.with_archiver(ArchiverKind::Rustic), &src, "files");
    assert_eq!(fresh.bytes_added, 0, "the same cuts: {fresh:?}");
    if let Some(trees) = snapshot_trees(&dir) {
        assert!(trees.len() == 3 && trees[1] == trees[2], "{trees:?}");
    }
    restic_check(&dir, PW);
    if let Some(restored) = restic_restore(&dir, &tmp.path().join("out"), "files") {
        assert_eq!(sha256_of(&restored.join("db.bin")), sha256_of(&f));
    }
}

#[test]
fn a_non_utf8_symlink_target_round_trips_through_coffer() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    std::os::unix::fs::symlink(OsStr::from_bytes(b"target-\xff\xfe"), src.join("odd-link"))
        .unwrap();
    let dir = tmp.path().join("repo");
    let repo = new_repo(&dir);
    let snap = backup_dir(&repo, &src, "files");
    restic_check(&dir, PW);
    let dest = tmp.path().join("dest");
    repo.restore_tree(&snap.id, &dest, RestoreMode::RefuseNonEmpty, None)
        .unwrap();
    assert_eq!(
        fs::read_link(dest.join("odd-link"))
            .unwrap()
            .as_os_str()
            .as_bytes(),
        b"target-\xff\xfe"
    );
}

/// A sparse file of more than 4 GiB (offsets past 32 bits) with data
/// islands: read back through `restic dump` and compared by SHA-256
/// (restic 0.14 restores no holes, so its restore would write it all),
/// and restored by Coffer with its holes.
#[test]
fn a_file_of_more_than_4_gib_is_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let big = src.join("huge.img");
    let mut f = fs::File::create(&big).unwrap();
    for (i, at) in [0u64, 2 << 30, (4 << 30) + 12345].into_iter().enumerate() {
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(&tree::random_bytes(40 + i as u64, 3 << 20))
            .unwrap();
    }
    f.set_len((4 << 30) + (16 << 20)).unwrap();
    drop(f);
    let dir = tmp.path().join("repo");
    let repo = new_repo(&dir);
    let snap = backup_dir(&repo, &src, "files");
    assert_eq!(snap.bytes, (4 << 30) + (16 << 20));
    let dest = tmp.path().join("dest");
    repo.restore_tree(&snap.id, &dest, RestoreMode::RefuseNonEmpty, None)
        .unwrap();
    assert_eq!(sha256_of(&big), sha256_of(&dest.join("huge.img")));
    assert!(tree::allocated_bytes(&dest.join("huge.img")) < 64 << 20);
    restic_check(&dir, PW);
    if !coffer_testkit::require_tool("restic") {
        return;
    }
    let mut dump = std::process::Command::new("restic")
        .args(["--no-lock", "-r"])
        .arg(&dir)
        .args(["dump", "latest", "/files/huge.img"])
        .env("RESTIC_PASSWORD", PW)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = dump.stdout.take().unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = out.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    assert!(dump.wait().unwrap().success());
    assert_eq!(sha256_of(&big), h.finalize().to_vec());
}

/// A progress callback that cancels `token` once `after` bytes are done,
/// and the bytes done at the end.
fn cancel_after(token: &CancelToken, after: u64) -> (ProgressFn, Arc<AtomicU64>) {
    let done = Arc::new(AtomicU64::new(0));
    let (t, d) = (token.clone(), Arc::clone(&done));
    let f: ProgressFn = Arc::new(move |p| {
        d.store(p.bytes_done, Ordering::Relaxed);
        if p.bytes_done >= after {
            t.cancel();
        }
    });
    (f, done)
}

#[test]
fn cancelling_in_the_middle_of_a_large_file_stops_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    // 64 GiB of holes: reading it whole would take minutes.
    let f = fs::File::create(src.join("endless.img")).unwrap();
    f.set_len(64 << 30).unwrap();
    drop(f);
    tree::write(&src.join("small.txt"), b"small");
    let dir = tmp.path().join("repo");
    let repo = new_repo(&dir);
    let token = CancelToken::default();
    let (progress, done) = cancel_after(&token, 256 << 20);
    let started = std::time::Instant::now();
    let err = repo
        .with_cancel(token)
        .backup_tree(
            &src,
            &bref("test", "files", 1),
            &TreeBackupOptions::default(),
            Some(progress),
        )
        .unwrap_err();
    assert!(matches!(err, EngineError::Cancelled { .. }), "{err:?}");
    assert!(started.elapsed().as_secs() < 60, "{:?}", started.elapsed());
    assert!(done.load(Ordering::Relaxed) < 2 << 30);
    assert!(repo.snapshots(&Default::default()).unwrap().is_empty());
    restic_check(&dir, PW);
    // The lock is gone: the next backup runs.
    tree::write(&src.join("endless.img"), b"now small");
    backup_dir(&repo, &src, "files");
    restic_check(&dir, PW);
}

#[test]
fn cancelling_a_stream_stops_it_and_records_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let repo = new_repo(&dir);
    let token = CancelToken::default();
    let (progress, _) = cancel_after(&token, 64 << 20);
    let endless = std::io::repeat(7).take(u64::MAX);
    let err = repo
        .with_cancel(token)
        .backup_stream(
            Box::new(endless),
            "dump.sql",
            &bref("test", "db", 1),
            Some(progress),
        )
        .unwrap_err();
    assert!(matches!(err, EngineError::Cancelled { .. }), "{err:?}");
    assert!(repo.snapshots(&Default::default()).unwrap().is_empty());
    restic_check(&dir, PW);
}

fn os_name() -> impl Strategy<Value = Vec<u8>> {
    // Any bytes but '/' and NUL, never "." or "..": UTF-8 or not.
    prop::collection::vec(
        prop::num::u8::ANY.prop_filter("no / or NUL", |b| *b != b'/' && *b != 0),
        1..40,
    )
    .prop_filter("not . or ..", |n| n != b"." && n != b"..")
}

/// One generated entry: where, what size (0, small, or across chunks),
/// a hole before the data, and whether it hard-links the previous file.
type GenEntry = (Vec<Vec<u8>>, usize, bool, bool, u64);

fn entries() -> impl Strategy<Value = Vec<GenEntry>> {
    prop::collection::vec(
        (
            prop::collection::vec(os_name(), 1..4),
            prop::sample::select(vec![0usize, 1, 4096, 70_000, 1_300_000, 2_600_000]),
            any::<bool>(),
            prop::bool::weighted(0.15),
            any::<u64>(),
        ),
        1..14,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    /// Random trees (empty files, holes, hard links, non-UTF-8 names,
    /// files across chunk boundaries) restore exactly with plain restic.
    #[test]
    fn random_trees_restore_exactly_with_restic(entries in entries()) {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir_all(&src).unwrap();
        let mut made: Vec<PathBuf> = Vec::new();
        for (parts, size, hole, link, seed) in &entries {
            let rel: PathBuf = parts.iter().map(|p| OsStr::from_bytes(p)).collect();
            if made.iter().any(|m| m.starts_with(&rel) || rel.starts_with(m)) {
                continue;
            }
            let path = src.join(&rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            match made.last() {
                Some(prev) if *link && fs::symlink_metadata(src.join(prev)).unwrap().is_file() => {
                    fs::hard_link(src.join(prev), &path).unwrap();
                }
                _ => {
                    let mut f = fs::File::create(&path).unwrap();
                    if *hole {
                        f.seek(SeekFrom::Start(1 << 20)).unwrap();
                    }
                    f.write_all(&tree::random_bytes(*seed, *size)).unwrap();
                    if *hole {
                        let end = f.stream_position().unwrap();
                        f.set_len(end + (1 << 20)).unwrap();
                    }
                }
            }
            made.push(rel);
        }
        let dir = tmp.path().join("repo");
        let repo = new_repo(&dir);
        backup_dir(&repo, &src, "files");
        restic_check(&dir, PW);
        if let Some(restored) = restic_restore(&dir, &tmp.path().join("out"), "files") {
            let (a, b) = (tree::walk(&src), tree::walk(&restored));
            for (k, e) in &a {
                // Directory mtimes moved as the generator added entries.
                if e.kind == "file" {
                    prop_assert_eq!(Some(e), b.get(k), "{}", k.display());
                }
            }
            prop_assert_eq!(a.len(), b.len());
            prop_assert_eq!(link_groups(&src), link_groups(&restored));
        }
    }
}
