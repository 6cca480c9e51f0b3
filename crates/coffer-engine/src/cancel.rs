//! Cooperative cancellation of a backup.
//!
//! rustic_core cannot be interrupted, so a cancelled job stops at its source:
//! the next read fails, the directory walk ends, the snapshot gate closes, and
//! the engine records nothing (see [`crate::EngineError::Cancelled`]). A dump
//! tool whose output is no longer read stops on its broken pipe.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A flag shared between whoever may cancel a job and the job's sources.
/// Clones share the flag.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that has not fired.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fires the token: every source reading under it fails from now on.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
