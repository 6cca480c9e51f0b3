//! The scheduler's handle in the server's state: wake it (a schedule
//! changed, a backup ended), stop it, and see how far it has decided —
//! kept apart from the scheduler itself so the state depends on nothing
//! the scheduler uses.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use coffer_schedule::Timestamp;

/// The scheduler's handle: wake it, stop it, see how far it got.
#[derive(Debug, Default)]
pub struct Scheduler {
    woken: Mutex<bool>,
    cv: Condvar,
    stop: AtomicBool,
    evaluated: Mutex<Option<Timestamp>>,
}

impl Scheduler {
    /// Asks the scheduler to look at every schedule again now.
    pub fn wake(&self) {
        *self.woken.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_all();
    }

    /// Stops the scheduler's thread (at shutdown).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake();
    }

    /// The time (on the scheduler's clock) it last decided everything up
    /// to; `None` before its first look.
    pub fn evaluated(&self) -> Option<Timestamp> {
        *self.evaluated.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether [`Self::stop`] was called.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Records that every due time up to `now` is decided.
    pub fn decided_until(&self, now: Timestamp) {
        *self.evaluated.lock().unwrap_or_else(|e| e.into_inner()) = Some(now);
    }

    /// Sleeps up to `d`, or until woken.
    pub fn sleep(&self, d: Duration) {
        let woken = self.woken.lock().unwrap_or_else(|e| e.into_inner());
        let (mut woken, _) = self
            .cv
            .wait_timeout_while(woken, d, |w| !*w)
            .unwrap_or_else(|e| e.into_inner());
        *woken = false;
    }
}
