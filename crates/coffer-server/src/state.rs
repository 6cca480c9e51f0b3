//! The server's shared state, and the targets it writes to: sealing their
//! specs and passwords in the catalog, opening their repositories.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use coffer_engine::Repo;
use coffer_model::ComponentName;
use coffer_model::component::reveal_secrets;
use coffer_model::target::{LocalTarget, TargetKind, TargetSpec};
use coffer_targets::OpenTarget;

use crate::catalog::{Catalog, TargetRow, now};
use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::jobs::Jobs;
use crate::keys::{ServerKey, random_secret};
use crate::metrics::Metrics;
use crate::users::LoginKeys;

/// Everything a request handler or a job needs.
pub struct AppState {
    /// The configuration the server started with.
    pub config: ServerConfig,
    /// The catalog.
    pub catalog: Catalog,
    /// Seals secrets at rest.
    pub key: ServerKey,
    /// Running jobs: reservations and cancel tokens.
    pub jobs: Jobs,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Signs and checks users' login tokens.
    pub login: LoginKeys,
    /// Slows down password guessing at the login endpoint.
    pub login_throttle: crate::users::LoginThrottle,
    /// Repositories opened so far, by target name. Opening costs a key
    /// derivation (scrypt, ≈ 128 MiB); a `Repo` is cheap to clone.
    repos: Mutex<HashMap<String, Repo>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// How a server uses a target's repository.
pub const MODE_OWN: &str = "own";
/// Read only: list, restore, export — no backups, deletes or pruning.
pub const MODE_ATTACH: &str = "attach";

/// The name of the target created on first start.
pub const DEFAULT_TARGET: &str = "local";

impl AppState {
    /// Builds the state.
    pub fn new(config: ServerConfig, catalog: Catalog, key: ServerKey) -> Self {
        Self {
            jobs: Jobs::new(),
            metrics: Metrics::new(),
            login: LoginKeys::new(key.login_secret()),
            login_throttle: crate::users::LoginThrottle::default(),
            config,
            catalog,
            key,
            repos: Mutex::new(HashMap::new()),
        }
    }

    /// Seals a target for the catalog.
    pub fn seal_target(
        &self,
        spec: &TargetSpec,
        password: &str,
        mode: &str,
        is_default: bool,
    ) -> Result<TargetRow, ApiError> {
        let name = spec.name.as_str();
        let json = reveal_secrets(|| serde_json::to_vec(&spec.kind)).map_err(ApiError::internal)?;
        Ok(TargetRow {
            name: name.to_owned(),
            kind: spec.kind_name().to_owned(),
            spec_sealed: self.key.seal(&format!("target-spec:{name}"), &json),
            password_sealed: self
                .key
                .seal(&format!("target-password:{name}"), password.as_bytes()),
            mode: mode.to_owned(),
            is_default,
            created_at: now(),
        })
    }

    /// The spec of a stored target, secrets included.
    pub fn target_spec(&self, row: &TargetRow) -> Result<TargetSpec, ApiError> {
        let json = self
            .key
            .open(&format!("target-spec:{}", row.name), &row.spec_sealed)
            .map_err(ApiError::internal)?;
        let kind: TargetKind = serde_json::from_slice(&json).map_err(ApiError::internal)?;
        let name = ComponentName::new(&row.name).map_err(ApiError::internal)?;
        Ok(TargetSpec { name, kind })
    }

    /// The repository password of a stored target.
    pub(crate) fn target_password(&self, row: &TargetRow) -> Result<String, ApiError> {
        let raw = self
            .key
            .open(
                &format!("target-password:{}", row.name),
                &row.password_sealed,
            )
            .map_err(ApiError::internal)?;
        String::from_utf8(raw).map_err(ApiError::internal)
    }

    /// The stored target called `name`, or 404 (or 422 when `for_request`:
    /// a request body naming an unknown target is invalid input).
    pub fn target_row(&self, name: &str) -> Result<TargetRow, ApiError> {
        self.catalog
            .target(name)?
            .ok_or_else(|| ApiError::not_found(format!("no target named {name:?}")))
    }

    /// The opened repository of target `name`. Blocking (key derivation on
    /// first use): call from a blocking context.
    pub fn repo(&self, name: &str) -> Result<Repo, ApiError> {
        if let Some(r) = self
            .repos
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Ok(r.clone());
        }
        let row = self.target_row(name)?;
        let spec = self.target_spec(&row)?;
        let password = self.target_password(&row)?;
        let target = OpenTarget::open(&spec)
            .map_err(|e| ApiError::upstream(format!("target {name}: {e}")))?;
        let repo = Repo::open(target.storage(), &password)
            .map_err(|e| ApiError::upstream(format!("target {name}: {e}")))?;
        self.repos
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), repo.clone());
        Ok(repo)
    }

    /// Drops a cached repository handle (the target changed or was removed).
    pub fn forget_repo(&self, name: &str) {
        self.repos
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    /// First start: creates the default local target in
    /// `<data_dir>/repository` with a generated repository password, and
    /// returns that password — shown once, never again.
    pub fn ensure_default_target(&self, data_dir: &Path) -> Result<Option<String>, ApiError> {
        if !self.catalog.targets()?.is_empty() {
            return Ok(None);
        }
        let path = data_dir.join("repository");
        let spec = TargetSpec {
            name: ComponentName::new(DEFAULT_TARGET).map_err(ApiError::internal)?,
            kind: TargetKind::Local(LocalTarget { path: path.clone() }),
        };
        let target = OpenTarget::open(&spec).map_err(ApiError::internal)?;
        let password = random_secret("");
        match Repo::init(target.storage(), &password) {
            Ok(_) => {}
            Err(coffer_engine::EngineError::AlreadyInitialized { .. }) => {
                return Err(ApiError::internal(format!(
                    "{} already holds a repository but the catalog has no target for it: \
                     attach it through the API with its repository password, or move it away",
                    path.display()
                )));
            }
            Err(e) => return Err(ApiError::internal(e)),
        }
        let row = self.seal_target(&spec, &password, MODE_OWN, true)?;
        self.catalog.insert_target(&row)?;
        Ok(Some(password))
    }
}

/// Whether a target keeps backups on the same machine as the data, which a
/// disk failure or a lost server takes down together.
pub fn is_same_disk(kind: &str) -> bool {
    kind == "local"
}

/// The warning shown wherever a local target appears.
pub const SAME_DISK_WARNING: &str = "backups on a local-disk target are on the same machine as the \
    data: they are not disaster-safe. Add an off-site target (S3, SFTP, FTP) for real protection";

/// Extension of the target spec used by the state.
pub trait KindName {
    /// `local`, `s3`, `sftp` or `ftp`.
    fn kind_name(&self) -> &'static str;
}

impl KindName for TargetSpec {
    fn kind_name(&self) -> &'static str {
        match self.kind {
            TargetKind::Local(_) => "local",
            TargetKind::S3(_) => "s3",
            TargetKind::Sftp(_) => "sftp",
            TargetKind::Ftp(_) => "ftp",
        }
    }
}

/// Shared state handle.
pub type Shared = Arc<AppState>;
