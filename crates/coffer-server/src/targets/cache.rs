//! Repositories opened so far, by target name.

use std::collections::HashMap;
use std::sync::Mutex;

use coffer_engine::Repo;

/// Repositories opened so far, by target name. Opening costs a key
/// derivation (scrypt, ≈ 128 MiB); a `Repo` is cheap to clone.
#[derive(Debug, Default)]
pub struct RepoCache(Mutex<HashMap<String, Repo>>);

impl RepoCache {
    pub(crate) fn get(&self, name: &str) -> Option<Repo> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    pub(crate) fn put(&self, name: &str, repo: Repo) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), repo);
    }

    /// Drops a cached handle (the target changed or was removed).
    pub fn forget(&self, name: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }
}
