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
pub struct CancelToken {
    own: Arc<AtomicBool>,
    /// A token made by [`CancelToken::child`] also fires with its parent.
    parent: Option<Arc<AtomicBool>>,
}

impl CancelToken {
    /// A token that has not fired.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fires the token: every source reading under it fails from now on.
    pub fn cancel(&self) {
        self.own.store(true, Ordering::SeqCst);
    }

    /// Whether [`cancel`](Self::cancel) was called (on this token or on
    /// the one it is a child of).
    pub fn is_cancelled(&self) -> bool {
        self.own.load(Ordering::SeqCst)
            || self
                .parent
                .as_ref()
                .is_some_and(|p| p.load(Ordering::SeqCst))
    }

    /// A token that fires with this one, and can also fire alone without
    /// cancelling this one (the engine stops a job whose lock was lost
    /// that way: the job fails, it was not cancelled).
    pub(crate) fn child(&self) -> Self {
        Self {
            own: Arc::default(),
            parent: Some(Arc::clone(&self.own)),
        }
    }
}
