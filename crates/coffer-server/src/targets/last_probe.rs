//! The last probe of each target, kept for the API's target views (a plain
//! record: the probe itself is in [`super::health`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// What one probe of a target found.
#[derive(Debug)]
pub struct TargetHealth {
    /// The target's name.
    pub name: String,
    /// The repository's size in bytes, or why it could not be reached.
    pub reached: Result<u64, String>,
    /// A local target's directory and the bytes free there.
    pub free: Option<(PathBuf, u64)>,
}

/// The last probe of a target, as the API shows it.
#[derive(Debug, Clone)]
pub struct HealthRecord {
    /// When it ran (seconds since the epoch).
    pub at: i64,
    /// The repository's size, when it could be reached.
    pub repository_bytes: Option<u64>,
    /// Why it could not be reached.
    pub error: Option<String>,
    /// Bytes free where a local target's repository is.
    pub free_bytes: Option<u64>,
}

/// The last probe of every target, by name.
#[derive(Debug, Default)]
pub struct Healths(Mutex<BTreeMap<String, HealthRecord>>);

impl Healths {
    /// Keeps what a probe found.
    pub fn record(&self, h: &TargetHealth) {
        let record = HealthRecord {
            at: crate::catalog::now(),
            repository_bytes: h.reached.as_ref().ok().copied(),
            error: h.reached.as_ref().err().cloned(),
            free_bytes: h.free.as_ref().map(|(_, n)| *n),
        };
        if let Ok(mut map) = self.0.lock() {
            map.insert(h.name.clone(), record);
        }
    }

    /// The last probe of target `name`, if one ran since the server started.
    pub fn last(&self, name: &str) -> Option<HealthRecord> {
        self.0.lock().ok().and_then(|m| m.get(name).cloned())
    }
}
