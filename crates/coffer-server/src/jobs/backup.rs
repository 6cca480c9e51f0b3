//! Backup jobs: a request checked against the caller and the configuration,
//! recorded `BACKING_UP`, then run on a thread of its own — hooks around
//! components running in parallel under time limits — until every
//! component is `READY` or the backup is `ERROR` with the reason.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use coffer_components::BackupContext;
use coffer_engine::{CancelToken, EngineError, SnapshotInfo};
use coffer_model::access::{BackupStatus, Scope};
use coffer_model::component::ComponentSpec;
use coffer_model::target::TargetKind;
use coffer_model::{BackupId, BackupRef, Label};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::access::Principal;
use crate::catalog::{BackupRow, NewBackupComponent, TargetMode, TargetRow, now};
use crate::error::{ServiceError, ServiceResult};
use crate::exports;
use crate::jobs::hooks::{HookPoint, run_hooks};
use crate::jobs::registry::{Reservation, component_key};
use crate::jobs::runner::{
    Outcome, Timed, record_outcomes, run_components, spawn_job, staging_fits, with_timeout,
};
use crate::jobs::sensitive_export;
use crate::state::{AppState, Shared};

/// The label of a backup requested Terraform Enterprise style (a password, no label).
pub const TFE_DEFAULT_LABEL: &str = "api-backup";

/// Start a backup.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    /// 3–25 characters of `[A-Za-z0-9_.-]`, not starting with `..`.
    /// Required, except with `password` (then `api-backup`).
    #[serde(default)]
    pub label: Option<String>,
    /// Terraform Enterprise style: once the backup is READY, export it
    /// encrypted with this password (at least
    /// `server.min_export_password_len` characters, default 12); the export
    /// is linked from the backup. Needs the `export` scope.
    #[serde(default)]
    pub password: Option<String>,
    /// Components to back up (default: every configured one the token may touch).
    #[serde(default)]
    pub components: Option<Vec<String>>,
    /// Target name (default: the default target).
    #[serde(default)]
    pub target: Option<String>,
    /// With `password`: keep the export until it is deleted, whatever
    /// `server.export_ttl_secs` says.
    #[serde(default)]
    pub keep: bool,
    /// With `password`: back up the sensitive components (all, or those
    /// in `components`) straight into a password-encrypted sensitive export,
    /// never into a repository (Auth0's `backup-sensitive`). Needs `export`
    /// and `sensitive`; no age key pair involved.
    #[serde(default)]
    pub sensitive: bool,
}

/// What starting a backup gave.
#[derive(Debug)]
pub struct Started {
    /// The backup's id.
    pub id: String,
    /// Its first state.
    pub status: &'static str,
    /// The export made of it, when a `password` was given.
    pub export_id: Option<String>,
}

/// A backup to run.
#[derive(Debug)]
struct BackupJob {
    id: BackupId,
    target: String,
    components: Vec<ComponentSpec>,
}

/// Checks `req` against `p` and the configuration, records the backup and
/// starts it; returns its id. Blocking (the preflight walks sources).
pub fn start(state: &Shared, p: &Principal, req: BackupRequest) -> ServiceResult<Started> {
    p.require(Scope::BackupsWrite)?;
    if req.keep && req.password.is_none() {
        return Err(ServiceError::Invalid(
            "keep: only with \"password\" (it keeps the export made of the backup)".into(),
        ));
    }
    if req.sensitive {
        let Some(password) = req.password else {
            return Err(ServiceError::Invalid(
                "sensitive: needs \"password\": a sensitive backup is written straight into an \
                 export encrypted with it"
                    .into(),
            ));
        };
        if req.target.is_some() {
            return Err(ServiceError::Invalid(
                "target: a sensitive backup is never written to a target".into(),
            ));
        }
        let s = sensitive_export::start(
            state,
            p,
            req.label.as_deref(),
            req.components.as_deref(),
            password,
            req.keep,
        )?;
        return Ok(Started {
            id: s.backup_id,
            status: "EXPORTING",
            export_id: Some(s.export_id),
        });
    }
    let label = match (&req.label, &req.password) {
        (Some(l), _) => l.clone(),
        (None, Some(_)) => TFE_DEFAULT_LABEL.to_owned(),
        (None, None) => {
            return Err(ServiceError::Invalid(
                "label: required (3 to 25 characters of A-Z a-z 0-9 _ . -)".into(),
            ));
        }
    };
    let label = Label::new(&label).map_err(|e| ServiceError::Invalid(format!("label: {e}")))?;
    let specs = pick_components(state, p, req.components.as_deref())?;
    // The export that follows: checked now, so a refusal comes before any work.
    let export = match req.password {
        None => None,
        Some(pw) => Some(exports::plan_after_backup(
            state,
            p,
            &specs,
            Some(pw),
            None,
            req.keep,
        )?),
    };
    let (id, export_id) = launch(state, label, specs, export, req.target, None)?;
    Ok(Started {
        id,
        status: BackupStatus::BackingUp.as_str(),
        export_id,
    })
}

/// Terraform Enterprise's backup call (`POST /_backup/api/v1/backup`): a
/// backup of every non-sensitive component, exported with `password` once
/// it is READY; returns the backup's and the export's ids. Like a
/// component's native download it takes the application's data out now, so
/// it needs `export` — on every non-sensitive component, since it is the
/// whole installation — rather than `backups:write`.
pub fn start_for_export(
    state: &Shared,
    p: &Principal,
    password: String,
) -> ServiceResult<(String, String)> {
    p.require(Scope::Export)?;
    if let Some(mine) = &p.components {
        // Said without naming the components the token may not touch.
        return Err(ServiceError::Forbidden(format!(
            "this token is limited to components {}: this call backs up and exports the whole \
             installation",
            mine.iter().cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    let specs: Vec<ComponentSpec> = state
        .config
        .components
        .iter()
        .filter(|c| !c.sensitive)
        .cloned()
        .collect();
    for s in &specs {
        p.require_component(Scope::Export, s.name.as_str(), false)?;
    }
    let plan = exports::plan_after_backup(state, p, &specs, Some(password), None, false)?;
    let label = Label::new(TFE_DEFAULT_LABEL)
        .map_err(|e| ServiceError::internal(format!("the default label: {e}")))?;
    match launch(state, label, specs, Some(plan), None, None)? {
        (id, Some(export)) => Ok((id, export)),
        (id, None) => Err(ServiceError::internal(format!(
            "backup {id} started without its export"
        ))),
    }
}

/// A backup a schedule takes.
pub struct ScheduledBackup {
    /// The schedule's name, recorded on the backup.
    pub schedule: String,
    /// The due time it is for (Unix seconds on the scheduler's clock).
    pub due_at: i64,
    /// Its label.
    pub label: Label,
    /// Its components (`None`: every one the schedule's principal may touch).
    pub components: Option<Vec<String>>,
    /// Its target (`None`: the default one).
    pub target: Option<String>,
    /// The export made after it: a password or age recipients, and whether
    /// it is kept until deleted.
    pub export: Option<(Option<String>, Option<exports::Recipients>, bool)>,
}

/// Starts a backup for a schedule, acting as `p` (the schedule's own
/// principal: no more than its creator held). `Conflict` when a component
/// is busy with another job.
pub fn start_scheduled(
    state: &Shared,
    p: &Principal,
    run: ScheduledBackup,
) -> ServiceResult<Started> {
    p.require(Scope::BackupsWrite)?;
    let specs = pick_components(state, p, run.components.as_deref())?;
    let export = match run.export {
        None => None,
        Some((password, recipients, keep)) => Some(exports::plan_after_backup(
            state, p, &specs, password, recipients, keep,
        )?),
    };
    let origin = Origin {
        schedule: run.schedule,
        due_at: run.due_at,
    };
    let (id, export_id) = launch(state, run.label, specs, export, run.target, Some(origin))?;
    Ok(Started {
        id,
        status: BackupStatus::BackingUp.as_str(),
        export_id,
    })
}

/// The schedule a backup is taken for.
struct Origin {
    schedule: String,
    due_at: i64,
}

/// Records a backup of `specs` on `target` (the default one if `None`),
/// with the export planned after it, and starts it; returns the backup's
/// id and the export's.
fn launch(
    state: &Shared,
    label: Label,
    specs: Vec<ComponentSpec>,
    export: Option<exports::ExportPlan>,
    target: Option<String>,
    origin: Option<Origin>,
) -> ServiceResult<(String, Option<String>)> {
    let target = match target {
        Some(t) => state
            .catalog
            .target(&t)?
            .ok_or_else(|| ServiceError::Invalid(format!("target: no target named {t:?}")))?,
        None => {
            let name = state.catalog.default_target()?.ok_or_else(|| {
                ServiceError::Invalid("target: there is no default target: name one".into())
            })?;
            state.target_row(&name)?
        }
    };
    if target.mode != TargetMode::Own {
        return Err(ServiceError::Conflict(format!(
            "target {} is attached read-only (mode attach): another installation owns it. \
             Take it over with PUT /api/v1/targets/{} and mode \"own\" only if that installation is gone",
            target.name, target.name
        )));
    }
    preflight(state, &specs, &target)?;
    let id = BackupId::generate(&label);
    let keys = specs
        .iter()
        .map(|s| component_key(s.name.as_str()))
        .collect();
    let reservation = state.jobs.reserve(id.as_str(), keys)?;
    let row = BackupRow {
        id: id.to_string(),
        label: label.to_string(),
        target: target.name.clone(),
        status: BackupStatus::BackingUp,
        error: None,
        component_count: u32::try_from(specs.len()).unwrap_or(u32::MAX),
        created_at: now(),
        finished_at: None,
        schedule: origin.as_ref().map(|o| o.schedule.clone()),
        due_at: origin.as_ref().map(|o| o.due_at),
        pinned: false,
        verified_at: None,
        seq: 0,
    };
    let comps: Vec<NewBackupComponent> = specs
        .iter()
        .map(|s| NewBackupComponent {
            name: s.name.to_string(),
            kind: s.kind.name().to_owned(),
            sealed: s.sensitive,
        })
        .collect();
    state.catalog.insert_backup(&row, &comps)?;
    let export = export
        .map(|plan| exports::record_pending(state, id.as_str(), plan))
        .transpose()?;
    let export_id = export.as_ref().map(|e| e.id().to_owned());
    let job = BackupJob {
        id: id.clone(),
        target: target.name,
        components: specs,
    };
    let st = Arc::clone(state);
    spawn_job(id.as_str(), move || {
        let id = job.id.to_string();
        run(&st, job, reservation);
        if let Some(pending) = export {
            exports::start_after_backup(&st, pending);
        }
        // Retention and the scheduler (set at start; see `AppState::after_backup`).
        if let Some(after) = st.after_backup.get() {
            after(&st, &id);
        }
    })?;
    Ok((id.to_string(), export_id))
}

/// The components a request names (all the caller may touch by default),
/// each checked against the caller.
fn pick_components(
    state: &AppState,
    p: &Principal,
    names: Option<&[String]>,
) -> ServiceResult<Vec<ComponentSpec>> {
    let all = &state.config.components;
    let specs: Vec<ComponentSpec> = match names {
        // By default, what a repository may hold: sensitive components
        // without recipients are left for the password-only sensitive backup.
        None => all
            .iter()
            .filter(|c| p.sees(c.name.as_str(), c.sensitive))
            .filter(|c| state.config.unsealable(c).is_none())
            .cloned()
            .collect(),
        Some([]) => {
            return Err(ServiceError::Invalid(
                "components: an empty list backs up nothing; leave it out for every component"
                    .into(),
            ));
        }
        Some(names) => {
            let mut seen = BTreeSet::new();
            let mut out = Vec::new();
            for n in names {
                if !seen.insert(n.as_str()) {
                    return Err(ServiceError::Invalid(format!(
                        "components: {n:?} is named twice"
                    )));
                }
                // Reach before existence: a limited token learns nothing of
                // components outside its list.
                p.require_reach(n, false)?;
                let spec = state.config.component(n).ok_or_else(|| {
                    ServiceError::Invalid(format!(
                        "components: unknown component {n:?}: the ones you may back up are {}",
                        all.iter()
                            .filter(|c| p.sees(c.name.as_str(), c.sensitive))
                            .map(|c| c.name.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?;
                out.push(spec.clone());
            }
            out
        }
    };
    if specs.is_empty() {
        return Err(ServiceError::Invalid(
            "components: nothing to back up: configure [[components]] in the config file (or \
             name some this token may touch)"
                .into(),
        ));
    }
    for s in &specs {
        p.require_component(Scope::BackupsWrite, s.name.as_str(), s.sensitive)?;
    }
    if let Some(why) = specs.iter().find_map(|s| state.config.unsealable(s)) {
        return Err(ServiceError::Invalid(format!("components: {why}")));
    }
    Ok(specs)
}

/// Refuses when the staging area or a local target cannot hold the backup:
/// the sources' size times `server.preflight_factor` (2 by default,
/// Auth0's rule) plus `server.preflight_reserve_mib`.
fn preflight(state: &AppState, specs: &[ComponentSpec], target: &TargetRow) -> ServiceResult<()> {
    staging_fits(state, specs)?;
    if target.kind != "local" {
        return Ok(());
    }
    let TargetKind::Local(l) = &state.target_spec(target)?.kind else {
        return Ok(());
    };
    let sources: u64 = specs
        .iter()
        .filter_map(coffer_components::source_size)
        .sum();
    let factor = state.config.preflight_factor;
    let reserve = state.config.preflight_reserve;
    let need = (sources as f64 * factor) as u64 + reserve;
    let free = coffer_targets::free_space_at(&l.path).unwrap_or(u64::MAX);
    if sources > 0 && free < need {
        return Err(ServiceError::InsufficientStorage(format!(
            "target {} ({}) has {free} bytes free; this backup may need {need} bytes \
             ({factor} × the sources' {sources} bytes, plus a {} MiB reserve)",
            target.name,
            l.path.display(),
            reserve >> 20
        )));
    }
    Ok(())
}

/// Runs a recorded backup to its end. Never panics the server: every
/// failure becomes an `ERROR` state with the reason.
fn run(state: &Shared, job: BackupJob, reservation: Reservation) {
    let _reservation = reservation;
    let id = job.id.to_string();
    let started = Instant::now();
    let log = |line: String| state.log(&id, &line);
    let names: Vec<String> = job.components.iter().map(|c| c.name.to_string()).collect();
    log(format!(
        "backup {id} to target {} started: {}",
        job.target,
        names.join(", ")
    ));
    let tokens: Vec<CancelToken> = job.components.iter().map(|_| CancelToken::new()).collect();
    for t in &tokens {
        state.jobs.register_cancel(&id, t.clone());
    }
    let env = [
        ("COFFER_BACKUP_ID", id.clone()),
        ("COFFER_COMPONENTS", names.join(",")),
    ];
    // Post-backup hooks run whenever pre-backup hooks were started, so an
    // application a pre-hook quiesced is always resumed.
    let mut pre_hooks_started = false;
    let setup = state
        .repo(&job.target)
        .map_err(|e| e.message())
        .and_then(|repo| {
            pre_hooks_started = true;
            run_hooks(state, &id, HookPoint::PreBackup, &env).map(|()| repo)
        });
    // The repository, once opened: a cancel removes what finished through it.
    let mut opened = None;
    let mut outcomes: Vec<Outcome<SnapshotInfo>> = match setup {
        Err(reason) => {
            log(format!("nothing was backed up: {reason}"));
            names
                .iter()
                .map(|n| (n.clone(), Err(reason.clone())))
                .collect()
        }
        Ok(repo) => {
            opened = Some(repo.clone());
            let count = u32::try_from(job.components.len()).unwrap_or(u32::MAX);
            let items = job
                .components
                .iter()
                .cloned()
                .zip(tokens.iter().cloned())
                .map(|(spec, token)| (spec.name.to_string(), (spec, token)))
                .collect();
            run_components(
                items,
                state.config.parallel_components,
                |_, (spec, token)| {
                    if token.is_cancelled() {
                        return Err("cancelled".to_owned());
                    }
                    let repo = repo
                        .with_cancel(token.clone())
                        .with_archiver(state.config.archiver);
                    // Sensitive components are sealed to the configured age
                    // recipients (the configuration refuses them without).
                    let repo = match &state.config.sensitive_recipients {
                        Some(r) if spec.sensitive => repo.sealed_to(Arc::clone(r)),
                        // Checked at start; never written unsealed.
                        None if spec.sensitive => {
                            return Err(state.config.unsealable(&spec).unwrap_or_default());
                        }
                        _ => repo,
                    };
                    let bref = BackupRef::new(job.id.clone(), spec.name.clone(), count);
                    backup_component(state, &id, repo, spec, bref, token)
                },
            )
        }
    };
    if pre_hooks_started && let Err(e) = run_hooks(state, &id, HookPoint::PostBackup, &env) {
        // The data is captured; a failing post-hook (e.g. resuming the
        // application) is the operator's urgent problem, not a bad backup.
        log(format!("WARNING: {e}"));
    }

    let cancelled = state.jobs.was_cancelled(&id);
    state.jobs.unregister(&id);
    if cancelled {
        // Nothing partial is kept: forget what finished before the cancel.
        let done: Vec<String> = outcomes
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok().map(|s| s.id.clone()))
            .collect();
        if let (false, Some(repo)) = (done.is_empty(), opened) {
            match repo.forget(&done) {
                Ok(n) => log(format!(
                    "cancelled: removed {n} finished component snapshot(s)"
                )),
                Err(e) => log(format!(
                    "cancelled, but removing finished snapshots failed: {e}"
                )),
            }
        }
        for (_, r) in &mut outcomes {
            *r = Err("cancelled".to_owned());
        }
    }
    let bytes_added = outcomes
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok().map(|s| s.bytes_added))
        .sum();
    let failures = record_outcomes(&outcomes, &log, |name, r| {
        state.catalog.finish_backup_component(&id, name, r)
    });
    let (status, error) = if cancelled {
        (BackupStatus::Error, Some("cancelled".to_owned()))
    } else if failures.is_empty() {
        (BackupStatus::Ready, None)
    } else {
        (BackupStatus::Error, Some(failures.join("; ")))
    };
    let secs = started.elapsed().as_secs_f64();
    log(format!("backup {id} {status} after {secs:.1} s"));
    // The log is complete before the state says the backup ended.
    state.logs.flush();
    if let Err(e) = state.catalog.finish_backup(&id, status, error.as_deref()) {
        tracing::error!(backup = %id, "recording the end of the backup: {e}");
    }
    state
        .metrics
        .job_finished("backup", status.as_str(), secs, bytes_added);
    if status == BackupStatus::Ready {
        for n in &names {
            state.metrics.component_succeeded(n);
        }
    }
    tracing::info!(backup = %id, %status, "backup finished in {secs:.1} s");
}

fn backup_component(
    state: &Shared,
    id: &str,
    repo: coffer_engine::Repo,
    spec: ComponentSpec,
    bref: BackupRef,
    token: CancelToken,
) -> Result<SnapshotInfo, String> {
    let name = spec.name.to_string();
    let log = |line: String| state.log(id, &line);
    if let Err(e) = state.catalog.backup_component_started(id, &name) {
        log(format!("recording the start of {name}: {e}"));
    }
    log(format!("component {name} ({}) started", spec.kind.name()));
    let started = Instant::now();
    let staging = state.config.staging_dir.clone();
    let progress = state.jobs.progress_fn(id, &name);
    // For removing a snapshot that lands after a timeout.
    let keep = repo.clone();
    let timeout = state.config.component_timeout;
    let run = move || {
        std::fs::create_dir_all(&staging)
            .map_err(|e| format!("creating staging directory {}: {e}", staging.display()))?;
        let ctx = BackupContext {
            repo: &repo,
            backup: &bref,
            staging_dir: &staging,
            progress: Some(progress),
        };
        coffer_components::backup(&spec, &ctx).map_err(describe_component_error)
    };
    let result = match with_timeout(timeout, &token, run) {
        Err(e) => Err(e),
        // Whatever error the stopped source caused, the cause is the cancel.
        Ok(Timed::Done(Err(_))) if token.is_cancelled() => Err("cancelled".to_owned()),
        Ok(Timed::Done(r)) => r,
        Ok(Timed::TimedOut(late)) => {
            if let Ok(snap) = late {
                // Finished at the very moment it was stopped: not kept, the
                // state says it failed.
                if let Err(e) = keep.forget(std::slice::from_ref(&snap.id)) {
                    log(format!("removing the late snapshot {}: {e}", snap.id));
                }
            }
            Err(format!(
                "timed out after {} s (server.component_timeout_secs) and was stopped; nothing was recorded",
                timeout.as_secs()
            ))
        }
    };
    state.jobs.progress_done(id, &name);
    match &result {
        Ok(s) => log(format!(
            "component {name} READY in {:.1} s: snapshot {}, {} files, {} bytes (+{} stored)",
            started.elapsed().as_secs_f64(),
            &s.id[..8.min(s.id.len())],
            s.files,
            s.bytes,
            s.bytes_added
        )),
        Err(e) => log(format!(
            "component {name} ERROR after {:.1} s: {e}",
            started.elapsed().as_secs_f64()
        )),
    }
    result
}

/// A component error as one line; the engine's `Cancelled` reads "cancelled".
fn describe_component_error(e: coffer_components::ComponentError) -> String {
    match e {
        coffer_components::ComponentError::Engine {
            source: EngineError::Cancelled { .. },
            ..
        } => "cancelled".to_owned(),
        other => other.to_string(),
    }
}
