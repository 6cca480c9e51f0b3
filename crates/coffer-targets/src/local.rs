//! A directory on a local (or locally mounted) filesystem.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rand::Rng;

use crate::{
    ObjectInfo, Storage, StorageError, StorageResult, TMP_DIR, check_key, check_list_prefix,
};

/// Temporary files older than this are leftovers of crashed writers.
const TMP_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// Objects at least this large (packs) bypass the page cache (`O_DIRECT`).
/// A backup's packs are not read again soon, and copying them into the
/// page cache cost more than everything else the kernel did for a backup:
/// 1 GiB written and fsynced measured 1.8–2.6 s of system time buffered
/// against 0.13–0.16 s direct (docs/benchmarks.md). It also leaves the
/// application's own cache alone.
const DIRECT_MIN: usize = 1 << 20;

/// `O_DIRECT` wants memory, offsets and lengths aligned to the device's
/// logical block; 4096 suits both sizes Linux disks have (512 and 4096).
const DIRECT_ALIGN: usize = 4096;

/// Bytes gathered per direct write: the parts are copied into an aligned
/// buffer of this size (a copy in user space costs a tenth of one into the
/// page cache).
const DIRECT_STAGE: usize = 1 << 20;

/// A storage rooted at a local directory.
///
/// Writes go to a temporary file, are `fsync`ed, renamed into place and the
/// directory is `fsync`ed, so a crash at any point leaves either no object or
/// the complete one.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
    location: String,
}

impl LocalStorage {
    /// A storage rooted at `root`. The directory need not exist yet: it is
    /// created on the first write.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let location = format!("local:{}", root.display());
        Self { root, location }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn err(&self, op: &'static str, key: &str, e: &std::io::Error) -> StorageError {
        StorageError::io(&self.location, op, key, e)
    }

    /// Creates the root directory (and its parents) if missing.
    pub fn ensure_root(&self) -> StorageResult<()> {
        create_dir_durable(&self.root).map_err(|e| self.err("mkdir", "", &e))
    }

    /// Bytes available on the file system of the root (or its nearest
    /// existing ancestor).
    pub fn free_space(&self) -> StorageResult<u64> {
        let probe = self
            .root
            .ancestors()
            .find(|p| p.exists())
            .unwrap_or(Path::new("/"));
        crate::free_space_at(probe).map_err(|e| self.err("free-space", "", &e))
    }

    /// Removes temporary files that crashed writers left behind.
    pub fn clean_stale_temporaries(&self) -> StorageResult<usize> {
        let dir = self.root.join(TMP_DIR);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(self.err("clean", TMP_DIR, &e)),
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age > TMP_MAX_AGE);
            if old && fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Writes `parts` to the new file `path` through the page cache.
fn write_buffered(path: &Path, parts: &[&[u8]]) -> std::io::Result<File> {
    let mut f = OpenOptions::new().write(true).create_new(true).open(path)?;
    for part in parts {
        f.write_all(part)?;
    }
    Ok(f)
}

/// Writes `parts` (`total` bytes) to the new file `path` around the page
/// cache: staged into an aligned buffer, the last block padded with zeros
/// and the file cut back to `total`. Not durable until `sync_all`, like a
/// buffered write.
fn write_direct(path: &Path, parts: &[&[u8]], total: usize) -> std::io::Result<File> {
    let einval = || std::io::Error::from_raw_os_error(rustix::io::Errno::INVAL.raw_os_error());
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
        .open(path)?;
    let mut buf = vec![0u8; DIRECT_STAGE + DIRECT_ALIGN];
    let start = buf.as_ptr().align_offset(DIRECT_ALIGN);
    let stage = buf
        .get_mut(start..start + DIRECT_STAGE)
        .ok_or_else(einval)?;
    let mut filled = 0;
    for part in parts {
        let mut rest = *part;
        while !rest.is_empty() {
            let n = rest.len().min(DIRECT_STAGE - filled);
            stage[filled..filled + n].copy_from_slice(&rest[..n]);
            filled += n;
            rest = &rest[n..];
            if filled == DIRECT_STAGE {
                f.write_all(stage)?;
                filled = 0;
            }
        }
    }
    if filled > 0 {
        let padded = filled.next_multiple_of(DIRECT_ALIGN);
        stage[filled..padded].fill(0);
        f.write_all(&stage[..padded])?;
        f.set_len(total as u64)?;
    }
    Ok(f)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` and its missing parents, `fsync`ing each parent whose
/// entries changed so the new directories survive a crash.
fn create_dir_durable(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dir_durable(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

impl Storage for LocalStorage {
    fn parallel_reads(&self) -> usize {
        // Reads from a local disk are quick: decrypting, checking and
        // writing are the work. Two workers measured fastest on 2 cores
        // (three or four only contend; docs/benchmarks.md).
        2
    }

    fn parallel_writes(&self) -> usize {
        // Every pack is fsynced before it counts as stored: one writer
        // spends most of its time waiting for the disk, while several let
        // the disk take their flushes together (docs/benchmarks.md).
        4
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    fn put_parts(&self, key: &str, parts: &[&[u8]]) -> StorageResult<()> {
        check_key(&self.location, "put", key)?;
        let dest = self.path(key);
        let tmp_dir = self.root.join(TMP_DIR);
        let parent = dest.parent().unwrap_or(&self.root).to_path_buf();
        create_dir_durable(&tmp_dir).map_err(|e| self.err("put", key, &e))?;
        create_dir_durable(&parent).map_err(|e| self.err("put", key, &e))?;
        let tmp = tmp_dir.join(format!("{:016x}.tmp", rand::rng().random::<u64>()));
        let write = || -> std::io::Result<()> {
            let total: usize = parts.iter().map(|p| p.len()).sum();
            let f = match (total >= DIRECT_MIN).then(|| write_direct(&tmp, parts, total)) {
                Some(Ok(f)) => f,
                // A file system without O_DIRECT (tmpfs, some FUSE ones)
                // refuses it with EINVAL: write through the page cache.
                Some(Err(e))
                    if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) =>
                {
                    let _ = fs::remove_file(&tmp);
                    write_buffered(&tmp, parts)?
                }
                Some(Err(e)) => return Err(e),
                None => write_buffered(&tmp, parts)?,
            };
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, &dest)?;
            sync_dir(&parent)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            self.err("put", key, &e)
        })
    }

    fn get(&self, key: &str) -> StorageResult<Vec<u8>> {
        check_key(&self.location, "get", key)?;
        fs::read(self.path(key)).map_err(|e| self.err("get", key, &e))
    }

    fn get_range(&self, key: &str, offset: u64, length: u64) -> StorageResult<Vec<u8>> {
        check_key(&self.location, "get_range", key)?;
        let f = File::open(self.path(key)).map_err(|e| self.err("get_range", key, &e))?;
        let len = usize::try_from(length).map_err(|_| {
            StorageError::new(
                crate::StorageErrorKind::InvalidKey,
                &self.location,
                "get_range",
                key,
                format!("range of {length} bytes does not fit in memory"),
            )
        })?;
        let mut buf = vec![0; len];
        f.read_exact_at(&mut buf, offset)
            .map_err(|e| self.err("get_range", key, &e))?;
        Ok(buf)
    }

    fn list(&self, prefix: &str) -> StorageResult<Vec<ObjectInfo>> {
        // List the deepest directory that the prefix names entirely, then filter.
        let dir_part = match prefix.rfind('/') {
            Some(i) => &prefix[..i],
            None => "",
        };
        check_list_prefix(&self.location, prefix)?;
        let mut out = Vec::new();
        let mut stack = vec![(self.root.join(dir_part), dir_part.to_owned())];
        while let Some((dir, rel)) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(self.err("list", prefix, &e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| self.err("list", prefix, &e))?;
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue; // not a key we could have written
                };
                let key = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                let ft = entry.file_type().map_err(|e| self.err("list", &key, &e))?;
                if ft.is_dir() {
                    if key != TMP_DIR {
                        stack.push((entry.path(), key));
                    }
                } else if ft.is_file() && key.starts_with(prefix) {
                    let size = entry
                        .metadata()
                        .map_err(|e| self.err("list", &key, &e))?
                        .len();
                    out.push(ObjectInfo { key, size });
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn delete(&self, key: &str) -> StorageResult<()> {
        check_key(&self.location, "delete", key)?;
        let path = self.path(key);
        match fs::remove_file(&path) {
            Ok(()) => {
                if let Some(parent) = path.parent() {
                    sync_dir(parent).map_err(|e| self.err("delete", key, &e))?;
                }
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.err("delete", key, &e)),
        }
    }

    fn ensure_prefix(&self, prefix: &str) -> StorageResult<()> {
        check_key(&self.location, "mkdir", prefix)?;
        create_dir_durable(&self.path(prefix)).map_err(|e| self.err("mkdir", prefix, &e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StorageErrorKind;

    /// Packs go around the page cache (O_DIRECT), on disk and on tmpfs
    /// (which takes O_DIRECT since Linux 6.6 and refused it before): the
    /// bytes stored are exactly those given, whatever their sizes and
    /// alignment.
    #[test]
    fn large_objects_are_stored_exactly_with_or_without_o_direct() {
        let data = coffer_testkit::tree::random_bytes(7, 3 * DIRECT_STAGE + 12_345);
        let (a, b) = data.split_at(DIRECT_STAGE - 1);
        let (b, c) = b.split_at(DIRECT_STAGE + 2);
        let disk = tempfile::tempdir().unwrap();
        let shm = Path::new("/dev/shm");
        let tmpfs = shm.is_dir().then(|| tempfile::tempdir_in(shm).unwrap());
        let roots = [Some(disk.path()), tmpfs.as_ref().map(|t| t.path())];
        for root in roots.into_iter().flatten() {
            let s = LocalStorage::new(root.join("repo"));
            for (key, size) in [("data/aa/exact", DIRECT_MIN), ("data/aa/big", data.len())] {
                let parts: Vec<&[u8]> = if size == data.len() {
                    vec![a, b, &[], c]
                } else {
                    vec![&data[..size]]
                };
                s.put_parts(key, &parts).unwrap();
                let stored = s.get(key).unwrap();
                assert_eq!(stored.len(), size, "{key} in {}", root.display());
                assert!(stored == data[..size], "{key} in {}", root.display());
            }
            let left = fs::read_dir(root.join("repo").join(TMP_DIR))
                .unwrap()
                .count();
            assert_eq!(left, 0, "no temporary file is left in {}", root.display());
        }
    }

    #[test]
    fn put_get_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(dir.path().join("repo"));
        s.put_parts("data/ab/abc", &[b"hello ", b"world"]).unwrap();
        s.put("config", b"cfg").unwrap();
        assert_eq!(s.get("data/ab/abc").unwrap(), b"hello world");
        assert_eq!(s.get_range("data/ab/abc", 6, 5).unwrap(), b"world");
        assert_eq!(
            s.get_range("data/ab/abc", 8, 5).unwrap_err().kind,
            StorageErrorKind::Corrupt
        );
        let keys: Vec<_> = s.list("").unwrap().into_iter().map(|o| o.key).collect();
        assert_eq!(keys, ["config", "data/ab/abc"]);
        let data: Vec<_> = s
            .list("data/")
            .unwrap()
            .into_iter()
            .map(|o| (o.key, o.size))
            .collect();
        assert_eq!(data, [("data/ab/abc".to_owned(), 11)]);
        s.delete("data/ab/abc").unwrap();
        s.delete("data/ab/abc").unwrap();
        assert_eq!(
            s.get("data/ab/abc").unwrap_err().kind,
            StorageErrorKind::NotFound
        );
        // no temporary file is left behind or listed
        assert!(
            fs::read_dir(dir.path().join("repo").join(TMP_DIR))
                .unwrap()
                .next()
                .is_none()
        );
    }

    #[test]
    fn errors_name_target_operation_and_key() {
        let s = LocalStorage::new("/nonexistent-coffer-root");
        let e = s.get("config").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("local:/nonexistent-coffer-root")
                && msg.contains("get")
                && msg.contains("config"),
            "{msg}"
        );
        assert!(s.put("../escape", b"x").is_err());
    }
}
