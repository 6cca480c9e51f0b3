//! Repository keys: add, list and remove passwords.

use rustic_core::KeyOptions;
use serde::Serialize;

use super::{Repo, full_hex, guarded};
use crate::lock::LockMode;
use crate::{EngineError, EngineResult};

/// A key (password slot) of the repository.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    /// Key id (hex).
    pub id: String,
    /// Whether this key opened the repository in this session.
    pub current: bool,
    /// Host recorded when the key was made.
    pub hostname: Option<String>,
    /// User recorded when the key was made.
    pub username: Option<String>,
    /// When the key was made.
    pub created: Option<String>,
}

impl Repo {
    /// Adds a key: afterwards `password` opens the repository too.
    pub fn add_key(&self, password: &str) -> EngineResult<String> {
        if password.is_empty() {
            return Err(EngineError::InvalidInput(
                "the password must not be empty".into(),
            ));
        }
        let _lock = self.lock(LockMode::Shared, "key add")?;
        guarded(|| {
            let repo = self.handle(None, None)?;
            let id = repo
                .add_key(password, &KeyOptions::default())
                .map_err(|e| EngineError::rustic(&e))?;
            Ok(full_hex(&id))
        })
    }

    /// Lists the keys.
    pub fn list_keys(&self) -> EngineResult<Vec<KeyInfo>> {
        #[derive(serde::Deserialize)]
        struct KeyHeader {
            hostname: Option<String>,
            username: Option<String>,
            created: Option<String>,
        }
        let mut out = Vec::new();
        for o in self.storage.list("keys/")? {
            let id = o.key.trim_start_matches("keys/").to_owned();
            let header: KeyHeader = serde_json::from_slice(&self.storage.get(&o.key)?)
                .map_err(|e| EngineError::Engine(format!("key {id} is unreadable: {e}")))?;
            out.push(KeyInfo {
                current: self.key_id.as_deref() == Some(id.as_str()),
                id,
                hostname: header.hostname,
                username: header.username,
                created: header.created,
            });
        }
        Ok(out)
    }

    /// Removes a key (by id or unique id prefix). The key that opened this
    /// session and the last remaining key cannot be removed.
    pub fn remove_key(&self, id_prefix: &str) -> EngineResult<String> {
        let _lock = self.lock(LockMode::Exclusive, "key remove")?;
        let keys = self.list_keys()?;
        let matching: Vec<_> = keys
            .iter()
            .filter(|k| k.id.starts_with(id_prefix))
            .collect();
        let key = match matching.as_slice() {
            [k] => *k,
            [] => return Err(EngineError::NotFound(format!("no key {id_prefix:?}"))),
            _ => {
                return Err(EngineError::InvalidInput(format!(
                    "key prefix {id_prefix:?} is ambiguous"
                )));
            }
        };
        if key.current {
            return Err(EngineError::InvalidInput(
                "refusing to remove the key this session was opened with; open with another password first".into(),
            ));
        }
        if keys.len() < 2 {
            return Err(EngineError::InvalidInput(
                "refusing to remove the last key: the repository would become unreadable".into(),
            ));
        }
        self.storage.delete(&format!("keys/{}", key.id))?;
        Ok(key.id.clone())
    }

    // ------------------------------------------------------------------ backup
}
