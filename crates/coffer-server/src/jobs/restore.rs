//! Restore jobs: a request checked against the caller (scopes, components,
//! sensitivity, the override rules of [`super::overrides`]), every
//! component's data resolved — a snapshot in a repository or a verified
//! uploaded file — recorded `RESTORING`, then run on a thread of its own
//! between the restore hooks.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use coffer_components::{PortableFile, RestoreContext, RestoreOptions, RestoreSource};
use coffer_engine::{AgeIdentity, Repo, RestoreMode, SnapshotInfo};
use coffer_model::access::{BackupStatus, RestoreStatus, Scope};
use coffer_model::component::{ComponentKind, ComponentSpec};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::access::Principal;
use crate::catalog::{RestoreRow, now};
use crate::config::HookFailure;
use crate::error::{ServiceError, ServiceResult};
use crate::jobs::hooks::{HookPoint, run_hooks};
use crate::jobs::overrides::{Rules, overridden};
use crate::jobs::part;
use crate::jobs::registry::{Reservation, backup_key, component_key};
use crate::jobs::runner::{record_outcomes, run_components, spawn_job};
use crate::lookup::{backup_snapshots, find_backup, is_sensitive};
use crate::state::{AppState, Shared};

/// How to treat what the destination already has.
#[derive(Debug, Default, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptionsRequest {
    /// `files`/`sqlite`: `refuse` (default) a non-empty destination, `overwrite`, or `mirror`.
    #[serde(default)]
    pub mode: Option<String>,
    /// Remove what the destination has first (postgres, mysql, redis, s3).
    #[serde(default)]
    pub clean: bool,
    /// Create a missing destination database or bucket (default true).
    #[serde(default)]
    pub create_database: Option<bool>,
    /// PostgreSQL: do not restore ownership (a new installation's roles differ).
    #[serde(default)]
    pub no_owner: bool,
    /// PostgreSQL: `SET ROLE` to this role before restoring.
    #[serde(default)]
    pub role: Option<String>,
}

/// The options a request gives, checked.
pub fn restore_options(o: OptionsRequest) -> ServiceResult<RestoreOptions> {
    let mode = match o.mode.as_deref() {
        None | Some("refuse") => RestoreMode::RefuseNonEmpty,
        Some("overwrite") => RestoreMode::Overwrite,
        Some("mirror") => RestoreMode::Mirror,
        Some(other) => {
            return Err(ServiceError::Invalid(format!(
                "options.mode {other:?}: use refuse, overwrite or mirror"
            )));
        }
    };
    Ok(RestoreOptions {
        mode,
        clean: o.clean,
        create_database: o.create_database.unwrap_or(true),
        no_owner: o.no_owner,
        role: o.role,
    })
}

/// Start a restore of a stored backup.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// Components to restore (default: every component of the backup).
    #[serde(default)]
    pub components: Option<Vec<String>>,
    /// Per component, settings that replace the configured ones, within the
    /// rules of docs/api.md ("Restore overrides"): a database, bucket,
    /// prefix or a path below `server.restore_roots`; another server with
    /// `restore:redirect` and its own credentials.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub overrides: BTreeMap<String, serde_json::Value>,
    /// Per files component, one file or directory to restore instead of
    /// the whole tree (plain names below the component's top, e.g.
    /// `docs/2024/report.txt`): it goes back where it was, or into the
    /// `path` override, as `<that directory>/<its name>`.
    #[serde(default)]
    pub parts: BTreeMap<String, String>,
    /// Options for every component.
    #[serde(default)]
    pub options: OptionsRequest,
    /// The age identity (`AGE-SECRET-KEY-1…`, or an identity file's text)
    /// that opens sealed (sensitive) components. Used for this restore only:
    /// never stored or logged.
    #[serde(default, deserialize_with = "identity_field")]
    #[schema(value_type = Option<String>)]
    pub age_identity: Option<Arc<AgeIdentity>>,
}

/// Parses an `age_identity` field.
pub fn identity_field<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Arc<AgeIdentity>>, D::Error> {
    let text: Option<String> = Option::deserialize(d)?;
    text.map(|t| {
        t.parse::<AgeIdentity>()
            .map(Arc::new)
            .map_err(|e| serde::de::Error::custom(format!("age_identity: {e}")))
    })
    .transpose()
}

/// Where a restored component's data comes from, resolved before the job
/// starts.
#[derive(Debug)]
pub enum ComponentData {
    /// A snapshot, in its repository (with the identity if it is sealed).
    Snapshot {
        /// The repository.
        repo: Repo,
        /// The snapshot.
        snapshot: Box<SnapshotInfo>,
    },
    /// A verified file of an upload.
    File(PortableFile),
}

impl ComponentData {
    fn source(&self) -> RestoreSource<'_> {
        match self {
            Self::Snapshot { repo, snapshot } => RestoreSource::Snapshot { repo, snapshot },
            Self::File(f) => RestoreSource::File(f),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Snapshot { snapshot, .. } => {
                format!("snapshot {}", &snapshot.id[..8.min(snapshot.id.len())])
            }
            Self::File(f) => format!("uploaded {}", f.file_name),
        }
    }
}

/// One component to restore.
#[derive(Debug)]
pub struct RestoreItem {
    /// Where it goes (the configured spec, or an allowed override of it).
    pub dest: ComponentSpec,
    /// Its data.
    pub data: ComponentData,
    /// Whether it is sensitive (its views need the `sensitive` scope).
    pub sensitive: bool,
    /// Only this file or directory of a files component (its directory is
    /// `dest`'s path, made when missing).
    pub part: Option<PathBuf>,
}

/// A restore ready to be recorded and run.
#[derive(Debug)]
pub struct RestoreJob {
    /// The backup restored (for an upload, the id its file names).
    pub backup_id: String,
    /// The components.
    pub items: Vec<RestoreItem>,
    /// Options for every component.
    pub options: RestoreOptions,
    /// The upload's files, removed when the job ends.
    pub spool: Option<tempfile::TempDir>,
    /// Hold the backup while restoring (a restore from a repository).
    pub holds_backup: bool,
}

/// The rules overrides are checked against.
pub fn rules(state: &AppState) -> ServiceResult<Rules<'_>> {
    let mut protected = vec![
        state.config.data_dir.clone(),
        state.config.staging_dir.clone(),
    ];
    protected.extend(state.local_repository_paths()?);
    Ok(Rules {
        restore_roots: &state.config.restore_roots,
        target_allow: &state.config.target_allow,
        protected,
    })
}

/// Restores a READY backup (all or some components, optionally elsewhere)
/// for `p`; returns the restore's id. Blocking (opens the repository).
pub fn start_from_backup(
    state: &Shared,
    p: &Principal,
    backup_id: &str,
    req: RestoreRequest,
) -> ServiceResult<String> {
    p.require(Scope::Restore)?;
    let b = find_backup(state, backup_id)?;
    let comps = state.catalog.backup_components(backup_id)?;
    let wanted: Vec<_> = match &req.components {
        None => comps.iter().collect(),
        Some(names) => names
            .iter()
            .map(|n| {
                // Reach first: a limited token learns nothing of the rest.
                p.require_reach(n, false)?;
                comps.iter().find(|c| &c.component == n).ok_or_else(|| {
                    ServiceError::Invalid(format!(
                        "components: backup {backup_id} has no component {n:?} you may restore; \
                         it has {}",
                        comps
                            .iter()
                            .filter(|c| p.sees(&c.component, is_sensitive(state, c)))
                            .map(|c| c.component.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })
            })
            .collect::<ServiceResult<_>>()?,
    };
    // Who may touch what comes before any other judgement of the request.
    for c in &wanted {
        p.require_component(Scope::Restore, &c.component, is_sensitive(state, c))?;
    }
    if b.status != BackupStatus::Ready {
        return Err(ServiceError::Conflict(format!(
            "backup {backup_id} is {}: only READY backups are restored",
            b.status
        )));
    }
    let named = req.overrides.keys().map(|k| ("overrides", k));
    for (field, extra) in named.chain(req.parts.keys().map(|k| ("parts", k))) {
        if !wanted.iter().any(|c| &c.component == extra) {
            return Err(ServiceError::Invalid(format!(
                "{field}.{extra}: that component is not being restored"
            )));
        }
    }
    let options = restore_options(req.options)?;
    let rules = rules(state)?;
    let mut dests = Vec::new();
    for c in &wanted {
        let spec = state.config.component(&c.component).ok_or_else(|| {
            ServiceError::Invalid(format!(
                "components: {:?} is not configured on this server: add it to [[components]] \
                 to say where it goes",
                c.component
            ))
        })?;
        let dest = match req.overrides.get(&c.component) {
            Some(o) => overridden(spec, o, p, &rules, &format!("overrides.{}", c.component))?,
            None => spec.clone(),
        };
        let snapshot_id = c.snapshot_id.clone().ok_or_else(|| {
            ServiceError::internal(format!("component {} has no snapshot", c.component))
        })?;
        dests.push((dest, snapshot_id, is_sensitive(state, c)));
    }
    let snaps = backup_snapshots(state, &b.target, backup_id)?;
    let repo = state.repo(&b.target)?;
    let mut items = Vec::new();
    let mut sealed = Vec::new();
    for (dest, sid, sensitive) in dests {
        let snapshot = snaps.iter().find(|s| s.id == sid).cloned().ok_or_else(|| {
            ServiceError::Conflict(format!(
                "snapshot {sid} of component {} is no longer in the repository",
                dest.name
            ))
        })?;
        let is_sealed = snapshot.sealed;
        // Sealed data needs `sensitive`, whatever the configuration says now.
        if is_sealed {
            p.require_component(Scope::Restore, dest.name.as_str(), true)?;
            sealed.push(dest.name.to_string());
        }
        let repo = match (&req.age_identity, is_sealed) {
            (Some(id), true) => repo.with_identity(Arc::clone(id)),
            _ => repo.clone(),
        };
        let name = dest.name.to_string();
        let (dest, part) = match req.parts.get(&name) {
            None => (dest, None),
            Some(rel) => {
                let field = format!("parts.{name}");
                let overridden = req.overrides.contains_key(&name);
                let planned = part::plan(
                    &field,
                    rel,
                    dest,
                    overridden,
                    &repo,
                    &snapshot,
                    options.mode,
                )?;
                (planned.dest, Some(planned.rel))
            }
        };
        items.push(RestoreItem {
            dest,
            data: ComponentData::Snapshot {
                repo,
                snapshot: Box::new(snapshot),
            },
            sensitive: sensitive || is_sealed,
            part,
        });
    }
    check_identities(&items, &sealed, req.age_identity.is_some())?;
    launch(
        state,
        RestoreJob {
            backup_id: backup_id.to_owned(),
            items,
            options,
            spool: None,
            holds_backup: true,
        },
    )
}

/// Before anything (a pre-restore hook included) runs: every sealed
/// component must open with the request's identity.
fn check_identities(items: &[RestoreItem], sealed: &[String], given: bool) -> ServiceResult<()> {
    if sealed.is_empty() {
        return Ok(());
    }
    if !given {
        return Err(ServiceError::Invalid(format!(
            "age_identity: components {} are sealed to an age recipient: send the matching \
             identity as \"age_identity\": \"AGE-SECRET-KEY-1…\" (nothing was restored)",
            sealed.join(", ")
        )));
    }
    for item in items {
        if let ComponentData::Snapshot { repo, snapshot } = &item.data
            && snapshot.sealed
        {
            repo.check_identity(&snapshot.id).map_err(|e| {
                ServiceError::Invalid(format!(
                    "age_identity: component {:?}: {e}",
                    item.dest.name.as_str()
                ))
            })?;
        }
    }
    Ok(())
}

/// Reserves the restored components (and the backup, when restoring from a
/// repository), records the restore and starts it; returns its id.
pub fn launch(state: &Shared, job: RestoreJob) -> ServiceResult<String> {
    let id = format!("restore-{}", uuid::Uuid::new_v4());
    let mut keys: Vec<String> = job
        .items
        .iter()
        .map(|i| component_key(i.dest.name.as_str()))
        .collect();
    if job.holds_backup {
        keys.push(backup_key(&job.backup_id));
    }
    let reservation = state.jobs.reserve(&id, keys)?;
    let row = RestoreRow {
        id: id.clone(),
        backup_id: job.backup_id.clone(),
        status: RestoreStatus::Restoring,
        error: None,
        created_at: now(),
        finished_at: None,
    };
    let names: Vec<(String, bool)> = job
        .items
        .iter()
        .map(|i| (i.dest.name.to_string(), i.sensitive || i.dest.sensitive))
        .collect();
    state.catalog.insert_restore(&row, &names)?;
    let st = Arc::clone(state);
    let rid = id.clone();
    spawn_job(&id, move || run(&st, &rid, job, reservation))?;
    Ok(id)
}

/// Runs a recorded restore to its end.
fn run(state: &Shared, id: &str, job: RestoreJob, reservation: Reservation) {
    let _reservation = reservation;
    let started = Instant::now();
    let log = |line: String| state.log(id, &line);
    let names: Vec<String> = job.items.iter().map(|i| i.dest.name.to_string()).collect();
    log(format!(
        "restore {id} of backup {} started: {}",
        job.backup_id,
        names.join(", ")
    ));
    let env = [
        ("COFFER_BACKUP_ID", job.backup_id.clone()),
        ("COFFER_RESTORE_ID", id.to_owned()),
        ("COFFER_COMPONENTS", names.join(",")),
    ];
    let mut post_hook_error = None;
    let outcomes = match run_hooks(state, id, HookPoint::PreRestore, &env) {
        Err(reason) => {
            log(format!("nothing was restored: {reason}"));
            names
                .iter()
                .map(|n| (n.clone(), Err(reason.clone())))
                .collect()
        }
        Ok(()) => {
            let items = job
                .items
                .iter()
                .map(|i| (i.dest.name.to_string(), i))
                .collect();
            let outcomes = run_components(items, state.config.parallel_components, |_, item| {
                restore_component(state, id, item, &job.options)
            });
            if let Err(e) = run_hooks(state, id, HookPoint::PostRestore, &env) {
                post_hook_error = Some(e);
            }
            outcomes
        }
    };
    let failures = record_outcomes(&outcomes, &log, |name, r| {
        state
            .catalog
            .finish_restore_component(id, name, r.map(Vec::as_slice))
    });
    let (status, error) = match (failures.is_empty(), post_hook_error) {
        (false, hook) => {
            let mut e = failures.join("; ");
            if let Some(h) = hook {
                e.push_str(&format!("; {h}"));
            }
            (RestoreStatus::Error, Some(e))
        }
        (true, Some(h)) if state.config.hooks.post_restore_failure == HookFailure::Error => {
            (RestoreStatus::Error, Some(h))
        }
        (true, Some(h)) => {
            log(format!(
                "WARNING: {h} (hooks.post_restore_failure = \"warn\")"
            ));
            (RestoreStatus::Ready, Some(format!("warning: {h}")))
        }
        (true, None) => (RestoreStatus::Ready, None),
    };
    // The upload's files go before the job is seen as finished.
    drop(job.spool);
    let secs = started.elapsed().as_secs_f64();
    log(format!("restore {id} {status} after {secs:.1} s"));
    state.logs.flush();
    if let Err(e) = state.catalog.finish_restore(id, status, error.as_deref()) {
        tracing::error!(restore = %id, "recording the end of the restore: {e}");
    }
    state
        .metrics
        .job_finished("restore", status.as_str(), secs, 0);
    tracing::info!(restore = %id, %status, "restore finished in {secs:.1} s");
}

/// A part goes into a directory of the component that may be gone since
/// the backup (checked not to lead out of it when the restore was asked).
fn part_directory(item: &RestoreItem) -> Result<(), String> {
    match (&item.part, &item.dest.kind) {
        (Some(_), ComponentKind::Files(f)) => std::fs::create_dir_all(&f.path)
            .map_err(|e| format!("creating {}: {e}", f.path.display())),
        _ => Ok(()),
    }
}

fn restore_component(
    state: &AppState,
    id: &str,
    item: &RestoreItem,
    options: &RestoreOptions,
) -> Result<Vec<String>, String> {
    let name = item.dest.name.to_string();
    let log = |line: String| state.log(id, &line);
    if let Err(e) = state.catalog.restore_component_started(id, &name) {
        log(format!("recording the start of {name}: {e}"));
    }
    log(format!(
        "component {name} ({}) restoring {}{}",
        item.dest.kind.name(),
        item.data.describe(),
        item.part
            .as_ref()
            .map(|p| format!(", only {}", p.display()))
            .unwrap_or_default()
    ));
    let started = Instant::now();
    let staging = &state.config.staging_dir;
    let result = std::fs::create_dir_all(staging)
        .map_err(|e| format!("creating staging directory {}: {e}", staging.display()))
        .and_then(|()| part_directory(item))
        .and_then(|()| {
            let ctx = RestoreContext {
                source: item.data.source(),
                staging_dir: staging,
                options,
                progress: Some(state.jobs.progress_fn(id, &name)),
                part: item.part.as_deref(),
            };
            coffer_components::restore(&item.dest, &ctx)
                .map(|r| r.notes)
                .map_err(|e| e.to_string())
        });
    state.jobs.progress_done(id, &name);
    match &result {
        Ok(notes) => {
            for n in notes {
                log(format!("  {name}: {n}"));
            }
            log(format!(
                "component {name} READY in {:.1} s",
                started.elapsed().as_secs_f64()
            ));
        }
        Err(e) => log(format!(
            "component {name} ERROR after {:.1} s: {e}",
            started.elapsed().as_secs_f64()
        )),
    }
    result
}
