//! `/api/v1/backups`: start, list, show, log, cancel, delete.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use coffer_model::access::BackupStatus;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::Principal;
use crate::api::common::{
    Accepted, ApiResult, JobLog, JsonBody, ProgressView, accepted, blocking, job_log,
    progress_view, time,
};
use crate::api::dcos::{BackupParts, DcosBackupView};
use crate::api::error::ErrorBody;
use crate::api::exports::{ExportView, export_view};
use crate::api::restores::{RestoreView, restore_view};
use crate::backups::{self, BackupDetail};
use crate::error::ServiceError;
use crate::jobs::backup::{self as backup_job, BackupRequest};
use crate::state::Shared;

/// A component of a backup.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackupComponentView {
    /// Component name.
    pub name: String,
    /// Its kind.
    pub kind: String,
    /// `BACKING_UP`, `READY` or `ERROR`.
    pub status: String,
    /// Why it is `ERROR`.
    pub error: Option<String>,
    /// The snapshot holding it.
    pub snapshot_id: Option<String>,
    /// Files in the snapshot.
    pub files: Option<u64>,
    /// Bytes of content.
    pub bytes: Option<u64>,
    /// Bytes it added to the repository.
    pub bytes_added: Option<u64>,
    /// Start (RFC 3339).
    pub started_at: Option<String>,
    /// End (RFC 3339).
    pub finished_at: Option<String>,
    /// Seconds it took.
    pub duration_secs: Option<i64>,
    /// While it runs: how far it has got.
    pub progress: Option<ProgressView>,
}

/// A backup.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackupView {
    /// `<label>-<uuid>`.
    pub id: String,
    /// Label.
    pub label: String,
    /// Target it was written to.
    pub target: String,
    /// `BACKING_UP`, `READY` or `ERROR`.
    pub status: String,
    /// Why it is `ERROR`.
    pub error: Option<String>,
    /// Start (RFC 3339).
    pub created_at: String,
    /// End (RFC 3339).
    pub finished_at: Option<String>,
    /// Seconds it took.
    pub duration_secs: Option<i64>,
    /// Bytes of content in all components.
    pub bytes: u64,
    /// Bytes added to the repository.
    pub bytes_added: u64,
    /// Its components (those the token may see).
    pub components: Vec<BackupComponentView>,
    /// Its exports (a backup requested with a `password` links the export
    /// made of it here); only with the `export` scope on their components.
    pub exports: Vec<ExportView>,
    /// Its restores, newest first, each with `component_status`: only when
    /// one backup is shown (a list leaves them out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restores: Option<Vec<RestoreView>>,
    /// The schedule that took it.
    pub schedule: Option<String>,
    /// The due time it was taken for (RFC 3339), for a scheduled backup.
    pub due_at: Option<String>,
    /// Kept whatever retention says (`PUT /api/v1/backups/{id}`).
    pub pinned: bool,
    /// When a verification or restore drill last passed on it (RFC 3339).
    pub verified_at: Option<String>,
    /// Its newest restore drill (`GET /api/v1/drills/{id}` for the details).
    pub last_drill: Option<LastDrillView>,
    /// Its copies on a schedule's extra targets (`copy_to`).
    pub copies: Vec<CopyView>,
}

/// A backup's copy on another target.
#[derive(Debug, Serialize, ToSchema)]
pub struct CopyView {
    /// The target holding it.
    pub target: String,
    /// `COPYING`, `READY` (verified in that repository) or `ERROR`.
    pub status: String,
    /// Why it failed.
    pub error: Option<String>,
    /// End (RFC 3339).
    pub finished_at: Option<String>,
}

/// A backup's newest restore drill, in brief.
#[derive(Debug, Serialize, ToSchema)]
pub struct LastDrillView {
    /// The drill.
    pub id: String,
    /// `DRILLING`, `READY` or `ERROR`.
    pub status: String,
    /// Why it is `ERROR`.
    pub error: Option<String>,
    /// The whole drill, in seconds (the measured recovery time).
    pub seconds: Option<f64>,
    /// End (RFC 3339).
    pub finished_at: Option<String>,
}

/// Change a backup: pin it (retention never deletes it) or unpin it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupChange {
    /// Kept whatever retention says.
    pub pinned: bool,
}

pub(crate) fn backup_view(state: &Shared, d: BackupDetail) -> BackupView {
    let b = d.backup;
    let components: Vec<BackupComponentView> = d
        .components
        .into_iter()
        .map(|c| BackupComponentView {
            progress: (c.status == BackupStatus::BackingUp)
                .then(|| progress_view(state, &b.id, &c.component))
                .flatten(),
            name: c.component,
            kind: c.kind,
            status: c.status.to_string(),
            error: c.error,
            snapshot_id: c.snapshot_id,
            files: c.files,
            bytes: c.bytes,
            bytes_added: c.bytes_added,
            started_at: c.started_at.map(time),
            finished_at: c.finished_at.map(time),
            duration_secs: c.started_at.zip(c.finished_at).map(|(s, f)| f - s),
        })
        .collect();
    BackupView {
        bytes: components.iter().filter_map(|c| c.bytes).sum(),
        bytes_added: components.iter().filter_map(|c| c.bytes_added).sum(),
        label: b.label,
        target: b.target,
        status: b.status.to_string(),
        error: b.error,
        created_at: time(b.created_at),
        finished_at: b.finished_at.map(time),
        duration_secs: b.finished_at.map(|f| f - b.created_at),
        exports: d.exports.into_iter().map(export_view).collect(),
        restores: None,
        schedule: b.schedule,
        due_at: b.due_at.map(time),
        pinned: b.pinned,
        verified_at: b.verified_at.map(time),
        copies: d
            .copies
            .into_iter()
            .map(|c| CopyView {
                target: c.target,
                status: c.status,
                error: c.error,
                finished_at: c.finished_at.map(time),
            })
            .collect(),
        last_drill: d.last_drill.map(|l| LastDrillView {
            id: l.id,
            status: l.status.to_string(),
            error: l.error,
            seconds: l.seconds,
            finished_at: l.finished_at.map(time),
        }),
        id: b.id,
        components,
    }
}

/// A list of backups.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackupList {
    /// Newest first.
    pub backups: Vec<BackupView>,
}

/// What DELETE did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    /// The backup.
    pub id: String,
    /// Snapshots removed from the repository.
    pub snapshots_removed: usize,
    /// When the space is actually freed.
    pub space: String,
}

/// Starts a backup: 202 with its id; watch it with GET /api/v1/backups/{id}.
#[utoipa::path(post, path = "/api/v1/backups", request_body = BackupRequest,
    security(("bearer" = ["backups:write"])),
    extensions(("x-coffer-components" = json!("each"))),
    responses((status = 202, body = Accepted), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 507, body = ErrorBody)))]
pub async fn create_backup(
    State(state): State<Shared>,
    p: Principal,
    JsonBody(req): JsonBody<BackupRequest>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    let st = Arc::clone(&state);
    let started = blocking(move || backup_job::start(&st, &p, req)).await?;
    let (code, Json(mut body)) = accepted(started.id, started.status);
    body.export_id = started.export_id;
    Ok((code, Json(body)))
}

/// Filters of the backup list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct BackupQuery {
    /// Only this label.
    pub label: Option<String>,
    /// Only this state.
    pub status: Option<String>,
}

/// Lists backups, newest first: those with at least one component the
/// token may see, showing only those components.
#[utoipa::path(get, path = "/api/v1/backups", params(BackupQuery),
    security(("bearer" = ["backups:read"])),
    extensions(("x-coffer-components" = json!("filter"))),
    responses((status = 200, body = BackupList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_backups(
    State(state): State<Shared>,
    p: Principal,
    Query(q): Query<BackupQuery>,
) -> ApiResult<Json<BackupList>> {
    let st = Arc::clone(&state);
    let list =
        blocking(move || backups::list(&st, &p, q.label.as_deref(), q.status.as_deref())).await?;
    Ok(Json(BackupList {
        backups: list.into_iter().map(|d| backup_view(&state, d)).collect(),
    }))
}

/// How one backup is shown.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ShowQuery {
    /// `coffer` (the default) or `dcos`: DC/OS's shape, as `dcos backup
    /// show` prints it (`STATUS_`-prefixed states, `component_status`, and
    /// `restores` as the latest restore).
    pub view: Option<String>,
}

/// One backup in the shape asked for.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum BackupShown {
    /// Coffer's own view.
    Coffer(BackupView),
    /// DC/OS's view (`?view=dcos`).
    Dcos(DcosBackupView),
}

/// Shows one backup with the components the token may see, and its
/// restores (newest first, each with `component_status`).
#[utoipa::path(get, path = "/api/v1/backups/{id}", params(("id" = String, Path, description = "Backup id"), ShowQuery),
    security(("bearer" = ["backups:read"])),
    extensions(("x-coffer-components" = json!("each"))),
    responses((status = 200, body = BackupShown), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn show_backup(
    State(state): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
    Query(q): Query<ShowQuery>,
) -> ApiResult<Json<BackupShown>> {
    let dcos = match q.view.as_deref() {
        None | Some("coffer") => false,
        Some("dcos") => true,
        Some(other) => {
            return Err(ServiceError::Invalid(format!(
                "view: {other:?} is not a view; use coffer (the default) or dcos"
            ))
            .into());
        }
    };
    let st = Arc::clone(&state);
    let mut d = blocking(move || backups::show(&st, &p, &id)).await?;
    let restores: Vec<RestoreView> = std::mem::take(&mut d.restores)
        .into_iter()
        .map(|r| restore_view(&state, r))
        .collect();
    let mut view = backup_view(&state, d);
    view.restores = Some(restores);
    Ok(Json(if dcos {
        BackupShown::Dcos(DcosBackupView::new(BackupParts {
            component_status: view
                .components
                .iter()
                .map(|c| (c.name.clone(), c.status.clone()))
                .collect(),
            restores: view.restores.unwrap_or_default(),
            id: view.id,
            label: view.label,
            status: view.status,
            error: view.error,
            created_at: view.created_at,
            finished_at: view.finished_at,
        }))
    } else {
        BackupShown::Coffer(view)
    }))
}

/// A backup's log: hooks, components, timings, tool errors (only for a
/// token that may see every component of the backup).
#[utoipa::path(get, path = "/api/v1/backups/{id}/log", params(("id" = String, Path, description = "Backup id")),
    security(("bearer" = ["backups:read"])),
    extensions(("x-coffer-components" = json!("each"))),
    responses((status = 200, body = JobLog), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn backup_log(
    State(state): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<JobLog>> {
    let bid = id.clone();
    let lines = blocking(move || backups::log(&state, &p, &bid)).await?;
    Ok(job_log(id, lines))
}

/// Cancels a running backup: it ends `ERROR` ("cancelled") and keeps nothing.
#[utoipa::path(post, path = "/api/v1/backups/{id}/cancel", params(("id" = String, Path, description = "Backup id")),
    security(("bearer" = ["backups:write"])),
    extensions(("x-coffer-components" = json!("each"))),
    responses((status = 202, body = Accepted), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn cancel_backup(
    State(state): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    let bid = id.clone();
    blocking(move || backups::cancel(&state, &p, &bid)).await?;
    Ok(accepted(id, BackupStatus::BackingUp.as_str()))
}

/// Pins or unpins a backup (the token needs `backups:delete` on every
/// component of it: pinning decides what retention may delete).
#[utoipa::path(put, path = "/api/v1/backups/{id}", params(("id" = String, Path, description = "Backup id")),
    request_body = BackupChange,
    security(("bearer" = ["backups:delete"])),
    extensions(("x-coffer-components" = json!("each"))),
    responses((status = 200, body = BackupView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn change_backup(
    State(state): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<BackupChange>,
) -> ApiResult<Json<BackupView>> {
    let st = Arc::clone(&state);
    let d = blocking(move || backups::set_pinned(&st, &p, &id, req.pinned)).await?;
    Ok(Json(backup_view(&state, d)))
}

/// Deletes a backup from its repository and the catalog (the token needs
/// `backups:delete` on every component of it).
#[utoipa::path(delete, path = "/api/v1/backups/{id}", params(("id" = String, Path, description = "Backup id")),
    security(("bearer" = ["backups:delete"])),
    extensions(("x-coffer-components" = json!("each"))),
    responses((status = 200, body = Deleted), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_backup(
    State(state): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Deleted>> {
    let bid = id.clone();
    let removed = blocking(move || backups::delete(&state, &p, &bid)).await?;
    Ok(Json(Deleted {
        id,
        snapshots_removed: removed,
        space: "the backup's snapshots are gone; the data only they used is freed by the next \
                prune (POST /api/v1/targets/{name}/prune), which is two-phase (unused packs are \
                marked, then deleted after a grace period) and takes the repository's exclusive \
                lock"
            .into(),
    }))
}
