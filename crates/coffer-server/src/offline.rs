//! What the CLI's offline commands do to a server's data directory, with or
//! without the server running: tokens, users and catalog rebuilds. The
//! operator at the machine is trusted: nothing here checks a principal.

use coffer_model::access::Scope;

use crate::access::Principal;
use crate::access::tokens::{create_token, new_token};
use crate::access::users::{UserError, create_user, new_user};
use crate::catalog::{TokenRow, UserRow};
use crate::config::ServerConfig;
use crate::error::{ServiceError, ServiceResult};
use crate::rebuild::{RebuildReport, rebuild_target};
use crate::retention::view::{RetentionPreview, preview_view};
use crate::state::AppState;
use crate::{ServerError, new_state, open_data_dir};

/// A server's data directory, opened for offline work.
#[derive(Debug)]
pub struct Offline {
    state: AppState,
}

impl Offline {
    /// Opens (creating if needed) the data directory of `config`.
    pub fn open(config: ServerConfig) -> Result<Self, ServerError> {
        let (catalog, key) = open_data_dir(&config.data_dir)?;
        Ok(Self {
            state: new_state(config, catalog, key)?,
        })
    }

    /// Creates a token; returns it and its secret (shown once).
    pub fn create_token(
        &self,
        name: &str,
        scopes: &[String],
        components: Option<Vec<String>>,
        expires_in_secs: Option<u64>,
    ) -> ServiceResult<(TokenRow, String)> {
        let t = new_token(
            name,
            scopes,
            components,
            expires_in_secs,
            &self.state.config.components,
        )?;
        Ok(create_token(&self.state.catalog, &t)?)
    }

    /// Every token, oldest first.
    pub fn tokens(&self) -> ServiceResult<Vec<TokenRow>> {
        Ok(self.state.catalog.tokens()?)
    }

    /// Revokes a token; false if there is none with that id.
    pub fn revoke_token(&self, id: &str) -> ServiceResult<bool> {
        Ok(self.state.catalog.revoke_token(id)?)
    }

    /// Creates a user (argon2id hash of `password`).
    pub fn add_user(
        &self,
        name: &str,
        password: String,
        scopes: &[String],
        components: Option<Vec<String>>,
    ) -> ServiceResult<UserRow> {
        let u = new_user(
            name,
            password,
            scopes,
            components,
            &self.state.config.components,
        )?;
        create_user(&self.state.catalog, &u).map_err(|e| match e {
            UserError::Invalid(m) => ServiceError::Invalid(m),
            e @ UserError::Exists(_) => ServiceError::Conflict(e.to_string()),
            UserError::Catalog(e) => ServiceError::internal(e),
        })
    }

    /// Every user, oldest first.
    pub fn users(&self) -> ServiceResult<Vec<UserRow>> {
        Ok(self.state.catalog.users()?)
    }

    /// Disables a user; false if there is none with that id.
    pub fn disable_user(&self, id: &str) -> ServiceResult<bool> {
        Ok(self.state.catalog.disable_user(id)?)
    }

    /// Adds to the catalog every backup found in `target`'s repository (or
    /// every target's) that it lacks.
    pub fn rebuild(&self, target: Option<String>) -> ServiceResult<Vec<RebuildReport>> {
        let names = match target {
            Some(t) => vec![t],
            None => self
                .state
                .catalog
                .targets()?
                .into_iter()
                .map(|r| r.name)
                .collect(),
        };
        names
            .iter()
            .map(|n| {
                rebuild_target(&self.state, n).map_err(|e| match e {
                    ServiceError::NotFound(m) => ServiceError::NotFound(format!("target {n}: {m}")),
                    e => e,
                })
            })
            .collect()
    }

    /// What every retention policy (or `schedule`'s / `label`'s) would
    /// delete now and why each kept backup is kept; deletes nothing. The
    /// operator at the machine sees every backup.
    pub fn retention_preview(
        &self,
        schedule: Option<&str>,
        label: Option<&str>,
    ) -> ServiceResult<RetentionPreview> {
        let operator = Principal {
            id: "operator".into(),
            name: "offline".into(),
            scopes: [Scope::BackupsRead, Scope::Sensitive].into_iter().collect(),
            components: None,
            expires_at: None,
        };
        crate::retention::preview(&self.state, &operator, schedule, label).map(preview_view)
    }
}
