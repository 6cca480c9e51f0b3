//! Restores of stored backups: `POST /api/v1/backups/{id}/restore`, and
//! `/api/v1/restores/{id}` (show, log). Uploads are in [`super::uploads`].

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use coffer_model::access::RestoreStatus;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::Principal;
use crate::api::common::{
    Accepted, ApiResult, JobLog, JsonBody, ProgressView, accepted, blocking, job_log,
    progress_view, time,
};
use crate::api::error::ErrorBody;
use crate::jobs::restore::{self, RestoreRequest};
use crate::restores::{self, RestoreDetail};
use crate::state::Shared;

/// A component of a restore.
#[derive(Debug, Serialize, ToSchema)]
pub struct RestoreComponentView {
    /// Component name.
    pub name: String,
    /// `RESTORING`, `READY` or `ERROR`.
    pub status: String,
    /// Why it is `ERROR`.
    pub error: Option<String>,
    /// What the restore did (database created, keys copied, …).
    pub notes: Vec<String>,
    /// Start (RFC 3339).
    pub started_at: Option<String>,
    /// End (RFC 3339).
    pub finished_at: Option<String>,
    /// While it runs: how far it has got.
    pub progress: Option<ProgressView>,
}

/// A restore.
#[derive(Debug, Serialize, ToSchema)]
pub struct RestoreView {
    /// `restore-<uuid>`.
    pub id: String,
    /// The backup restored.
    pub backup_id: String,
    /// `RESTORING`, `READY` or `ERROR`.
    pub status: String,
    /// Why it is `ERROR` (or a tolerated post-hook failure).
    pub error: Option<String>,
    /// Start (RFC 3339).
    pub created_at: String,
    /// End (RFC 3339).
    pub finished_at: Option<String>,
    /// Each component's state by name (those the token may see): what
    /// `restores[].component_status.<name>` reads from a backup.
    pub component_status: BTreeMap<String, String>,
    /// Its components (those the token may see).
    pub components: Vec<RestoreComponentView>,
}

/// A list of restores.
#[derive(Debug, Serialize, ToSchema)]
pub struct RestoreList {
    /// Newest first.
    pub restores: Vec<RestoreView>,
}

/// Filters of the restore list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct RestoreQuery {
    /// Only the restores of this backup.
    pub backup: Option<String>,
}

/// A restore as the API shows it.
pub fn restore_view(state: &Shared, d: RestoreDetail) -> RestoreView {
    let r = d.restore;
    let components = d
        .components
        .into_iter()
        .map(|c| RestoreComponentView {
            progress: (c.status == RestoreStatus::Restoring)
                .then(|| progress_view(state, &r.id, &c.component))
                .flatten(),
            name: c.component,
            status: c.status.to_string(),
            error: c.error,
            notes: c.notes,
            started_at: c.started_at.map(time),
            finished_at: c.finished_at.map(time),
        })
        .collect::<Vec<RestoreComponentView>>();
    RestoreView {
        component_status: components
            .iter()
            .map(|c| (c.name.clone(), c.status.clone()))
            .collect(),
        id: r.id,
        backup_id: r.backup_id,
        status: r.status.to_string(),
        error: r.error,
        created_at: time(r.created_at),
        finished_at: r.finished_at.map(time),
        components,
    }
}

/// Restores a backup (all or some components, optionally elsewhere within
/// the override rules): 202 with the restore id; watch it with
/// GET /api/v1/restores/{id}.
#[utoipa::path(post, path = "/api/v1/backups/{id}/restore", params(("id" = String, Path, description = "Backup id")),
    request_body = RestoreRequest, security(("bearer" = ["restore"])),
    extensions(("x-coffer-components" = json!("each"))),
    responses((status = 202, body = Accepted), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_restore(
    State(state): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<RestoreRequest>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    let st = Arc::clone(&state);
    let rid = blocking(move || restore::start_from_backup(&st, &p, &id, req)).await?;
    Ok(accepted(rid, RestoreStatus::Restoring.as_str()))
}

/// Lists restores, newest first (optionally of one backup): those with at
/// least one component the token may see, showing only those components.
#[utoipa::path(get, path = "/api/v1/restores", params(RestoreQuery),
    security(("bearer" = ["backups:read"])),
    extensions(("x-coffer-components" = json!("filter"))),
    responses((status = 200, body = RestoreList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_restores(
    State(state): State<Shared>,
    p: Principal,
    Query(q): Query<RestoreQuery>,
) -> ApiResult<Json<RestoreList>> {
    let st = Arc::clone(&state);
    let list = blocking(move || restores::list(&st, &p, q.backup.as_deref())).await?;
    Ok(Json(RestoreList {
        restores: list.into_iter().map(|d| restore_view(&state, d)).collect(),
    }))
}

/// Shows a restore with each component's state (those the token may see).
#[utoipa::path(get, path = "/api/v1/restores/{id}", params(("id" = String, Path, description = "Restore id")),
    security(("bearer" = ["backups:read"])),
    extensions(("x-coffer-components" = json!("each"))),
    responses((status = 200, body = RestoreView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn show_restore(
    State(state): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<RestoreView>> {
    let st = Arc::clone(&state);
    let d = blocking(move || restores::show(&st, &p, &id)).await?;
    Ok(Json(restore_view(&state, d)))
}

/// A restore's log, hook output included (only for a token that may see
/// every component of it).
#[utoipa::path(get, path = "/api/v1/restores/{id}/log", params(("id" = String, Path, description = "Restore id")),
    security(("bearer" = ["backups:read"])),
    extensions(("x-coffer-components" = json!("each"))),
    responses((status = 200, body = JobLog), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn restore_log(
    State(state): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<JobLog>> {
    let rid = id.clone();
    let lines = blocking(move || restores::log(&state, &p, &rid)).await?;
    Ok(job_log(id, lines))
}
