//! Targets at rest: their specs and repository passwords sealed with the
//! server key in the catalog, and their repositories opened once and kept.

use std::path::Path;

use coffer_engine::Repo;
use coffer_model::ComponentName;
use coffer_model::component::reveal_secrets;
use coffer_model::target::{LocalTarget, TargetKind, TargetSpec};
use coffer_targets::OpenTarget;

use crate::catalog::{TargetMode, TargetRow, now};
use crate::error::{ServiceError, ServiceResult};
use crate::keys::random_secret;
use crate::state::AppState;

/// The name of the target created on first start.
pub const DEFAULT_TARGET: &str = "local";

/// `local`, `s3`, `sftp` or `ftp`.
pub fn kind_name(spec: &TargetSpec) -> &'static str {
    match spec.kind {
        TargetKind::Local(_) => "local",
        TargetKind::S3(_) => "s3",
        TargetKind::Sftp(_) => "sftp",
        TargetKind::Ftp(_) => "ftp",
    }
}

impl AppState {
    /// Seals a target for the catalog.
    pub fn seal_target(
        &self,
        spec: &TargetSpec,
        password: &str,
        mode: TargetMode,
        is_default: bool,
    ) -> ServiceResult<TargetRow> {
        let name = spec.name.as_str();
        let json =
            reveal_secrets(|| serde_json::to_vec(&spec.kind)).map_err(ServiceError::internal)?;
        Ok(TargetRow {
            name: name.to_owned(),
            kind: kind_name(spec).to_owned(),
            spec_sealed: self.key.seal(&format!("target-spec:{name}"), &json),
            password_sealed: self
                .key
                .seal(&format!("target-password:{name}"), password.as_bytes()),
            mode,
            is_default,
            created_at: now(),
            declared: false,
        })
    }

    /// The spec of a stored target, secrets included.
    pub fn target_spec(&self, row: &TargetRow) -> ServiceResult<TargetSpec> {
        let json = self
            .key
            .open(&format!("target-spec:{}", row.name), &row.spec_sealed)
            .map_err(ServiceError::internal)?;
        let kind: TargetKind = serde_json::from_slice(&json).map_err(ServiceError::internal)?;
        let name = ComponentName::new(&row.name).map_err(ServiceError::internal)?;
        Ok(TargetSpec { name, kind })
    }

    /// The repository password of a stored target.
    pub fn target_password(&self, row: &TargetRow) -> ServiceResult<String> {
        let raw = self
            .key
            .open(
                &format!("target-password:{}", row.name),
                &row.password_sealed,
            )
            .map_err(ServiceError::internal)?;
        String::from_utf8(raw).map_err(ServiceError::internal)
    }

    /// The stored target called `name`, or `NotFound`.
    pub fn target_row(&self, name: &str) -> ServiceResult<TargetRow> {
        self.catalog
            .target(name)?
            .ok_or_else(|| ServiceError::NotFound(format!("no target named {name:?}")))
    }

    /// The opened repository of target `name`. Blocking (key derivation on
    /// first use).
    pub fn repo(&self, name: &str) -> ServiceResult<Repo> {
        if let Some(r) = self.repos.get(name) {
            return Ok(r);
        }
        let row = self.target_row(name)?;
        let spec = self.target_spec(&row)?;
        let password = self.target_password(&row)?;
        let target = OpenTarget::open(&spec)
            .map_err(|e| ServiceError::Upstream(format!("target {name}: {e}")))?;
        let repo = Repo::open(target.storage(), &password)
            .map_err(|e| ServiceError::Upstream(format!("target {name}: {e}")))?;
        self.repos.put(name, repo.clone());
        Ok(repo)
    }

    /// The directories of every local target's repository: no restore may
    /// write into them.
    pub fn local_repository_paths(&self) -> ServiceResult<Vec<std::path::PathBuf>> {
        let mut paths = Vec::new();
        for row in self.catalog.targets()?.iter().filter(|t| t.kind == "local") {
            if let TargetKind::Local(l) = self.target_spec(row)?.kind {
                paths.push(l.path);
            }
        }
        Ok(paths)
    }

    /// First start: creates the default local target in
    /// `<data_dir>/repository` with a generated repository password, and
    /// returns that password — shown once, never again.
    pub fn ensure_default_target(&self, data_dir: &Path) -> ServiceResult<Option<String>> {
        if !self.catalog.targets()?.is_empty() {
            return Ok(None);
        }
        let path = data_dir.join("repository");
        let spec = TargetSpec {
            name: ComponentName::new(DEFAULT_TARGET).map_err(ServiceError::internal)?,
            kind: TargetKind::Local(LocalTarget { path: path.clone() }),
        };
        let target = OpenTarget::open(&spec).map_err(ServiceError::internal)?;
        let password = random_secret("");
        match Repo::init(target.storage(), &password) {
            Ok(_) => {}
            Err(coffer_engine::EngineError::AlreadyInitialized { .. }) => {
                return Err(ServiceError::internal(format!(
                    "{} already holds a repository but the catalog has no target for it: \
                     attach it through the API with its repository password, or move it away",
                    path.display()
                )));
            }
            Err(e) => return Err(ServiceError::internal(e)),
        }
        let row = self.seal_target(&spec, &password, TargetMode::Own, true)?;
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
