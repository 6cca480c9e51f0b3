//! Restore drills: `POST /api/v1/backups/{id}/drills` starts one,
//! `GET /api/v1/drills/{id}` follows it and shows what each component proved.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::access::Principal;
use crate::api::common::{Accepted, ApiResult, accepted, blocking, time};
use crate::api::error::ErrorBody;
use crate::catalog::{DrillRow, DrillStatus};
use crate::jobs::drill;
use crate::state::Shared;

/// One component of a drill.
#[derive(Debug, Serialize, ToSchema)]
pub struct ComponentDrillView {
    /// The component.
    pub component: String,
    /// `READY` (restored and proved), `ERROR`, or `SKIPPED` (its kind
    /// cannot be drilled, or it is sealed).
    pub status: String,
    /// Seconds from the start of its restore to the end of its proof: its
    /// measured recovery time.
    pub seconds: f64,
    /// What was proved.
    pub proof: Option<String>,
    /// Why it failed or was skipped.
    pub error: Option<String>,
}

/// A restore drill.
#[derive(Debug, Serialize, ToSchema)]
pub struct DrillView {
    /// `drill-<uuid>`.
    pub id: String,
    /// The backup drilled.
    pub backup_id: String,
    /// The schedule that asked for it.
    pub schedule: Option<String>,
    /// `DRILLING`, `READY` (every drillable component proved; the backup is
    /// marked `verified_at`) or `ERROR`.
    pub status: String,
    /// Why it is `ERROR`, naming the backup and component.
    pub error: Option<String>,
    /// The whole drill, in seconds: the measured recovery time (RTO).
    pub seconds: Option<f64>,
    /// Start (RFC 3339).
    pub created_at: String,
    /// End (RFC 3339).
    pub finished_at: Option<String>,
    /// Per component, once it ended.
    pub components: Vec<ComponentDrillView>,
}

#[derive(serde::Deserialize)]
struct StoredComponent {
    component: String,
    status: String,
    seconds: f64,
    proof: Option<String>,
    error: Option<String>,
}

pub(crate) fn drill_view(d: DrillRow) -> DrillView {
    let components = d
        .report
        .as_deref()
        .and_then(|r| serde_json::from_str::<Vec<StoredComponent>>(r).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|c| ComponentDrillView {
            component: c.component,
            status: c.status,
            seconds: c.seconds,
            proof: c.proof,
            error: c.error,
        })
        .collect();
    DrillView {
        id: d.id,
        backup_id: d.backup_id,
        schedule: d.schedule,
        status: d.status.to_string(),
        error: d.error,
        seconds: d.seconds,
        created_at: time(d.created_at),
        finished_at: d.finished_at.map(time),
        components,
    }
}

/// Starts a restore drill of a READY backup: each component restored into
/// a scratch place beside its live one (a directory of the staging area, a
/// `coffer_drill_…` database on the same server) — never the live one —
/// proved, and removed. 202 with the drill's id.
#[utoipa::path(post, path = "/api/v1/backups/{id}/drills", params(("id" = String, Path, description = "Backup id")),
    security(("bearer" = ["restore"])),
    extensions(("x-coffer-components" = json!("each"))),
    responses((status = 202, body = Accepted), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_drill(
    State(state): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    let st = Arc::clone(&state);
    let drill = blocking(move || drill::start(&st, &p, &id, None)).await?;
    Ok(accepted(drill, DrillStatus::Drilling.as_str()))
}

/// Shows a drill: its state, then what each component proved and how long
/// it took.
#[utoipa::path(get, path = "/api/v1/drills/{id}", params(("id" = String, Path, description = "Drill id")),
    security(("bearer" = ["backups:read"])),
    extensions(("x-coffer-components" = json!("each"))),
    responses((status = 200, body = DrillView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn show_drill(
    State(state): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<DrillView>> {
    let d = blocking(move || drill::show(&state, &p, &id)).await?;
    Ok(Json(drill_view(d)))
}
