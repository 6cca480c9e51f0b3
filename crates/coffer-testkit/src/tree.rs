//! Building and comparing directory trees.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use filetime::FileTime;
use rand::{Rng, SeedableRng};

/// Writes `content` to `path`, creating parents.
pub fn write(path: &Path, content: &[u8]) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).expect("create parent");
    }
    fs::write(path, content).expect("write file");
}

/// Deterministic pseudo-random bytes.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut v = vec![0u8; len];
    rng.fill(&mut v[..]);
    v
}

/// Sets a file's mtime (and atime) to an exact nanosecond time.
pub fn set_mtime(path: &Path, secs: i64, nanos: u32) {
    let t = FileTime::from_unix_time(secs, nanos);
    filetime::set_symlink_file_times(path, t, t).expect("set times");
}

/// Whether the filesystem at `dir` supports `user.*` extended attributes.
pub fn supports_xattrs(dir: &Path) -> bool {
    let probe = dir.join(".xattr-probe");
    fs::write(&probe, b"").expect("probe");
    let ok = xattr::set(&probe, "user.coffer.probe", b"1").is_ok();
    let _ = fs::remove_file(&probe);
    ok
}

/// Builds a tree with everything a backup must keep: nested and empty
/// directories, odd names (unicode, spaces, newlines), modes, nanosecond
/// mtimes, a symlink (and a dangling one), a sparse file, extended attributes
/// and, as root, foreign ownership.
pub fn build_rich_tree(root: &Path) {
    fs::create_dir_all(root).expect("root");
    write(&root.join("plain.txt"), b"hello coffer\n");
    write(
        &root.join("nested/deeper/data.bin"),
        &random_bytes(1, 300_000),
    );
    write(
        &root.join("nested/deeper/compressible.txt"),
        "the same line again\n".repeat(20_000).as_bytes(),
    );
    write(&root.join("ünïcødé ñame.txt"), "ünïcødé".as_bytes());
    write(&root.join("with space/and\nnewline"), b"newline in name");
    write(&root.join("empty-file"), b"");
    fs::create_dir_all(root.join("empty-dir")).expect("empty dir");
    fs::create_dir_all(root.join("nested/empty-too")).expect("empty dir");
    symlink("plain.txt", root.join("link-to-plain")).expect("symlink");
    symlink("../does/not/exist", root.join("nested/dangling")).expect("symlink");
    let exe = root.join("script.sh");
    write(&exe, b"#!/bin/sh\necho hi\n");
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o750)).expect("chmod");
    let private = root.join("private.key");
    write(&private, b"secret");
    fs::set_permissions(&private, fs::Permissions::from_mode(0o600)).expect("chmod");
    let sticky = root.join("sticky-dir");
    fs::create_dir_all(&sticky).expect("dir");
    fs::set_permissions(&sticky, fs::Permissions::from_mode(0o1777)).expect("chmod");

    // sparse: 8 MiB hole, 4 KiB of data, 8 MiB hole
    let sparse = root.join("sparse.img");
    let mut f = fs::File::create(&sparse).expect("sparse");
    f.seek(SeekFrom::Start(8 << 20)).expect("seek");
    f.write_all(&random_bytes(2, 4096)).expect("write");
    f.set_len(16 << 20).expect("len");
    drop(f);

    if supports_xattrs(root) {
        xattr::set(root.join("plain.txt"), "user.coffer.note", b"kept").expect("xattr");
        xattr::set(root.join("nested"), "user.coffer.dir", b"also kept").expect("xattr");
    }
    if crate::is_root() {
        let owned = root.join("owned-by-someone-else");
        write(&owned, b"uid/gid");
        std::os::unix::fs::chown(&owned, Some(4321), Some(8765)).expect("chown");
    }
    // Exact times last, deepest first, so creating children does not change them.
    let mut all: Vec<PathBuf> = walk(root).into_keys().map(|rel| root.join(rel)).collect();
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, p) in all.iter().enumerate() {
        set_mtime(p, 1_600_000_000 + i as i64 * 1000, 123_456_789 + i as u32);
    }
}

/// What is compared for one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `file`, `dir`, `symlink` or `other`.
    pub kind: &'static str,
    /// Permission bits including set-uid/set-gid/sticky (not for symlinks).
    pub mode: u32,
    /// Modification time in nanoseconds (directories included).
    pub mtime_ns: i128,
    /// Owner (compared only as root).
    pub uid_gid: Option<(u32, u32)>,
    /// File length.
    pub size: u64,
    /// Symlink target.
    pub link: Option<PathBuf>,
    /// Extended attributes (`user.*`).
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// A cheap content hash (FNV-1a 64) of a regular file.
    pub content_hash: u64,
}

fn fnv(path: &Path) -> u64 {
    let mut f = fs::File::open(path).expect("open for hash");
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).expect("read for hash");
        if n == 0 {
            return h;
        }
        for &b in &buf[..n] {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Every entry below `root` (relative paths), with what is compared.
pub fn walk(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).expect("read_dir") {
            let e = e.expect("entry");
            let p = e.path();
            let m = fs::symlink_metadata(&p).expect("lstat");
            let ft = m.file_type();
            let kind = if ft.is_symlink() {
                "symlink"
            } else if ft.is_dir() {
                stack.push(p.clone());
                "dir"
            } else if ft.is_file() {
                "file"
            } else {
                "other"
            };
            let xattrs = if ft.is_symlink() {
                BTreeMap::new()
            } else {
                xattr::list(&p)
                    .map(|names| {
                        names
                            .filter_map(|n| {
                                let n = n.to_string_lossy().into_owned();
                                n.starts_with("user.").then(|| {
                                    let v = xattr::get(&p, &n).ok().flatten().unwrap_or_default();
                                    (n, v)
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let entry = Entry {
                kind,
                mode: if ft.is_symlink() {
                    0
                } else {
                    m.mode() & 0o7777
                },
                mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
                uid_gid: crate::is_root().then(|| (m.uid(), m.gid())),
                size: if ft.is_file() { m.len() } else { 0 },
                link: ft
                    .is_symlink()
                    .then(|| fs::read_link(&p).expect("readlink")),
                xattrs,
                content_hash: if ft.is_file() { fnv(&p) } else { 0 },
            };
            out.insert(p.strip_prefix(root).expect("prefix").to_path_buf(), entry);
        }
    }
    out
}

/// Panics with a readable difference unless the two trees are identical in
/// everything [`Entry`] holds (and, for the roots, mode and mtime).
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    let a = walk(expected);
    let b = walk(actual);
    let missing: Vec<_> = a.keys().filter(|k| !b.contains_key(*k)).collect();
    let extra: Vec<_> = b.keys().filter(|k| !a.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
    for (k, ea) in &a {
        let eb = &b[k];
        assert_eq!(ea, eb, "entry {} differs", k.display());
    }
}

/// Like [`assert_same_tree`], for a tree restored from an untrusted upload:
/// the same entries, contents, modes, times and `user.*` attributes, but
/// every entry owned by whoever restored it (an upload's owners are not
/// trusted) and no set-uid or set-gid bit.
pub fn assert_same_tree_from_upload(expected: &Path, actual: &Path) {
    let me = crate::is_root().then(|| {
        (
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw(),
        )
    });
    let a = walk(expected);
    let b = walk(actual);
    let missing: Vec<_> = a.keys().filter(|k| !b.contains_key(*k)).collect();
    let extra: Vec<_> = b.keys().filter(|k| !a.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
    for (k, ea) in &a {
        let eb = &b[k];
        if eb.kind != "symlink" {
            assert_eq!(
                eb.uid_gid,
                me,
                "entry {} keeps an uploaded owner",
                k.display()
            );
        }
        let expected = Entry {
            uid_gid: eb.uid_gid,
            mode: ea.mode & !0o6000,
            ..ea.clone()
        };
        assert_eq!(&expected, eb, "entry {} differs", k.display());
    }
}

/// Allocated bytes of a file (to see that holes stayed holes).
pub fn allocated_bytes(path: &Path) -> u64 {
    fs::metadata(path).expect("stat").blocks() * 512
}
