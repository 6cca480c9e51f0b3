//! Limits on password guessing at `POST /api/v1/auth/login`: a lockout per
//! name, a server-wide rate, and a bound on password verifications running
//! at once (each argon2id verification costs ~19 MiB and tens of
//! milliseconds of a core).

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// A counting semaphore for blocking threads: at most `n` holders at once.
#[derive(Debug)]
pub struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

/// A slot held; given back when dropped.
#[derive(Debug)]
pub struct Slot<'a>(&'a Slots);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.freed.notify_one();
    }
}

impl Slots {
    /// `n` slots (at least one).
    pub fn new(n: usize) -> Self {
        Self {
            free: Mutex::new(n.max(1)),
            freed: Condvar::new(),
        }
    }

    /// A slot, waiting at most `wait` for one; `None` if none came free.
    pub fn acquire_within(&self, wait: Duration) -> Option<Slot<'_>> {
        let deadline = Instant::now() + wait;
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            free = self
                .freed
                .wait_timeout(free, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        *free -= 1;
        Some(Slot(self))
    }
}

/// Failed logins per name: after [`FREE_FAILURES`] in a row, each further
/// failure locks that name out for twice as long as the last (1 s, 2 s, …,
/// at most 15 min). Counted per name, not per address, so spreading guesses
/// over many addresses does not help; the same rule applies to names that do
/// not exist, so the answer reveals nothing. A success resets the count.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    failures: Mutex<std::collections::HashMap<String, (u32, Instant)>>,
}

/// Failures allowed before the lockout starts.
pub const FREE_FAILURES: u32 = 5;
const MAX_LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// Above this many tracked names, entries idle for an hour (else the oldest) are dropped.
const MAX_TRACKED: usize = 10_000;

impl LoginThrottle {
    fn lockout(failures: u32) -> Duration {
        match failures.checked_sub(FREE_FAILURES) {
            None => Duration::ZERO,
            Some(n) => Duration::from_secs(1u64 << n.min(20)).min(MAX_LOCKOUT),
        }
    }

    /// `Err(wait)` while `name` is locked out; otherwise the attempt is
    /// counted as a failure at once — before the password is verified, so
    /// many attempts in flight together cannot all slip through one check —
    /// and [`succeeded`](Self::succeeded) takes it back. Names are compared
    /// as login compares them (trimmed), so `" alice"` counts as `alice`.
    pub fn attempt(&self, name: &str) -> Result<(), Duration> {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if let Some(&(count, last)) = map.get(name.trim()) {
            let until = last + Self::lockout(count);
            if now < until {
                return Err(until - now);
            }
        }
        if map.len() >= MAX_TRACKED {
            // Names whose lockout is over and that were idle for an hour first;
            // if that frees nothing, the oldest entry.
            map.retain(|_, &mut (count, last)| {
                now < last + Self::lockout(count) || now.duration_since(last).as_secs() < 3600
            });
            if map.len() >= MAX_TRACKED
                && let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, (_, last))| *last)
                    .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        let entry = map.entry(name.trim().to_owned()).or_insert((0, now));
        *entry = (entry.0.saturating_add(1), now);
        Ok(())
    }

    /// Records a successful login: the count starts again.
    pub fn succeeded(&self, name: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name.trim());
    }
}

/// Login attempts allowed per minute on the whole server
/// (`server.login_rate_per_minute`), as a token bucket: up to a minute's
/// worth at once, refilled continuously.
#[derive(Debug)]
pub struct LoginRate {
    per_minute: u32,
    bucket: Mutex<(f64, Instant)>,
}

impl LoginRate {
    /// A full bucket of `per_minute` attempts.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            bucket: Mutex::new((f64::from(per_minute), Instant::now())),
        }
    }

    /// Takes one attempt, or `Err(wait)` until the next is allowed.
    pub fn take(&self) -> Result<(), Duration> {
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let rate = f64::from(self.per_minute) / 60.0;
        let refilled =
            (b.0 + now.duration_since(b.1).as_secs_f64() * rate).min(f64::from(self.per_minute));
        if refilled >= 1.0 {
            *b = (refilled - 1.0, now);
            Ok(())
        } else {
            *b = (refilled, now);
            Err(Duration::from_secs_f64(
                (1.0 - refilled) / rate.max(f64::MIN_POSITIVE),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_failures_lock_a_name_out_with_growing_delays() {
        let t = LoginThrottle::default();
        for _ in 0..FREE_FAILURES {
            t.attempt("alice").unwrap();
        }
        let wait = t.attempt("alice").unwrap_err();
        assert!(wait <= std::time::Duration::from_secs(1), "{wait:?}");
        assert!(t.attempt("bob").is_ok(), "other names are not affected");
        assert_eq!(LoginThrottle::lockout(100), MAX_LOCKOUT);
        t.succeeded("alice");
        assert!(t.attempt("alice").is_ok());
    }

    #[test]
    fn slots_queue_then_give_up() {
        let slots = Slots::new(1);
        let held = slots.acquire_within(Duration::ZERO).unwrap();
        assert!(slots.acquire_within(Duration::from_millis(20)).is_none());
        drop(held);
        assert!(slots.acquire_within(Duration::ZERO).is_some());
    }

    #[test]
    fn the_server_wide_rate_is_a_bucket_of_one_minute() {
        let r = LoginRate::new(3);
        for _ in 0..3 {
            r.take().unwrap();
        }
        let wait = r.take().unwrap_err();
        assert!(
            wait > Duration::from_secs(15) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
    }
}
