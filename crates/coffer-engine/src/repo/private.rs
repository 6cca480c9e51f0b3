//! Coffer's own objects in a repository (under `coffer/`, which restic
//! ignores), encrypted with the repository key like restic's files: only a
//! holder of the repository password reads them, and a changed byte does
//! not open.

use super::Repo;
use crate::crypto::{cipher, decrypt, encrypt};
use crate::{EngineError, EngineResult};

fn coffer_key(key: &str) -> EngineResult<()> {
    if key.starts_with("coffer/") {
        Ok(())
    } else {
        Err(EngineError::InvalidInput(format!(
            "{key}: Coffer's own objects live under coffer/"
        )))
    }
}

impl Repo {
    /// Stores `plain` encrypted under `key` (which starts with `coffer/`).
    pub fn put_private(&self, key: &str, plain: &[u8]) -> EngineResult<()> {
        coffer_key(key)?;
        self.storage.put(key, &encrypt(&cipher(&self.key), plain))?;
        Ok(())
    }

    /// Reads and opens the object under `key`; `None` when there is none.
    pub fn get_private(&self, key: &str) -> EngineResult<Option<Vec<u8>>> {
        coffer_key(key)?;
        if !self.storage.list(key)?.iter().any(|o| o.key == key) {
            return Ok(None);
        }
        let sealed = self.storage.get(key)?;
        decrypt(&cipher(&self.key), &sealed)
            .map(Some)
            .map_err(|e| EngineError::Engine(format!("{key} does not open: {e}")))
    }
}
