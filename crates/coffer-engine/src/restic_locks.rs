//! Plain restic's locks (`locks/<id>`), read so that Coffer never prunes
//! under a running `restic backup` or `restic prune`: restic does not see
//! Coffer's own lock objects (`coffer/locks/`), and rustic_core does not
//! read restic's. A lock file is JSON (zstd-compressed in format 2),
//! encrypted with the repository's master key like every restic file.

use coffer_targets::Storage;
use rustic_core::jiff::Timestamp;
use rustic_core::repofile::MasterKey;
use serde::Deserialize;

use crate::{EngineError, EngineResult};

/// restic considers a lock stale once it has not been refreshed for this
/// long (it refreshes every 5 minutes): `staleTimeout` in restic.
const STALE_SECS: i64 = 30 * 60;

/// A lock of plain restic's, as it is stored.
#[derive(Debug, Deserialize)]
struct LockFile {
    time: String,
    #[serde(default)]
    exclusive: bool,
    #[serde(default)]
    hostname: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    pid: i64,
}

/// A lock plain restic holds (or held) on the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResticLock {
    /// `locks/<id>`.
    pub key: String,
    /// Exclusive (prune, check with repair) or shared (backup, restore…).
    pub exclusive: bool,
    /// Who and where: `user@host pid N`.
    pub holder: String,
    /// Seconds since it was created or last refreshed.
    pub age_secs: i64,
    /// Older than restic's stale timeout: restic itself would ignore it.
    pub stale: bool,
}

/// Opens a restic JSON file: decrypted, and decompressed in format 2.
fn decrypt(key: &MasterKey, data: &[u8]) -> EngineResult<Vec<u8>> {
    let plain = crate::crypto::decrypt(&crate::crypto::cipher(key), data)
        .map_err(|e| EngineError::Engine(format!("lock file: {e}")))?;
    Ok(match plain.first() {
        // Format 2 compresses JSON files: a 2, then zstd.
        Some(2) => zstd::decode_all(&plain[1..])
            .map_err(|e| EngineError::Engine(format!("lock file: {e}")))?,
        _ => plain,
    })
}

/// Every lock under `locks/` that opens with `key`, with its age measured
/// against `now` (Unix seconds). A file that does not open or parse is
/// reported as a lock of unknown holder that is not stale: refusing to
/// prune is the safe side.
pub(crate) fn list(
    storage: &dyn Storage,
    key: &MasterKey,
    now: i64,
) -> EngineResult<Vec<ResticLock>> {
    let mut out = Vec::new();
    for object in storage.list("locks/")? {
        let data = match storage.get(&object.key) {
            Ok(d) => d,
            // Removed meanwhile: its holder finished.
            Err(e) if e.kind == coffer_targets::StorageErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        let parsed = decrypt(key, &data).and_then(|json| {
            serde_json::from_slice::<LockFile>(&json)
                .map_err(|e| EngineError::Engine(format!("lock file: {e}")))
        });
        out.push(match parsed {
            Ok(lock) => {
                let at = lock
                    .time
                    .parse::<Timestamp>()
                    .map(|t| t.as_second())
                    .unwrap_or(now);
                let age_secs = (now - at).max(0);
                ResticLock {
                    key: object.key,
                    exclusive: lock.exclusive,
                    holder: format!("{}@{} pid {}", lock.username, lock.hostname, lock.pid),
                    age_secs,
                    stale: age_secs > STALE_SECS,
                }
            }
            Err(e) => ResticLock {
                key: object.key,
                exclusive: false,
                holder: format!("unknown ({e})"),
                age_secs: 0,
                stale: false,
            },
        });
    }
    Ok(out)
}
