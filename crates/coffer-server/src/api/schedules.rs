//! `/api/v1/schedules`: list, show, create, change, delete and run now.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::access::Principal;
use crate::api::common::{Accepted, ApiResult, JsonBody, RawBody, blocking, time};
use crate::api::error::ErrorBody;
use crate::catalog::ScheduleRunRow;
use crate::schedules::service::{self, ScheduleDetail};
use crate::schedules::spec::ScheduleSpec;
use crate::state::Shared;

/// What one due time of a schedule became.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleRunView {
    /// The due time (RFC 3339; the oldest of a missed range).
    pub due_at: String,
    /// The newest due time of a missed range.
    pub last_due_at: Option<String>,
    /// How many due times a missed range holds.
    pub missed_count: Option<u64>,
    /// When the scheduler decided (on its clock).
    pub decided_at: String,
    /// `STARTED`, `SKIPPED`, `MISSED` or `FAILED` (could not start).
    pub outcome: String,
    /// The backup it started.
    pub backup_id: Option<String>,
    /// Why (late, skipped, missed, failed; or who started it by hand).
    pub reason: Option<String>,
    /// Started with `POST /api/v1/schedules/{name}/run`.
    pub by_hand: bool,
}

fn run_view(r: ScheduleRunRow) -> ScheduleRunView {
    ScheduleRunView {
        due_at: time(r.due_at),
        last_due_at: r.last_due_at.map(time),
        missed_count: r.missed_count,
        decided_at: time(r.decided_at),
        outcome: r.outcome.to_string(),
        backup_id: r.backup_id,
        reason: r.reason,
        by_hand: r.by_hand,
    }
}

/// A schedule's newest run, with the state of the backup it started.
#[derive(Debug, Serialize, ToSchema)]
pub struct LastRunView {
    /// The run.
    #[serde(flatten)]
    pub run: ScheduleRunView,
    /// `BACKING_UP`, `READY` or `ERROR`, when it started a backup.
    pub backup_status: Option<String>,
}

/// A schedule's newest READY backup.
#[derive(Debug, Serialize, ToSchema)]
pub struct LastSuccessView {
    /// The backup.
    pub backup_id: String,
    /// When it ended (RFC 3339).
    pub finished_at: String,
}

/// A schedule.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleView {
    /// Its name.
    pub name: String,
    /// Declared in coffer.toml: read-only over the API.
    pub declared: bool,
    /// Not paused.
    pub enabled: bool,
    /// Its spec as given (secrets shown as `***`).
    pub spec: ScheduleSpec,
    /// Creation (RFC 3339, on the scheduler's clock).
    pub created_at: String,
    /// When it is next due, jitter included (RFC 3339); none when paused.
    pub next_run: Option<String>,
    /// Its newest run.
    pub last_run: Option<LastRunView>,
    /// Its newest READY backup.
    pub last_success: Option<LastSuccessView>,
    /// Its newest runs, newest first (one schedule shown only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs: Option<Vec<ScheduleRunView>>,
}

fn schedule_view(d: ScheduleDetail, with_runs: bool) -> ScheduleView {
    ScheduleView {
        name: d.row.name,
        declared: d.row.declared,
        enabled: d.spec.enabled.unwrap_or(true),
        created_at: time(d.row.created_at),
        next_run: d.next_run.map(time),
        last_run: d.last_run.map(|(r, backup_status)| LastRunView {
            run: run_view(r),
            backup_status,
        }),
        last_success: d.last_success.map(|(backup_id, at)| LastSuccessView {
            backup_id,
            finished_at: time(at),
        }),
        runs: with_runs.then(|| d.runs.into_iter().map(run_view).collect()),
        spec: d.spec,
    }
}

/// The schedules, and where the scheduler stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleList {
    /// The time (RFC 3339) up to which the scheduler has decided every due
    /// time; none before its first look.
    pub scheduler_clock: Option<String>,
    /// The scheduler follows a test's fake clock (`COFFER_FAKE_CLOCK_FILE`).
    pub fake_clock: bool,
    /// By name: those whose components the token may all see.
    pub schedules: Vec<ScheduleView>,
}

/// Lists schedules with their next run, last run and last success.
#[utoipa::path(get, path = "/api/v1/schedules",
    security(("bearer" = ["schedules:read"])),
    extensions(("x-coffer-components" = json!("filter"))),
    responses((status = 200, body = ScheduleList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_schedules(
    State(state): State<Shared>,
    p: Principal,
) -> ApiResult<Json<ScheduleList>> {
    let st = Arc::clone(&state);
    let list = blocking(move || service::list(&st, &p)).await?;
    Ok(Json(ScheduleList {
        scheduler_clock: state.scheduler.evaluated().map(|t| t.to_string()),
        fake_clock: state.clock.is_fake(),
        schedules: list.into_iter().map(|d| schedule_view(d, false)).collect(),
    }))
}

/// Shows a schedule with its newest 100 runs.
#[utoipa::path(get, path = "/api/v1/schedules/{name}", params(("name" = String, Path, description = "Schedule name")),
    security(("bearer" = ["schedules:read"])),
    extensions(("x-coffer-components" = json!("each"))),
    responses((status = 200, body = ScheduleView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn show_schedule(
    State(state): State<Shared>,
    p: Principal,
    Path(name): Path<String>,
) -> ApiResult<Json<ScheduleView>> {
    let d = blocking(move || service::show(&state, &p, &name)).await?;
    Ok(Json(schedule_view(d, true)))
}

/// Creates a schedule. Its runs act with no more than the token holds:
/// `backups:write` on its components (a token limited to components must
/// name them), `export` for an export, `backups:delete` for retention.
#[utoipa::path(post, path = "/api/v1/schedules", request_body = ScheduleSpec,
    security(("bearer" = ["schedules:write"])),
    extensions(("x-coffer-components" = json!("each"))),
    responses((status = 201, body = ScheduleView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_schedule(
    State(state): State<Shared>,
    p: Principal,
    JsonBody(spec): JsonBody<ScheduleSpec>,
) -> ApiResult<(StatusCode, Json<ScheduleView>)> {
    let d = blocking(move || service::create(&state, &p, spec)).await?;
    Ok((StatusCode::CREATED, Json(schedule_view(d, false))))
}

/// Replaces a schedule's spec (`name` may be left out); its history stays.
/// 409 for one declared in coffer.toml.
#[utoipa::path(put, path = "/api/v1/schedules/{name}", params(("name" = String, Path, description = "Schedule name")),
    request_body = ScheduleSpec,
    security(("bearer" = ["schedules:write"])),
    extensions(("x-coffer-components" = json!("each"))),
    responses((status = 200, body = ScheduleView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_schedule(
    State(state): State<Shared>,
    p: Principal,
    Path(name): Path<String>,
    body: RawBody,
) -> ApiResult<Json<ScheduleView>> {
    let spec: ScheduleSpec = body.json_named(&name)?;
    let d = blocking(move || service::update(&state, &p, &name, spec)).await?;
    Ok(Json(schedule_view(d, false)))
}

/// Deletes a schedule and its run history (its backups stay). 409 for one
/// declared in coffer.toml.
#[utoipa::path(delete, path = "/api/v1/schedules/{name}", params(("name" = String, Path, description = "Schedule name")),
    security(("bearer" = ["schedules:write"])),
    extensions(("x-coffer-components" = json!("each"))),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_schedule(
    State(state): State<Shared>,
    p: Principal,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    blocking(move || service::delete(&state, &p, &name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Runs a schedule now (its export and retention follow as for a due
/// run): 202 with the backup's id. Needs `backups:write` on its
/// components; 409 while a run of it is going.
#[utoipa::path(post, path = "/api/v1/schedules/{name}/run", params(("name" = String, Path, description = "Schedule name")),
    security(("bearer" = ["backups:write"])),
    extensions(("x-coffer-components" = json!("each"))),
    responses((status = 202, body = Accepted), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn run_schedule(
    State(state): State<Shared>,
    p: Principal,
    Path(name): Path<String>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    let s = blocking(move || service::run_now(&state, &p, &name)).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            id: s.id,
            status: s.status.to_owned(),
            export_id: s.export_id,
        }),
    ))
}
