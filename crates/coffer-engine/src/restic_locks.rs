//! restic's locks (`locks/<id>`). Read, so that Coffer never works under a
//! `restic prune` nor prunes under a running `restic backup` (rustic_core
//! does not read them); and written, beside each of Coffer's own lock
//! objects (`coffer/locks/`), so that plain restic and rustic see Coffer at
//! work. A lock file is JSON (zstd-compressed in format 2 when restic
//! writes it; Coffer writes plain JSON, which restic reads in both formats),
//! encrypted with the repository's master key like every restic file, and
//! named by the SHA-256 of its encrypted bytes. Coffer's carry one more
//! field, `coffer` (restic ignores unknown fields), naming the Coffer lock
//! they mirror: Coffer judges those by its own lock objects.

use coffer_targets::Storage;
use rustic_core::jiff::Timestamp;
use rustic_core::repofile::MasterKey;
use serde::{Deserialize, Serialize};

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
    /// The Coffer lock this one mirrors (absent in plain restic's).
    #[serde(default)]
    coffer: Option<String>,
}

/// A lock as Coffer writes it, in restic's shape.
#[derive(Debug, Serialize)]
struct NewLock<'a> {
    time: String,
    exclusive: bool,
    hostname: &'a str,
    username: &'a str,
    pid: u32,
    uid: u32,
    gid: u32,
    coffer: &'a str,
}

/// Writes a restic lock for Coffer lock `coffer_id`, dated now; returns its
/// key (`locks/<sha256>`).
pub(crate) fn write(
    storage: &dyn Storage,
    key: &MasterKey,
    exclusive: bool,
    host: &str,
    coffer_id: &str,
) -> EngineResult<String> {
    let user = std::env::var("USER").unwrap_or_else(|_| "coffer".into());
    let lock = NewLock {
        time: Timestamp::now().to_string(),
        exclusive,
        hostname: host,
        username: &user,
        pid: std::process::id(),
        uid: rustix::process::getuid().as_raw(),
        gid: rustix::process::getgid().as_raw(),
        coffer: coffer_id,
    };
    let json = serde_json::to_vec(&lock).map_err(|e| EngineError::Engine(e.to_string()))?;
    let sealed = crate::crypto::encrypt(&crate::crypto::cipher(key), &json);
    let name = format!("locks/{}", hex_sha256(&sealed));
    storage.put(&name, &sealed)?;
    Ok(name)
}

/// Removes the restic lock files that mirror Coffer lock `coffer_id` — one
/// found stale (its process died): restic 0.14 does not skip stale locks
/// by itself, so a dead Coffer's would block `restic check` until
/// `restic unlock`.
pub(crate) fn remove_mirrors(storage: &dyn Storage, key: &MasterKey, coffer_id: &str) {
    let Ok(objects) = storage.list("locks/") else {
        return;
    };
    for object in objects {
        let mirrors = storage
            .get(&object.key)
            .ok()
            .and_then(|data| parse(key, &data).ok())
            .is_some_and(|l| l.coffer.as_deref() == Some(coffer_id));
        if mirrors && let Err(e) = storage.delete(&object.key) {
            log::warn!("could not remove the stale restic lock {}: {e}", object.key);
        }
    }
}

fn hex_sha256(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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

/// A lock file's content, opened with `key`.
fn parse(key: &MasterKey, data: &[u8]) -> EngineResult<LockFile> {
    let json = decrypt(key, data)?;
    serde_json::from_slice(&json).map_err(|e| EngineError::Engine(format!("lock file: {e}")))
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
    let host = crate::lock::hostname();
    for object in storage.list("locks/")? {
        let data = match storage.get(&object.key) {
            Ok(d) => d,
            // Removed meanwhile: its holder finished.
            Err(e) if e.kind == coffer_targets::StorageErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        out.push(match parse(key, &data) {
            // Coffer's own, judged by the Coffer lock it mirrors.
            Ok(lock) if lock.coffer.is_some() => continue,
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
                    // restic's rule: old, or taken on this host by a process that is gone.
                    stale: age_secs > STALE_SECS
                        || (lock.hostname == host
                            && !u32::try_from(lock.pid).is_ok_and(crate::lock::process_exists)),
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
