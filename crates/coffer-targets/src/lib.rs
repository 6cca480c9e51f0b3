//! Where backups live.
//!
//! [`Storage`] is a small, neutral object-store interface (put, get, ranged
//! get, list, delete) that every target kind implements. It knows nothing about
//! the backup format: `coffer-engine` adapts it to the repository engine, and
//! nothing here sees an engine type.
//!
//! Every implementation must uphold one rule the engine relies on for crash
//! safety: **an object appears under its final key only when it is complete
//! and durable** (temporary name + rename, or a single atomic PUT).

mod error;
mod ftp;
mod local;
mod open;
pub mod pipe;
mod retry;
mod s3;
mod sftp;
pub mod validate;

pub use error::{StorageError, StorageErrorKind};
pub use ftp::{FtpSettings, FtpStage, FtpStorage, FtpTls};
pub use local::LocalStorage;
pub use open::{OpenTarget, resolve_secret};
pub use retry::RetryPolicy;
pub use s3::{
    ObjectBody, ObjectHead, ObjectMeta, S3Client, S3Object, S3Settings, S3Storage, S3Timeouts,
};
pub use sftp::{SftpAuth, SftpSettings, SftpStage, SftpStorage};

/// Bytes available to this user on the file system holding `path`.
pub fn free_space_at(path: &std::path::Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(path)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// One stored object as returned by [`Storage::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Key relative to the storage root, `/`-separated (e.g. `data/ab/ab12…`).
    pub key: String,
    /// Size in bytes.
    pub size: u64,
}

/// Result type of storage operations.
pub type StorageResult<T> = Result<T, StorageError>;

/// A place that stores objects under `/`-separated keys.
///
/// The interface is synchronous: the engine runs on blocking threads anyway
/// (see `coffer-engine`), and async callers wrap calls in `spawn_blocking`.
pub trait Storage: Send + Sync + std::fmt::Debug + 'static {
    /// Human-readable location, used in every error message (e.g.
    /// `local:/srv/backups`).
    fn location(&self) -> String;

    /// Stores `parts`, concatenated, under `key`, replacing any existing
    /// object. Atomic and durable: readers see either the old object, nothing,
    /// or the whole new one, and once this returns the data survives a crash.
    fn put_parts(&self, key: &str, parts: &[&[u8]]) -> StorageResult<()>;

    /// Stores `data` under `key`; see [`Storage::put_parts`].
    fn put(&self, key: &str, data: &[u8]) -> StorageResult<()> {
        self.put_parts(key, &[data])
    }

    /// Reads a whole object.
    fn get(&self, key: &str) -> StorageResult<Vec<u8>>;

    /// Reads `length` bytes at `offset`. Reading past the end is an error:
    /// the engine never asks for bytes that should not exist, so a short
    /// object means damage.
    fn get_range(&self, key: &str, offset: u64, length: u64) -> StorageResult<Vec<u8>>;

    /// Reads `ranges` (offset, length) of one object, in the order given,
    /// yielding each range's bytes as it arrives; same rules as
    /// [`Storage::get_range`]. The default reads them one request each;
    /// targets where a request is dear read them in one stream.
    fn get_ranges<'a>(
        &'a self,
        key: &str,
        ranges: Vec<(u64, u64)>,
    ) -> Box<dyn Iterator<Item = StorageResult<Vec<u8>>> + 'a> {
        let key = key.to_owned();
        Box::new(
            ranges
                .into_iter()
                .map(move |(offset, length)| self.get_range(&key, offset, length)),
        )
    }

    /// How far apart, first byte to last, the ranges of one object may lie
    /// for a restore to read them with one [`Storage::get_ranges`] call
    /// (one stream, the bytes between them read and dropped). 0, the
    /// default: each range is its own read, so they spread over the
    /// parallel readers.
    fn read_run_bytes(&self) -> u64 {
        0
    }

    /// Lists every object whose key starts with `prefix` (recursively).
    /// Temporary objects of in-flight or interrupted writes are never listed.
    fn list(&self, prefix: &str) -> StorageResult<Vec<ObjectInfo>>;

    /// Deletes an object. Deleting a missing object succeeds, so a retried or
    /// repeated delete is harmless.
    fn delete(&self, key: &str) -> StorageResult<()>;

    /// How many reads a restore keeps in flight at once: enough to hide a
    /// round trip on network targets, few enough for the server's limits.
    fn parallel_reads(&self) -> usize {
        4
    }

    /// How many packs a backup uploads at once. 1 (the default) stores
    /// each pack before the backup goes on; more overlap their round trips
    /// on network targets, each held in memory until stored (32 MiB or
    /// more apiece).
    fn parallel_writes(&self) -> usize {
        1
    }

    /// Prepares the storage for writes under `prefix` (creates a directory on
    /// file-like targets; a no-op on object stores).
    fn ensure_prefix(&self, _prefix: &str) -> StorageResult<()> {
        Ok(())
    }
}

/// Whether the directory `dir` (a key without a trailing `/`) can hold
/// keys starting with `prefix`: listings of file-like targets walk only
/// those, so listing `config` or `locks/` never walks `data/`'s 256
/// directories (a round trip each on a remote server).
pub(crate) fn may_hold(dir: &str, prefix: &str) -> bool {
    let dir = format!("{dir}/");
    dir.starts_with(prefix) || prefix.starts_with(&dir)
}

/// Refuses keys that could escape the storage root or collide with
/// temporary objects. Every implementation calls this first.
/// Where every backend keeps objects being uploaded (or cut short by an
/// interrupted write) before they are renamed into place: inside the target,
/// so the rename stays on one filesystem or server and is atomic. Listings
/// never show it.
pub(crate) const TMP_DIR: &str = "coffer/tmp";

/// A ranged read's data, refused as `Corrupt` unless it is exactly `length`
/// bytes (a server that returns less or more must not pass unnoticed).
pub(crate) fn exact_range(
    location: &str,
    key: &str,
    offset: u64,
    length: u64,
    data: Vec<u8>,
) -> StorageResult<Vec<u8>> {
    if data.len() as u64 != length {
        return Err(StorageError::new(
            StorageErrorKind::Corrupt,
            location,
            "get-range",
            key,
            format!("asked for {length} bytes at {offset}, got {}", data.len()),
        ));
    }
    Ok(data)
}

pub fn check_key(location: &str, op: &'static str, key: &str) -> StorageResult<()> {
    let bad = key.is_empty()
        || key.starts_with('/')
        || key.contains('\\')
        || key.contains('\0')
        || key
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        return Err(StorageError::new(
            StorageErrorKind::InvalidKey,
            location,
            op,
            key,
            "key must be a relative path without empty, '.' or '..' components",
        ));
    }
    Ok(())
}

/// Refuses a listing prefix that could reach outside the storage root. A
/// prefix is not a key (`data/` ends in a slash and `data/a` may name part
/// of a file name), but its directory part must be a valid key and its last
/// part may not be `.` or `..`. Every implementation of [`Storage::list`]
/// calls this first.
pub fn check_list_prefix(location: &str, prefix: &str) -> StorageResult<()> {
    if prefix.is_empty() {
        return Ok(());
    }
    let (dir, tail) = prefix.rsplit_once('/').unwrap_or(("", prefix));
    let bad = prefix.starts_with('/')
        || prefix.contains(['\\', '\0'])
        || tail == "."
        || tail == ".."
        || (prefix.contains('/') && check_key(location, "list", dir).is_err());
    if bad {
        return Err(StorageError::new(
            StorageErrorKind::InvalidKey,
            location,
            "list",
            prefix,
            "a listing prefix must stay inside the target: no leading '/', no empty, '.' or '..' components",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_walk_only_directories_that_can_match() {
        assert!(!may_hold("data", "config"));
        assert!(!may_hold("data", "locks/"));
        assert!(may_hold("data", "data/"));
        assert!(may_hold("data/0a", "data/"));
        assert!(may_hold("data", "data/0a/"));
        assert!(!may_hold("data/0b", "data/0a/"));
        assert!(may_hold("coffer", "coffer/locks/"));
        assert!(may_hold("anything", ""));
        assert!(may_hold("da", "d"));
    }

    #[test]
    fn keys_that_escape_are_refused() {
        for bad in ["", "/etc/passwd", "../x", "a/../b", "a//b", "a/./b", "a\\b"] {
            assert!(check_key("t", "put", bad).is_err(), "{bad:?}");
        }
        for good in ["config", "data/ab/abcdef", "coffer/locks/1.json"] {
            assert!(check_key("t", "put", good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn listing_prefixes_that_escape_are_refused() {
        for bad in [
            "../", "..", "../../", "a/../../", "./", "/", "..\\", "a//", "a/./b",
        ] {
            assert!(check_list_prefix("t", bad).is_err(), "{bad:?}");
        }
        for good in [
            "",
            "data/",
            "data/ab",
            "data/ab/",
            "keys/",
            "snap",
            "coffer/locks/",
        ] {
            assert!(check_list_prefix("t", good).is_ok(), "{good:?}");
        }
    }
}
