//! Pruning through the server: `POST /api/v1/targets/{name}/prune` starts
//! one, `GET /api/v1/prunes/{id}` follows it and shows what it freed.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::access::Principal;
use crate::api::common::{
    Accepted, ApiResult, ProgressView, RawBody, accepted, blocking, progress_view, time,
};
use crate::api::error::ErrorBody;
use crate::catalog::PruneStatus;
use crate::jobs::prune::{self, PROGRESS_KEY, PruneDetail, PruneRequest};
use crate::state::Shared;

/// What a prune freed and marked.
#[derive(Debug, Serialize, ToSchema)]
pub struct PruneReportView {
    /// Pack files deleted by this prune.
    pub packs_removed: u64,
    /// Pack files whose live data was copied into new packs.
    pub packs_repacked: u64,
    /// Pack files no backup uses any more, marked now: a later prune deletes
    /// them once the grace period has passed.
    pub packs_marked: u64,
    /// Pack files an earlier prune marked, still within their grace period.
    pub packs_waiting: u64,
    /// Bytes freed now.
    pub bytes_freed: u64,
    /// Bytes freed when the marked packs' grace period ends (by a later prune).
    pub bytes_pending: u64,
    /// Seconds spent planning under a shared lock (backups went on).
    pub planning_secs: f64,
    /// Seconds waited for the exclusive lock (for running backups to end).
    pub waited_secs: f64,
    /// Seconds the exclusive lock was held: what due backups of the target
    /// waited for.
    pub exclusive_secs: f64,
    /// A backup or forget ended between the plan and the lock, so the plan
    /// was made again under the lock.
    pub replanned: bool,
}

/// A prune.
#[derive(Debug, Serialize, ToSchema)]
pub struct PruneView {
    /// `prune-<uuid>`.
    pub id: String,
    /// The target pruned.
    pub target: String,
    /// `PRUNING`, `READY` or `ERROR`.
    pub status: String,
    /// Why it is `ERROR`.
    pub error: Option<String>,
    /// The grace period asked for, in seconds (none: 23 h).
    pub grace_secs: Option<u64>,
    /// Start (RFC 3339).
    pub created_at: String,
    /// End (RFC 3339).
    pub finished_at: Option<String>,
    /// While it runs: what the engine reports (packs read, written, removed).
    pub progress: Option<ProgressView>,
    /// Once `READY`.
    pub report: Option<PruneReportView>,
}

fn prune_view(state: &Shared, d: PruneDetail) -> PruneView {
    let r = d.row;
    PruneView {
        progress: (r.status == PruneStatus::Pruning)
            .then(|| progress_view(state, &r.id, PROGRESS_KEY))
            .flatten(),
        report: d.report.map(|p| PruneReportView {
            packs_removed: p.packs_removed,
            packs_repacked: p.packs_repacked,
            packs_marked: p.packs_marked,
            packs_waiting: p.packs_waiting,
            bytes_freed: p.bytes_freed,
            bytes_pending: p.bytes_pending,
            planning_secs: p.planning_secs,
            waited_secs: p.waited_secs,
            exclusive_secs: p.exclusive_secs,
            replanned: p.replanned,
        }),
        id: r.id,
        target: r.target,
        status: r.status.to_string(),
        error: r.error,
        grace_secs: r.grace_secs,
        created_at: time(r.created_at),
        finished_at: r.finished_at.map(time),
    }
}

/// Prunes a target's repository: removes the data no backup uses any more
/// (after deletes), in two phases — unused packs are marked now and deleted
/// by a later prune once `grace_secs` (default 23 h) have passed. 202 with
/// the prune's id; 409 while plain restic holds a lock on the repository,
/// another prune of it runs, or the target is attached read-only. The body
/// (`{"grace_secs": …}`) may be omitted.
#[utoipa::path(post, path = "/api/v1/targets/{name}/prune", params(("name" = String, Path, description = "Target name")),
    request_body(content = Option<PruneRequest>, description = "optional"),
    security(("bearer" = ["maintenance"])),
    responses((status = 202, body = Accepted), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn prune_target(
    State(state): State<Shared>,
    p: Principal,
    Path(name): Path<String>,
    body: RawBody,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    let req: PruneRequest = body.json_or_default()?;
    let st = Arc::clone(&state);
    let id = blocking(move || prune::start(&st, &p, &name, req)).await?;
    Ok(accepted(id, PruneStatus::Pruning.as_str()))
}

/// Shows a prune: its state, progress while it runs, then what it freed.
#[utoipa::path(get, path = "/api/v1/prunes/{id}", params(("id" = String, Path, description = "Prune id")),
    security(("bearer" = ["maintenance"])),
    responses((status = 200, body = PruneView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn show_prune(
    State(state): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<PruneView>> {
    let st = Arc::clone(&state);
    let d = blocking(move || prune::show(&st, &p, &id)).await?;
    Ok(Json(prune_view(&state, d)))
}
