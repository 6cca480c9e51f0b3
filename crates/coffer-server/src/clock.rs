//! Times as the server records and shows them (Unix seconds in the
//! catalog, RFC 3339 on the wire and in export manifests), and the clock
//! the scheduler and retention decide by.
//!
//! Only those decisions read [`Clock`]: lock files, snapshot times and logs
//! keep the real clock. Tests replace it with a file holding an RFC 3339
//! time (`COFFER_FAKE_CLOCK_FILE`), which they rewrite to walk months of
//! schedule in milliseconds; the server says so loudly at start.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use jiff::Timestamp;

/// The environment variable naming a fake clock's file (tests only).
pub const FAKE_CLOCK_ENV: &str = "COFFER_FAKE_CLOCK_FILE";

/// How often a fake clock's file is read again.
const FAKE_POLL: Duration = Duration::from_millis(20);

/// RFC 3339 from Unix seconds.
pub fn rfc3339(secs: i64) -> String {
    jiff::Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| secs.to_string())
}

/// The clock schedules, retention and the scheduler's waits follow.
#[derive(Debug)]
pub enum Clock {
    /// The system's.
    System,
    /// The time written in a file; the last good reading while the file is
    /// missing or being rewritten.
    File {
        /// The file.
        path: PathBuf,
        /// The last good reading.
        last: Mutex<Timestamp>,
    },
}

impl Clock {
    /// The system clock, or the fake one `COFFER_FAKE_CLOCK_FILE` names.
    pub fn from_env() -> Self {
        match std::env::var_os(FAKE_CLOCK_ENV) {
            Some(path) => {
                let path = PathBuf::from(path);
                tracing::warn!(
                    "{FAKE_CLOCK_ENV} is set: schedules and retention follow the time in {} \
                     instead of the system clock (for tests only)",
                    path.display()
                );
                Self::File {
                    path,
                    last: Mutex::new(Timestamp::now()),
                }
            }
            None => Self::System,
        }
    }

    /// Now, on this clock.
    pub fn now(&self) -> Timestamp {
        match self {
            Self::System => Timestamp::now(),
            Self::File { path, last } => {
                let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(t) = std::fs::read_to_string(path)
                    .ok()
                    .and_then(|s| s.trim().parse::<Timestamp>().ok())
                {
                    *last = t;
                }
                *last
            }
        }
    }

    /// Whether this is a test's fake clock.
    pub fn is_fake(&self) -> bool {
        matches!(self, Self::File { .. })
    }

    /// How long to wait, in real time, before looking at this clock again
    /// when nothing is due before `until`: a fake clock can jump at any
    /// moment, so it is read again soon.
    pub fn wait_for(&self, now: Timestamp, until: Timestamp) -> Duration {
        match self {
            Self::System => Duration::try_from(until.duration_since(now)).unwrap_or_default(),
            Self::File { .. } => FAKE_POLL,
        }
    }
}
