//! Prunes through the server (`POST /api/v1/targets/{name}/prune`): space
//! comes back after backups are deleted, without the offline CLI or the
//! repository password. Checked and recorded by [`start`], run on a thread
//! of its own under the repository's exclusive lock; refused while plain
//! restic holds a lock that is not stale (restic does not see Coffer's).

use std::time::Duration;

use coffer_engine::{PruneReport, PruneSettings};
use coffer_model::access::Scope;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::access::Principal;
use crate::catalog::{PruneRow, PruneStatus, TargetMode, now};
use crate::error::{ServiceError, ServiceResult};
use crate::jobs::runner::spawn_job;
use crate::state::{AppState, Shared};

/// What the progress registry calls the one "component" of a prune.
pub const PROGRESS_KEY: &str = "prune";

/// The key a prune of target `name` holds in its exclusive phase: the
/// scheduler keeps the target's due backups back while it is held.
pub fn target_key(name: &str) -> String {
    format!("target:{name}")
}

/// The key a prune holds from start to end: one prune of a target at a time.
fn planning_key(name: &str) -> String {
    format!("pruning:{name}")
}

/// How long a prune waits for backups of this server running on its
/// target to end before it takes the exclusive lock (new due backups are
/// held meanwhile); then it fails naming them, and the next prune tries
/// again.
const EXCLUSIVE_PATIENCE: Duration = Duration::from_secs(15 * 60);

/// Options of a prune.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PruneRequest {
    /// How long packs this prune marks are kept before a later prune
    /// deletes them, in seconds (default 82800: 23 h). A backup that started
    /// before the mark and still refers to them has this long to finish;
    /// 0 also deletes, now, every pack an earlier prune marked.
    #[serde(default)]
    pub grace_secs: Option<u64>,
}

/// A prune as the service shows it: its row and, once `READY`, its report.
#[derive(Debug)]
pub struct PruneDetail {
    /// The recorded prune.
    pub row: PruneRow,
    /// What it removed and marked.
    pub report: Option<PruneReport>,
}

/// Checks and starts a prune of `target`; returns its id.
pub fn start(
    state: &Shared,
    p: &Principal,
    target: &str,
    req: PruneRequest,
) -> ServiceResult<String> {
    p.require(Scope::Maintenance)?;
    if let Some(g) = req.grace_secs
        && g > PruneSettings::MAX_GRACE_SECS
    {
        return Err(ServiceError::Invalid(format!(
            "grace_secs: {g} is longer than a year ({} s)",
            PruneSettings::MAX_GRACE_SECS
        )));
    }
    let row = state.target_row(target)?;
    if row.mode != TargetMode::Own {
        return Err(ServiceError::Conflict(format!(
            "target {target} is attached read-only (mode attach): only the installation that owns \
             its repository prunes it"
        )));
    }
    let repo = state.repo(target)?;
    if let Some(l) = repo
        .restic_locks()
        .map_err(|e| ServiceError::Upstream(format!("reading restic's locks: {e}")))?
        .into_iter()
        .find(|l| !l.stale)
    {
        return Err(ServiceError::Conflict(format!(
            "plain restic holds {} lock on target {target} ({}, {} s old): a prune now could \
             delete data it is writing. Wait until it ends, or run `restic unlock` if that \
             process is gone",
            if l.exclusive { "an exclusive" } else { "a" },
            l.holder,
            l.age_secs
        )));
    }
    let id = format!("prune-{}", uuid::Uuid::new_v4());
    // Held while it plans: another prune (or a `target:` holder) refused.
    if let Some(holder) = state.jobs.holder(&target_key(target)) {
        return Err(ServiceError::Conflict(format!(
            "target {target} is busy with job {holder}"
        )));
    }
    let reservation = state.jobs.reserve(&id, vec![planning_key(target)])?;
    state.catalog.insert_prune(&PruneRow {
        id: id.clone(),
        target: target.to_owned(),
        status: PruneStatus::Pruning,
        error: None,
        report: None,
        grace_secs: req.grace_secs,
        created_at: now(),
        finished_at: None,
    })?;
    tracing::info!(prune = %id, target = %target, by = %p.id, "prune started");
    let st = std::sync::Arc::clone(state);
    let (job, settings) = (
        id.clone(),
        PruneSettings {
            instant: false,
            grace_secs: req.grace_secs,
        },
    );
    let target = target.to_owned();
    spawn_job(&id, move || {
        let _reservation = reservation;
        let progress = st.jobs.progress_fn(&job, PROGRESS_KEY);
        // Planned while backups go on; then the target is held (the
        // scheduler keeps due backups back) for the exclusive phase only.
        let outcome = repo
            .prune_prepare(settings, Some(progress))
            .map_err(|e| e.to_string())
            .and_then(|prepared| {
                let _exclusive = st
                    .jobs
                    .reserve(&job, vec![target_key(&target)])
                    .map_err(|e| e.message())?;
                st.log(&job, "planned; waiting for the exclusive lock");
                prepared
                    .execute(EXCLUSIVE_PATIENCE)
                    .map_err(|e| e.to_string())
            })
            .and_then(|r| serde_json::to_string(&r).map_err(|e| e.to_string()));
        st.jobs.progress_done(&job, PROGRESS_KEY);
        match &outcome {
            Ok(r) => tracing::info!(prune = %job, "prune done: {r}"),
            Err(e) => tracing::warn!(prune = %job, "prune failed: {e}"),
        }
        if let Err(e) = st.catalog.finish_prune(&job, outcome) {
            tracing::error!(prune = %job, "recording the prune's end: {e}");
        }
        drop(_reservation);
        // Backups held back while it ran are due now.
        st.scheduler.wake();
    })?;
    Ok(id)
}

/// One prune.
pub fn show(state: &AppState, p: &Principal, id: &str) -> ServiceResult<PruneDetail> {
    p.require(Scope::Maintenance)?;
    let row = state
        .catalog
        .prune(id)?
        .ok_or_else(|| ServiceError::NotFound(format!("no prune with id {id:?}")))?;
    let report = row
        .report
        .as_deref()
        .map(serde_json::from_str::<PruneReport>)
        .transpose()
        .map_err(|e| ServiceError::internal(format!("prune {id}'s report: {e}")))?;
    Ok(PruneDetail { row, report })
}
