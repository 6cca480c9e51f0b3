//! Retries with exponential backoff and full jitter, for network targets.
//!
//! Only failures of kind [`StorageErrorKind::Transient`] are retried; a
//! permanent failure (authentication, missing bucket or directory,
//! permission, host key) is returned at once so the operator hears about it
//! in milliseconds, not after minutes of retries.

use std::time::Duration;

use rand::Rng;

use crate::{StorageErrorKind, StorageResult};

/// How a network target retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    pub attempts: u32,
    /// The first backoff; doubled after each failure.
    pub base: Duration,
    /// The longest backoff.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// Runs `op` until it succeeds, fails permanently, or the attempts are
    /// used up. The error of the last attempt says how many were made.
    pub fn run<T>(&self, mut op: impl FnMut() -> StorageResult<T>) -> StorageResult<T> {
        let mut backoff = self.base;
        let mut attempt = 1;
        loop {
            match op() {
                Ok(v) => return Ok(v),
                Err(e) if e.kind != StorageErrorKind::Transient || attempt >= self.attempts => {
                    return Err(if attempt > 1 {
                        let mut e = e;
                        e.message = format!("{} (after {attempt} attempts)", e.message);
                        e
                    } else {
                        e
                    });
                }
                Err(e) => {
                    log::debug!("retrying after a transient failure: {e}");
                    // Full jitter: many clients failing together do not retry together.
                    let wait = rand::rng().random_range(Duration::ZERO..=backoff);
                    std::thread::sleep(wait);
                    backoff = (backoff * 2).min(self.cap);
                    attempt += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StorageError;

    fn err(kind: StorageErrorKind) -> StorageError {
        StorageError::new(kind, "t", "get", "k", "boom")
    }

    #[test]
    fn transient_failures_are_retried_and_permanent_ones_are_not() {
        let fast = RetryPolicy {
            attempts: 4,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(2),
        };
        let mut calls = 0;
        let r = fast.run(|| {
            calls += 1;
            if calls < 3 {
                Err(err(StorageErrorKind::Transient))
            } else {
                Ok(calls)
            }
        });
        assert_eq!(r.unwrap(), 3);

        let mut calls = 0;
        let e = fast
            .run(|| -> StorageResult<()> {
                calls += 1;
                Err(err(StorageErrorKind::PermissionDenied))
            })
            .unwrap_err();
        assert_eq!(calls, 1);
        assert_eq!(e.message, "boom");

        let mut calls = 0;
        let e = fast
            .run(|| -> StorageResult<()> {
                calls += 1;
                Err(err(StorageErrorKind::Transient))
            })
            .unwrap_err();
        assert_eq!(calls, 4);
        assert!(e.message.ends_with("(after 4 attempts)"), "{}", e.message);
    }
}
