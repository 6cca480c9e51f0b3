//! Targets as a service: list, add (after Validate), change, validate,
//! rebuild the catalog from, and remove — each checked against the caller.
//! Every function blocks (Validate probes the network, opening a
//! repository derives its key): call from a blocking thread.

pub mod cache;
pub mod declared;
pub mod health;
pub mod last_probe;
pub mod policy;
mod store;

use std::path::Path;

use coffer_model::ComponentName;
use coffer_model::access::Scope;
use coffer_model::target::{TargetKind, TargetSpec};
use coffer_targets::OpenTarget;
use coffer_targets::validate::{StepStatus, ValidateOptions, ValidationReport};

pub use store::{SAME_DISK_WARNING, is_same_disk, kind_name};

use crate::access::Principal;
use crate::catalog::{TargetMode, TargetRow};
use crate::error::{ServiceError, ServiceResult};
use crate::rebuild::{RebuildReport, rebuild_target};
use crate::state::AppState;

/// A target with what the API shows of it.
#[derive(Debug)]
pub struct TargetInfo {
    /// The stored row.
    pub row: TargetRow,
    /// Its settings (literal secrets serialize as `***`).
    pub spec: TargetSpec,
    /// Backups recorded on it.
    pub backups: u64,
}

fn info(state: &AppState, row: TargetRow) -> ServiceResult<TargetInfo> {
    Ok(TargetInfo {
        spec: state.target_spec(&row)?,
        backups: state.catalog.backups_on_target(&row.name)?,
        row,
    })
}

/// Every target.
pub fn list(state: &AppState, p: &Principal) -> ServiceResult<Vec<TargetInfo>> {
    p.require(Scope::TargetsRead)?;
    state
        .catalog
        .targets()?
        .into_iter()
        .map(|r| info(state, r))
        .collect()
}

/// One target.
pub fn show(state: &AppState, p: &Principal, name: &str) -> ServiceResult<TargetInfo> {
    p.require(Scope::TargetsRead)?;
    info(state, state.target_row(name)?)
}

/// What a request to add a target gives.
#[derive(Debug)]
pub struct NewTarget {
    /// Unique name.
    pub name: String,
    /// The settings, as `[[targets]]` in coffer.toml has them, with `kind`.
    pub spec: serde_json::Value,
    /// For an existing repository: its password; for a new one, optional.
    pub repository_password: Option<String>,
    /// `own` or `attach` (default: own for a new repository, attach for an existing one).
    pub mode: Option<String>,
    /// Make it the default target (needs `confirm_default`).
    pub default: bool,
    /// Confirms that later backups naming no target go to this one.
    pub confirm_default: bool,
}

/// What adding a target did.
#[derive(Debug)]
pub struct Added {
    /// The target.
    pub target: TargetInfo,
    /// The Validate report that allowed it.
    pub validation: ValidationReport,
    /// A generated repository password, shown once.
    pub repository_password: Option<String>,
    /// For an existing repository: the backups found in it.
    pub rebuilt: Option<RebuildReport>,
}

fn parse_spec(name: &str, spec: &serde_json::Value) -> ServiceResult<TargetSpec> {
    let name = ComponentName::new(name).map_err(|e| ServiceError::Invalid(format!("name: {e}")))?;
    let kind: TargetKind = serde_json::from_value(spec.clone())
        .map_err(|e| ServiceError::Invalid(format!("spec: {e}")))?;
    coffer_model::target::validate_kind(&kind)
        .map_err(|e| ServiceError::Invalid(format!("spec: {e}")))?;
    Ok(TargetSpec { name, kind })
}

fn parse_mode(mode: &str) -> ServiceResult<TargetMode> {
    mode.parse().map_err(ServiceError::Invalid)
}

/// The server's own directories, which no target or restore may overlap.
pub fn protected_dirs(state: &AppState) -> Vec<&Path> {
    vec![&state.config.data_dir, &state.config.staging_dir]
}

fn require_confirmation(confirmed: bool) -> ServiceResult<()> {
    if confirmed {
        return Ok(());
    }
    Err(ServiceError::Invalid(
        "confirm_default: making a target the default sends every later backup that names no \
         target there; repeat the request with \"confirm_default\": true"
            .into(),
    ))
}

/// Opens `spec` and runs its Validate probe; `ValidationFailed` with the
/// report when a step failed.
pub(crate) fn open_validated(spec: &TargetSpec) -> ServiceResult<(OpenTarget, ValidationReport)> {
    let target = OpenTarget::open(spec).map_err(|e| ServiceError::Invalid(e.to_string()))?;
    let report = target.validate(ValidateOptions::default());
    if !report.ok {
        let message = report
            .steps
            .iter()
            .find(|s| s.status == StepStatus::Failed)
            .map(|s| format!("validation failed at step {}: {}", s.name, s.message))
            .unwrap_or_else(|| "validation failed".into());
        return Err(ServiceError::ValidationFailed {
            message,
            report: Box::new(report),
        });
    }
    Ok((target, report))
}

/// Adds a target after its Validate probe passes.
pub fn add(state: &AppState, p: &Principal, req: NewTarget) -> ServiceResult<Added> {
    p.require(Scope::TargetsWrite)?;
    let spec = parse_spec(&req.name, &req.spec)?;
    policy::check_api_target(&spec, &state.config.target_allow, &protected_dirs(state))?;
    if state.catalog.target(spec.name.as_str())?.is_some() {
        return Err(ServiceError::Conflict(format!(
            "a target named {} exists",
            spec.name
        )));
    }
    let mode = req.mode.as_deref().map(parse_mode).transpose()?;
    if req.default {
        require_confirmation(req.confirm_default)?;
        default_not_declared(state)?;
    }
    let (target, validation) = open_validated(&spec)?;
    let storage = target.storage();
    let exists = coffer_engine::Repo::exists(&*storage)
        .map_err(|e| ServiceError::Upstream(e.to_string()))?;
    let (password, generated, mode) = if exists {
        let Some(pw) = req.repository_password else {
            return Err(ServiceError::Invalid(format!(
                "repository_password: target {} already holds a repository: give its password \
                 to attach it",
                spec.name
            )));
        };
        coffer_engine::Repo::open(storage, &pw)
            .map_err(|e| ServiceError::Invalid(format!("repository_password: {e}")))?;
        (pw, None, mode.unwrap_or(TargetMode::Attach))
    } else {
        let (pw, generated) = match req.repository_password {
            Some(pw) => (pw, None),
            None => {
                let pw = crate::keys::random_secret("");
                (pw.clone(), Some(pw))
            }
        };
        coffer_engine::Repo::init(storage, &pw)
            .map_err(|e| ServiceError::Invalid(e.to_string()))?;
        (pw, generated, mode.unwrap_or(TargetMode::Own))
    };
    let first = state.catalog.targets()?.is_empty();
    let row = state.seal_target(&spec, &password, mode, first)?;
    state.catalog.insert_target(&row)?;
    if req.default {
        state.catalog.set_default_target(&row.name)?;
    }
    tracing::info!(target = %row.name, kind = %row.kind, mode = %row.mode, by = %p.id, "target added");
    // An existing repository: list what it holds at once.
    let rebuilt = if exists {
        Some(rebuild_target(state, &row.name)?)
    } else {
        None
    };
    Ok(Added {
        target: info(state, state.target_row(&row.name)?)?,
        validation,
        repository_password: generated,
        rebuilt,
    })
}

/// What a request to change a target gives.
#[derive(Debug, Default)]
pub struct TargetChange {
    /// `own` or `attach`.
    pub mode: Option<String>,
    /// Make it the default (`true` only; needs `confirm_default`).
    pub default: Option<bool>,
    /// Confirms the new default.
    pub confirm_default: bool,
    /// New settings of the same kind that reach the same repository.
    pub spec: Option<serde_json::Value>,
}

/// Conflict when coffer.toml names the default target (`default = true`):
/// the API does not move what the file decides.
fn default_not_declared(state: &AppState) -> ServiceResult<()> {
    match state.config.targets.iter().find(|d| d.default) {
        Some(d) => Err(ServiceError::Conflict(format!(
            "default: {} declares target {} the default; change it there",
            state.config.source.display(),
            d.spec.name
        ))),
        None => Ok(()),
    }
}

/// Changes a target's settings or mode, or makes it the default.
pub fn change(
    state: &AppState,
    p: &Principal,
    name: &str,
    req: TargetChange,
) -> ServiceResult<TargetInfo> {
    p.require(Scope::TargetsWrite)?;
    let current = state.target_row(name)?;
    if current.declared {
        return Err(declared_read_only(state, name));
    }
    let mode = req.mode.as_deref().map(parse_mode).transpose()?;
    match req.default {
        Some(true) => {
            require_confirmation(req.confirm_default)?;
            default_not_declared(state)?;
        }
        Some(false) => {
            return Err(ServiceError::Invalid(
                "default: false is not accepted: make another target the default instead".into(),
            ));
        }
        None => {}
    }
    if let Some(spec) = &req.spec {
        let spec = parse_spec(name, spec)?;
        if kind_name(&spec) != current.kind {
            return Err(ServiceError::Invalid(format!(
                "spec: target {name} is a {} target; add a new target for a {} one",
                current.kind,
                kind_name(&spec)
            )));
        }
        policy::check_api_target(&spec, &state.config.target_allow, &protected_dirs(state))?;
        let (target, _) = open_validated(&spec)?;
        let password = state.target_password(&current)?;
        coffer_engine::Repo::open(target.storage(), &password).map_err(|e| {
            ServiceError::Invalid(format!(
                "spec: the new settings do not reach this target's repository ({e}); add a new \
                 target for a different repository"
            ))
        })?;
        let sealed = state.seal_target(&spec, &password, current.mode, current.is_default)?;
        state.catalog.update_target(&sealed)?;
        state.repos.forget(name);
        tracing::info!(target = %name, by = %p.id, "target settings changed");
    }
    if let Some(m) = mode {
        let mut row = state.target_row(name)?;
        if m != row.mode {
            tracing::warn!(target = %name, from = %row.mode, to = %m, by = %p.id, "target mode changed");
        }
        row.mode = m;
        state.catalog.update_target(&row)?;
    }
    if req.default == Some(true) {
        state.catalog.set_default_target(name)?;
        tracing::warn!(target = %name, by = %p.id, "default target changed");
    }
    info(state, state.target_row(name)?)
}

/// Runs a target's Validate probe (writes and removes at most 16 MiB of test data).
pub fn validate(state: &AppState, p: &Principal, name: &str) -> ServiceResult<ValidationReport> {
    p.require(Scope::TargetsWrite)?;
    let spec = state.target_spec(&state.target_row(name)?)?;
    let target = OpenTarget::open(&spec).map_err(|e| ServiceError::Invalid(e.to_string()))?;
    Ok(target.validate(ValidateOptions::default()))
}

/// Runs the Validate probe of settings not yet saved — the console's and
/// Palette's "Validate" before "Save". The same checks as [`add`] before it
/// touches the destination (name, settings, `server.target_allow`, the
/// server's own directories); a failed step is in the report, not an error.
pub fn probe(
    state: &AppState,
    p: &Principal,
    name: &str,
    spec: &serde_json::Value,
) -> ServiceResult<ValidationReport> {
    p.require(Scope::TargetsWrite)?;
    let spec = parse_spec(name, spec)?;
    policy::check_api_target(&spec, &state.config.target_allow, &protected_dirs(state))?;
    let target = OpenTarget::open(&spec).map_err(|e| ServiceError::Invalid(e.to_string()))?;
    Ok(target.validate(ValidateOptions::default()))
}

/// Adds to the catalog every backup in the target's repository it lacks.
pub fn rebuild(state: &AppState, p: &Principal, name: &str) -> ServiceResult<RebuildReport> {
    p.require(Scope::TargetsWrite)?;
    state.target_row(name)?;
    rebuild_target(state, name)
}

/// The refusal of an API change to a target declared in coffer.toml.
fn declared_read_only(state: &AppState, name: &str) -> ServiceError {
    ServiceError::Conflict(format!(
        "target {name} is declared in {}: change or remove it there, then restart the server",
        state.config.source.display()
    ))
}

/// Removes a target from the catalog (its repository and backups stay where they are).
pub fn remove(state: &AppState, p: &Principal, name: &str) -> ServiceResult<()> {
    p.require(Scope::TargetsWrite)?;
    let row = state.target_row(name)?;
    if row.declared {
        return Err(declared_read_only(state, name));
    }
    let n = state.catalog.backups_on_target(name)?;
    if n > 0 {
        return Err(ServiceError::Conflict(format!(
            "target {name} has {n} backups in the catalog: delete them first (the repository \
             itself is never deleted by Coffer)"
        )));
    }
    if row.is_default && state.catalog.targets()?.len() > 1 {
        return Err(ServiceError::Conflict(format!(
            "target {name} is the default: make another target the default first"
        )));
    }
    state.catalog.delete_target(name)?;
    state.repos.forget(name);
    tracing::info!(target = %name, by = %p.id, "target removed");
    Ok(())
}
