//! Locking, at two levels.
//!
//! * **In the process**: a table keyed by repository location. Backups,
//!   restores and checks take it shared; forget and prune take it exclusive.
//! * **In the repository**: a lock object under `coffer/locks/` that every
//!   Coffer process (server and offline CLI, on any host) honours. It records
//!   the operation, host, pid and a timestamp that a background thread
//!   refreshes every [`REFRESH_EVERY`].
//!
//! **Stale-lock rule.** A lock object is stale, and is removed by whoever
//! finds it, when its timestamp has not been refreshed for [`STALE_AFTER`],
//! or when it was taken on this host by a process that no longer exists.
//!
//! **A lock that cannot be refreshed is lost.** When the lock object has
//! not been refreshed for [`GIVE_UP_AFTER`] (two refreshes short of
//! [`STALE_AFTER`]), or the restic lock file not renewed for
//! [`RESTIC_GIVE_UP_AFTER`] (two renewals short of restic's 30 minutes),
//! another process may soon take the repository as free. The holder then
//! stops writing: the callbacks registered with [`RepoLock::on_loss`] run
//! (a backup closes its snapshot gate and stops reading; a prune's
//! storage refuses further deletions) and the operation ends with
//! [`EngineError::LockLost`].
//!
//! * **For restic and rustic**: a repository's own operations (through
//!   [`crate::Repo`]) also write a restic lock file (`locks/<id>`, encrypted
//!   with the repository key, restic's fields) beside each lock object,
//!   renewed every [`RESTIC_REFRESH_EVERY`] as restic renews its own (a new
//!   file, then the old one removed), so `restic prune` refuses to run while
//!   Coffer works. Plain restic's locks are honoured the same way: Coffer
//!   takes no lock that conflicts with a live one (see [`crate::restic_locks`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use coffer_model::crash::crash_point;
use coffer_targets::Storage;
use rustic_core::repofile::MasterKey;
use serde::{Deserialize, Serialize};

use crate::{EngineError, EngineResult, restic_locks};

/// Where lock objects live in a repository.
pub const LOCK_PREFIX: &str = "coffer/locks/";
/// How often a held lock's timestamp is refreshed.
pub const REFRESH_EVERY: Duration = Duration::from_secs(60);
/// A lock not refreshed for this long is stale.
pub const STALE_AFTER: Duration = Duration::from_secs(10 * 60);
/// How often the restic lock file beside a held lock is renewed (restic
/// renews its own every 5 minutes and thinks a lock stale after 30).
pub const RESTIC_REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);
/// A lock object not refreshed for this long is given up (two refreshes
/// before [`STALE_AFTER`]).
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(8 * 60);
/// A restic lock file not renewed for this long is given up (two renewals
/// before restic's 30 minutes).
pub const RESTIC_GIVE_UP_AFTER: Duration = Duration::from_secs(20 * 60);

/// Divides every period above, for tests that watch locks being
/// refreshed, going stale or lost within seconds (1 otherwise).
static TIME_SCALE: AtomicU32 = AtomicU32::new(1);

/// Makes this process's lock periods `divisor` times shorter — for tests
/// only (a lock refreshed that often is a load on a real target).
#[doc(hidden)]
pub fn shorten_periods_for_tests(divisor: u32) {
    TIME_SCALE.store(divisor.max(1), Ordering::SeqCst);
}

fn scaled(period: Duration) -> Duration {
    period / TIME_SCALE.load(Ordering::SeqCst)
}

/// Shared (backup, restore, check) or exclusive (forget, prune, key changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    /// Several holders at once.
    Shared,
    /// One holder, nobody else.
    Exclusive,
}

/// The content of a lock object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockInfo {
    /// Random id, also the object's name.
    pub id: String,
    /// Shared or exclusive.
    pub mode: LockMode,
    /// The operation holding it (e.g. `backup`, `prune`).
    pub owner: String,
    /// Host name of the holder.
    pub host: String,
    /// Process id of the holder.
    pub pid: u32,
    /// When it was taken (seconds since the Unix epoch).
    pub created: u64,
    /// When it was last refreshed (seconds since the Unix epoch).
    pub refreshed: u64,
}

impl LockInfo {
    fn describe(&self, now: u64) -> String {
        format!(
            "{} lock for {:?} held by pid {} on {}, refreshed {} s ago",
            match self.mode {
                LockMode::Shared => "shared",
                LockMode::Exclusive => "exclusive",
            },
            self.owner,
            self.pid,
            self.host,
            now.saturating_sub(self.refreshed)
        )
    }

    /// Whether the stale-lock rule applies to this lock now, seen from this host.
    pub fn is_stale_now(&self) -> bool {
        self.is_stale(now_secs(), &hostname())
    }

    fn is_stale(&self, now: u64, host: &str) -> bool {
        if now.saturating_sub(self.refreshed) > scaled(STALE_AFTER).as_secs() {
            return true;
        }
        self.host == host && !process_exists(self.pid)
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn process_exists(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    // Signal 0 only checks for existence and permission: a process we may
    // not signal (EPERM) still exists.
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

pub(crate) fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

#[derive(Debug, Default, Clone, Copy)]
struct LocalState {
    shared: usize,
    exclusive: bool,
}

/// Lock objects and restic lock files this process could not remove (the
/// target was down when the operation ended), by repository location: the
/// next lock taken on that repository removes them first, so a lock of a
/// live process is not left for restic to trip over.
fn orphans() -> &'static Mutex<HashMap<String, Vec<String>>> {
    static ORPHANS: OnceLock<Mutex<HashMap<String, Vec<String>>>> = OnceLock::new();
    ORPHANS.get_or_init(Default::default)
}

fn remove_or_remember(storage: &dyn Storage, key: &str) {
    if let Err(e) = storage.delete(key) {
        log::warn!("could not remove lock {key} (retried with the next lock taken): {e}");
        let mut table = orphans().lock().unwrap_or_else(|e| e.into_inner());
        table
            .entry(storage.location())
            .or_default()
            .push(key.to_owned());
    }
}

fn remove_orphans(storage: &dyn Storage) {
    let left = {
        let mut table = orphans().lock().unwrap_or_else(|e| e.into_inner());
        table.remove(&storage.location()).unwrap_or_default()
    };
    for key in left {
        remove_or_remember(storage, &key);
    }
}

fn local_table() -> &'static Mutex<HashMap<String, LocalState>> {
    static TABLE: OnceLock<Mutex<HashMap<String, LocalState>>> = OnceLock::new();
    TABLE.get_or_init(Default::default)
}

/// A held lock (both levels). Dropping it releases both.
#[derive(Debug)]
pub struct RepoLock {
    location: String,
    mode: LockMode,
    storage: Arc<dyn Storage>,
    key: String,
    /// The restic lock file mirroring it now (renewed by the refresher).
    restic: Option<Arc<Mutex<String>>>,
    /// Set by the refresher once the lock is given up.
    loss: Arc<Loss>,
    stop: Option<mpsc::Sender<()>>,
    refresher: Option<JoinHandle<()>>,
}

/// How long checks, forgets, prunes and copies wait for another operation
/// of this process to release a conflicting lock (a forget by retention
/// takes a moment; a backup or a prune can take hours, and then the wait
/// ends with [`EngineError::Locked`]).
pub const IN_PROCESS_PATIENCE: Duration = Duration::from_secs(30);

impl RepoLock {
    /// Takes the lock for `owner`, or fails at once with
    /// [`EngineError::Locked`] naming the holder.
    pub fn acquire(storage: Arc<dyn Storage>, mode: LockMode, owner: &str) -> EngineResult<Self> {
        Self::acquire_patiently(storage, mode, owner, Duration::ZERO)
    }

    /// Like [`Self::acquire`], but waits up to `patience` while another
    /// operation of this process holds a conflicting lock — for short
    /// operations that may meet one (a check starting while retention
    /// forgets a backup). A lock held by another process fails at once.
    pub fn acquire_patiently(
        storage: Arc<dyn Storage>,
        mode: LockMode,
        owner: &str,
        patience: Duration,
    ) -> EngineResult<Self> {
        Self::acquire_for_restic(storage, mode, owner, patience, None)
    }

    /// Like [`Self::acquire_patiently`]; with the repository's `key`, also
    /// honours plain restic's locks and writes one restic sees.
    pub(crate) fn acquire_for_restic(
        storage: Arc<dyn Storage>,
        mode: LockMode,
        owner: &str,
        patience: Duration,
        key: Option<&MasterKey>,
    ) -> EngineResult<Self> {
        let location = storage.location();
        let started = std::time::Instant::now();
        loop {
            match Self::acquire_local(&location, mode) {
                Ok(()) => break,
                Err(e) if started.elapsed() >= patience => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        match Self::acquire_remote(&storage, mode, owner, key) {
            Ok(held) => Ok(Self {
                location,
                mode,
                storage,
                key: held.key,
                restic: held.restic,
                loss: held.loss,
                stop: Some(held.stop),
                refresher: Some(held.refresher),
            }),
            Err(e) => {
                Self::release_local(&location, mode);
                Err(e)
            }
        }
    }

    fn acquire_local(location: &str, mode: LockMode) -> EngineResult<()> {
        let mut table = local_table().lock().unwrap_or_else(|e| e.into_inner());
        let state = table.entry(location.to_owned()).or_default();
        let conflict = match mode {
            LockMode::Shared => state.exclusive,
            LockMode::Exclusive => state.exclusive || state.shared > 0,
        };
        if conflict {
            return Err(EngineError::Locked {
                location: location.to_owned(),
                holder: format!(
                    "another operation in this process holds it {}",
                    if state.exclusive {
                        "exclusively"
                    } else {
                        "shared"
                    }
                ),
            });
        }
        match mode {
            LockMode::Shared => state.shared += 1,
            LockMode::Exclusive => state.exclusive = true,
        }
        Ok(())
    }

    fn release_local(location: &str, mode: LockMode) {
        let mut table = local_table().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(state) = table.get_mut(location) {
            match mode {
                LockMode::Shared => state.shared = state.shared.saturating_sub(1),
                LockMode::Exclusive => state.exclusive = false,
            }
        }
    }

    /// Writes our lock object, then looks at everyone else's. Writing first
    /// and checking after means two racing processes both see each other and
    /// both back off, rather than both proceeding.
    fn acquire_remote(
        storage: &Arc<dyn Storage>,
        mode: LockMode,
        owner: &str,
        repo_key: Option<&MasterKey>,
    ) -> EngineResult<Held> {
        remove_orphans(&**storage);
        let host = hostname();
        let now = now_secs();
        let info = LockInfo {
            id: format!("{:032x}", rand::random::<u128>()),
            mode,
            owner: owner.to_owned(),
            host: host.clone(),
            pid: std::process::id(),
            created: now,
            refreshed: now,
        };
        let key = format!("{LOCK_PREFIX}{}.json", info.id);
        let body = serde_json::to_vec(&info).map_err(|e| EngineError::Engine(e.to_string()))?;
        storage.put(&key, &body)?;
        crash_point("lock.object.written");
        let exclusive = mode == LockMode::Exclusive;
        let restic = match repo_key {
            None => None,
            Some(k) => match restic_locks::write(&**storage, k, exclusive, &host, &info.id) {
                Ok(name) => {
                    crash_point("lock.restic.written");
                    Some(Arc::new(Mutex::new(name)))
                }
                Err(e) => {
                    let _ = storage.delete(&key);
                    return Err(e);
                }
            },
        };

        let check = || -> EngineResult<()> {
            for other in storage.list(LOCK_PREFIX)? {
                if other.key == key {
                    continue;
                }
                let parsed = storage
                    .get(&other.key)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<LockInfo>(&b).ok());
                let Some(other_info) = parsed else {
                    // Unreadable or vanished meanwhile: a lock being deleted.
                    continue;
                };
                if other_info.is_stale(now, &host) {
                    log::warn!(
                        "removing stale lock {}: {}",
                        other.key,
                        other_info.describe(now)
                    );
                    storage.delete(&other.key)?;
                    if let Some(k) = repo_key {
                        restic_locks::remove_mirrors(&**storage, k, &other_info.id);
                    }
                    continue;
                }
                if mode == LockMode::Exclusive || other_info.mode == LockMode::Exclusive {
                    return Err(EngineError::Locked {
                        location: storage.location(),
                        holder: other_info.describe(now),
                    });
                }
            }
            // Plain restic's (Coffer's own restic files are left out: their
            // lock objects were judged above).
            if let Some(k) = repo_key {
                let now = i64::try_from(now).unwrap_or(i64::MAX);
                for l in restic_locks::list(&**storage, k, now)? {
                    if !l.stale && (exclusive || l.exclusive) {
                        return Err(EngineError::Locked {
                            location: storage.location(),
                            holder: format!(
                                "plain restic ({}, {} lock {}, {} s old): wait until it ends, \
                                 or run `restic unlock` if that process is gone",
                                l.holder,
                                if l.exclusive { "exclusive" } else { "shared" },
                                l.key,
                                l.age_secs
                            ),
                        });
                    }
                }
            }
            Ok(())
        };
        if let Err(e) = check() {
            let _ = storage.delete(&key);
            if let Some(r) = &restic {
                let _ = storage.delete(&lock_name(r));
            }
            return Err(e);
        }

        let (stop, stopped) = mpsc::channel::<()>();
        let loss = Arc::new(Loss::default());
        let mut refresher = Refresher {
            storage: Arc::clone(storage),
            key: key.clone(),
            info,
            restic: restic
                .as_ref()
                .zip(repo_key)
                .map(|(r, k)| (Arc::clone(r), k.clone())),
            loss: Arc::clone(&loss),
        };
        let refresher = std::thread::Builder::new()
            .name("coffer-lock-refresh".into())
            .spawn(move || refresher.run(&stopped))
            .map_err(|e| EngineError::io("starting the lock refresher", e))?;
        Ok(Held {
            key,
            restic,
            loss,
            stop,
            refresher,
        })
    }

    /// Runs `f` (with the reason) once this lock is given up because it
    /// could not be refreshed — at once if it already is. Callbacks stop the
    /// holder's writes (see the module's documentation).
    pub(crate) fn on_loss(&self, f: impl Fn(&str) + Send + 'static) {
        let mut state = self.loss.state.lock().unwrap_or_else(|e| e.into_inner());
        match &state.reason {
            Some(reason) => f(reason),
            None => state.callbacks.push(Box::new(f)),
        }
    }

    /// [`EngineError::LockLost`] if this lock was given up.
    pub(crate) fn ensure_held(&self) -> EngineResult<()> {
        let state = self.loss.state.lock().unwrap_or_else(|e| e.into_inner());
        match &state.reason {
            Some(reason) => Err(EngineError::LockLost {
                location: self.location.clone(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Lists the lock objects in a repository, for display.
    pub fn list(storage: &dyn Storage) -> EngineResult<Vec<LockInfo>> {
        let mut out = Vec::new();
        for o in storage.list(LOCK_PREFIX)? {
            if let Ok(b) = storage.get(&o.key)
                && let Ok(info) = serde_json::from_slice(&b)
            {
                out.push(info);
            }
        }
        Ok(out)
    }
}

/// What [`RepoLock::acquire_remote`] leaves held.
struct Held {
    key: String,
    restic: Option<Arc<Mutex<String>>>,
    loss: Arc<Loss>,
    stop: mpsc::Sender<()>,
    refresher: JoinHandle<()>,
}

type LossCallback = Box<dyn Fn(&str) + Send>;

/// Whether a held lock was given up, and who to tell when it is.
#[derive(Default)]
struct Loss {
    state: Mutex<LossState>,
}

#[derive(Default)]
struct LossState {
    reason: Option<String>,
    callbacks: Vec<LossCallback>,
}

impl std::fmt::Debug for Loss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("Loss")
            .field("reason", &state.reason)
            .finish_non_exhaustive()
    }
}

impl Loss {
    fn give_up(&self, reason: String) {
        log::error!("giving up a repository lock: {reason}");
        let callbacks = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if state.reason.is_some() {
                return;
            }
            state.reason = Some(reason.clone());
            std::mem::take(&mut state.callbacks)
        };
        for f in callbacks {
            f(&reason);
        }
    }
}

/// The thread that keeps a held lock fresh: the lock object every
/// [`REFRESH_EVERY`], the restic lock file every [`RESTIC_REFRESH_EVERY`]
/// (retried at every tick after a failure), until told to stop — or until
/// one of them has gone unrefreshed too long, when the lock is given up.
struct Refresher {
    storage: Arc<dyn Storage>,
    key: String,
    info: LockInfo,
    restic: Option<(Arc<Mutex<String>>, MasterKey)>,
    loss: Arc<Loss>,
}

impl Refresher {
    fn run(&mut self, stopped: &mpsc::Receiver<()>) {
        let mut refreshed = std::time::Instant::now();
        let mut renewed = refreshed;
        let mut last_error = String::new();
        loop {
            match stopped.recv_timeout(scaled(REFRESH_EVERY)) {
                Err(RecvTimeoutError::Timeout) => {}
                _ => return,
            }
            self.info.refreshed = now_secs();
            let put = serde_json::to_vec(&self.info)
                .map_err(|e| e.to_string())
                .and_then(|body| {
                    self.storage
                        .put(&self.key, &body)
                        .map_err(|e| e.to_string())
                });
            match put {
                Ok(()) => refreshed = std::time::Instant::now(),
                Err(e) => {
                    log::warn!("could not refresh lock {}: {e}", self.key);
                    last_error = e;
                }
            }
            if let Some((current, k)) = &self.restic
                && renewed.elapsed() >= scaled(RESTIC_REFRESH_EVERY)
            {
                match renew_restic(&*self.storage, current, k, &self.info) {
                    Ok(()) => renewed = std::time::Instant::now(),
                    Err(e) => last_error = e,
                }
            }
            let late = if refreshed.elapsed() >= scaled(GIVE_UP_AFTER) {
                Some(("lock object", refreshed))
            } else if renewed.elapsed() >= scaled(RESTIC_GIVE_UP_AFTER) {
                Some(("restic lock file", renewed))
            } else {
                None
            };
            if let Some((what, since)) = late {
                self.loss.give_up(format!(
                    "its {what} was last refreshed {} s ago: {last_error}",
                    since.elapsed().as_secs()
                ));
                return;
            }
        }
    }
}

fn lock_name(current: &Mutex<String>) -> String {
    current.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Renews a restic lock file as restic does: a new one with the time now,
/// then the old one removed (a lock file is named by its content, so it
/// cannot be rewritten in place).
fn renew_restic(
    storage: &dyn Storage,
    current: &Mutex<String>,
    key: &MasterKey,
    info: &LockInfo,
) -> Result<(), String> {
    let exclusive = info.mode == LockMode::Exclusive;
    match restic_locks::write(storage, key, exclusive, &info.host, &info.id) {
        Ok(new) => {
            let old =
                std::mem::replace(&mut *current.lock().unwrap_or_else(|e| e.into_inner()), new);
            // A leftover old file is one more live-looking lock until
            // restic thinks it stale; it is not a reason to give up.
            remove_or_remember(storage, &old);
            Ok(())
        }
        Err(e) => {
            log::warn!("could not renew the restic lock of {}: {e}", info.id);
            Err(e.to_string())
        }
    }
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(h) = self.refresher.take() {
            let _ = h.join();
        }
        if let Some(r) = &self.restic {
            remove_or_remember(&*self.storage, &lock_name(r));
            crash_point("lock.releasing");
        }
        remove_or_remember(&*self.storage, &self.key);
        Self::release_local(&self.location, self.mode);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_targets::LocalStorage;

    #[test]
    fn shared_locks_coexist_and_exclusive_excludes() {
        let dir = tempfile::tempdir().unwrap();
        let s: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
        let a = RepoLock::acquire(s.clone(), LockMode::Shared, "backup").unwrap();
        let b = RepoLock::acquire(s.clone(), LockMode::Shared, "backup").unwrap();
        let err = RepoLock::acquire(s.clone(), LockMode::Exclusive, "prune").unwrap_err();
        assert!(matches!(err, EngineError::Locked { .. }), "{err}");
        drop((a, b));
        let x = RepoLock::acquire(s.clone(), LockMode::Exclusive, "prune").unwrap();
        assert!(RepoLock::acquire(s.clone(), LockMode::Shared, "backup").is_err());
        drop(x);
        assert!(RepoLock::list(&*s).unwrap().is_empty());
    }

    #[test]
    fn stale_locks_are_ignored_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let s: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
        let now = now_secs();
        let dead = LockInfo {
            id: "dead".into(),
            mode: LockMode::Exclusive,
            owner: "prune".into(),
            host: hostname(),
            pid: u32::MAX - 1, // no such process
            created: now,
            refreshed: now,
        };
        let old = LockInfo {
            id: "old".into(),
            host: "elsewhere".into(),
            pid: 1,
            refreshed: now - STALE_AFTER.as_secs() - 5,
            ..dead.clone()
        };
        let alive_elsewhere = LockInfo {
            id: "alive".into(),
            host: "elsewhere".into(),
            pid: 1,
            ..dead.clone()
        };
        for l in [&dead, &old] {
            s.put(
                &format!("{LOCK_PREFIX}{}.json", l.id),
                &serde_json::to_vec(l).unwrap(),
            )
            .unwrap();
        }
        let lock = RepoLock::acquire(s.clone(), LockMode::Exclusive, "prune").unwrap();
        assert_eq!(RepoLock::list(&*s).unwrap().len(), 1, "stale locks removed");
        drop(lock);
        s.put(
            &format!("{LOCK_PREFIX}alive.json"),
            &serde_json::to_vec(&alive_elsewhere).unwrap(),
        )
        .unwrap();
        let err = RepoLock::acquire(s.clone(), LockMode::Shared, "backup").unwrap_err();
        assert!(err.to_string().contains("elsewhere"), "{err}");
    }
}
