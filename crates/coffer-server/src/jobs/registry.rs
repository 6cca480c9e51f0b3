//! What running jobs hold: reservations (so conflicting requests get a clear
//! `Conflict`), cancel tokens and progress.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use coffer_engine::{CancelToken, ProgressFn, ProgressInfo};

use crate::error::{ServiceError, ServiceResult};

type Busy = Arc<Mutex<HashMap<String, String>>>;

/// Running jobs.
#[derive(Debug, Default)]
pub struct Jobs {
    /// Reserved keys (`component:<name>`, `backup:<id>`) → the job holding them.
    busy: Busy,
    /// Cancel tokens of running backups, by job id (one per component).
    cancels: Mutex<HashMap<String, Vec<CancelToken>>>,
    /// Progress of running components, by (job id, component).
    progress: Arc<Mutex<HashMap<(String, String), ProgressInfo>>>,
}

/// Keys held by a job; released when dropped.
#[derive(Debug)]
pub struct Reservation {
    busy: Busy,
    keys: Vec<String>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        for k in &self.keys {
            busy.remove(k);
        }
    }
}

/// Reservation key of a component (backups and restores of it exclude each other).
pub fn component_key(name: &str) -> String {
    format!("component:{name}")
}

/// Reservation key of a backup being restored, exported or deleted.
pub fn backup_key(id: &str) -> String {
    format!("backup:{id}")
}

impl Jobs {
    /// No jobs.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reserves every key for `job`, or none: `Conflict` naming the job in the way.
    pub fn reserve(&self, job: &str, keys: Vec<String>) -> ServiceResult<Reservation> {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((k, holder)) = keys.iter().find_map(|k| busy.get(k).map(|h| (k, h))) {
            let what = k.replace(':', " ");
            return Err(ServiceError::Conflict(format!(
                "{what} is busy with job {holder}"
            )));
        }
        for k in &keys {
            busy.insert(k.clone(), job.to_owned());
        }
        Ok(Reservation {
            busy: Arc::clone(&self.busy),
            keys,
        })
    }

    /// The job holding `key`, if one does.
    pub fn holder(&self, key: &str) -> Option<String> {
        self.busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    /// Fires every cancel token of `job`; false if it is not running.
    pub fn cancel(&self, job: &str) -> bool {
        let cancels = self.cancels.lock().unwrap_or_else(|e| e.into_inner());
        match cancels.get(job) {
            Some(tokens) => {
                for t in tokens {
                    t.cancel();
                }
                true
            }
            None => false,
        }
    }

    /// How far a running component of `job` has got.
    pub fn progress(&self, job: &str, component: &str) -> Option<ProgressInfo> {
        self.progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(job.to_owned(), component.to_owned()))
            .copied()
    }

    /// A progress callback for a component that records into
    /// [`Self::progress`]; the entry is removed by [`Self::progress_done`].
    pub(crate) fn progress_fn(&self, job: &str, component: &str) -> ProgressFn {
        let map = Arc::clone(&self.progress);
        let key = (job.to_owned(), component.to_owned());
        Arc::new(move |p: ProgressInfo| {
            map.lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key.clone(), p);
        })
    }

    pub(crate) fn progress_done(&self, job: &str, component: &str) {
        self.progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(job.to_owned(), component.to_owned()));
    }

    /// Fires every running backup's cancel tokens; returns how many jobs run.
    pub fn cancel_all(&self) -> usize {
        let cancels = self.cancels.lock().unwrap_or_else(|e| e.into_inner());
        for t in cancels.values().flatten() {
            t.cancel();
        }
        self.busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .collect::<HashSet<_>>()
            .len()
    }

    /// Whether any job still holds a reservation.
    pub fn any_running(&self) -> bool {
        !self
            .busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    pub(crate) fn register_cancel(&self, job: &str, token: CancelToken) {
        self.cancels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(job.to_owned())
            .or_default()
            .push(token);
    }

    pub(crate) fn was_cancelled(&self, job: &str) -> bool {
        self.cancels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(job)
            .is_some_and(|t| t.first().is_some_and(CancelToken::is_cancelled))
    }

    pub(crate) fn unregister(&self, job: &str) {
        self.cancels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(job);
    }
}
