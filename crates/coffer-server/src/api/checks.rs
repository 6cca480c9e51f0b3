//! Repository checks: `POST /api/v1/targets/{name}/check` starts one,
//! `GET /api/v1/checks/{id}` shows what it found.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::access::Principal;
use crate::api::common::{Accepted, ApiResult, RawBody, accepted, blocking, time};
use crate::api::error::ErrorBody;
use crate::jobs::check::{self, CheckFindings, CheckRequest};
use crate::state::Shared;

/// A check.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckView {
    /// `check-<uuid>`.
    pub id: String,
    /// The target checked.
    pub target: String,
    /// The schedule that asked for it.
    pub schedule: Option<String>,
    /// What part of the packs' content was read (none: structure only).
    pub read_data: Option<String>,
    /// `CHECKING`, `READY` (nothing wrong) or `ERROR`.
    pub status: String,
    /// What was wrong, in one line: the damaged packs and affected backups.
    pub error: Option<String>,
    /// Start (RFC 3339).
    pub created_at: String,
    /// End (RFC 3339).
    pub finished_at: Option<String>,
    /// Once it ended.
    pub findings: Option<CheckFindings>,
}

/// Starts a check of the target's repository (structure; with `read_data`
/// also the packs' content). 202 with the check's id. The body may be
/// omitted.
#[utoipa::path(post, path = "/api/v1/targets/{name}/check", params(("name" = String, Path, description = "Target name")),
    request_body(content = Option<CheckRequest>, description = "optional"),
    security(("bearer" = ["maintenance"])),
    responses((status = 202, body = Accepted), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn check_target(
    State(state): State<Shared>,
    p: Principal,
    Path(name): Path<String>,
    body: RawBody,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    let req: CheckRequest = body.json_or_default()?;
    let st = Arc::clone(&state);
    let id = blocking(move || check::start(&st, &p, &name, req, None)).await?;
    Ok(accepted(id, "CHECKING"))
}

/// Shows a check: its state, then its errors, warnings, damaged packs and
/// the backups they hurt.
#[utoipa::path(get, path = "/api/v1/checks/{id}", params(("id" = String, Path, description = "Check id")),
    security(("bearer" = ["maintenance"])),
    responses((status = 200, body = CheckView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn show_check(
    State(state): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<CheckView>> {
    let c = blocking(move || check::show(&state, &p, &id)).await?;
    Ok(Json(CheckView {
        findings: c
            .report
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok()),
        id: c.id,
        target: c.target,
        schedule: c.schedule,
        read_data: c.read_data,
        status: c.status,
        error: c.error,
        created_at: time(c.created_at),
        finished_at: c.finished_at.map(time),
    }))
}
