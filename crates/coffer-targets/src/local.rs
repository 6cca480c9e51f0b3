//! A directory on a local (or locally mounted) filesystem.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rand::Rng;

use crate::{
    ObjectInfo, Storage, StorageError, StorageResult, TMP_DIR, check_key, check_list_prefix,
};

/// Temporary files older than this are leftovers of crashed writers.
const TMP_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

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
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            for part in parts {
                f.write_all(part)?;
            }
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
