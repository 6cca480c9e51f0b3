//! `/api/v1/targets`: list, show, add (after Validate), change, validate,
//! rebuild the catalog from, remove.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use coffer_targets::validate::ValidationReport;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::Principal;
use crate::api::common::{ApiResult, JsonBody, blocking, time};
use crate::api::error::{ErrorBody, ValidationFailed};
use crate::error::ServiceError;
use crate::escrow::StateReport;
use crate::rebuild::RebuildReport;
use crate::state::{AppState, Shared};
use crate::targets::{self, NewTarget, SAME_DISK_WARNING, TargetChange, TargetInfo, is_same_disk};

/// A target, without its secrets.
#[derive(Debug, Serialize, ToSchema)]
pub struct TargetView {
    /// Name.
    pub name: String,
    /// `local`, `s3`, `sftp`, `ftp`.
    pub kind: String,
    /// `own` or `attach`.
    pub mode: String,
    /// Used when a backup names no target.
    pub default: bool,
    /// The settings, literal secrets shown as `***`.
    #[schema(value_type = Object)]
    pub spec: serde_json::Value,
    /// Backups recorded on it.
    pub backups: u64,
    /// Why this target alone does not protect against a disaster.
    pub warning: Option<String>,
    /// Declared under `[[targets]]` in coffer.toml: read-only over the API.
    pub declared: bool,
    /// The last probe (every `alerts.probe_every_secs`; absent until the
    /// first since the server started).
    pub health: Option<TargetHealthView>,
}

/// What the last probe of a target found.
#[derive(Debug, Serialize, ToSchema)]
pub struct TargetHealthView {
    /// When it ran (RFC 3339).
    pub probed_at: String,
    /// Whether the repository could be listed.
    pub reachable: bool,
    /// Why not.
    pub error: Option<String>,
    /// The repository's size in bytes.
    pub repository_bytes: Option<u64>,
    /// Bytes free on a local target's file system.
    pub free_bytes: Option<u64>,
}

fn target_view(state: &AppState, t: TargetInfo) -> Result<TargetView, ServiceError> {
    let health = state
        .target_health
        .last(&t.row.name)
        .map(|h| TargetHealthView {
            probed_at: time(h.at),
            reachable: h.error.is_none(),
            error: h.error,
            repository_bytes: h.repository_bytes,
            free_bytes: h.free_bytes,
        });
    Ok(TargetView {
        health,
        spec: serde_json::to_value(&t.spec.kind).map_err(ServiceError::internal)?,
        warning: is_same_disk(&t.row.kind).then(|| SAME_DISK_WARNING.to_owned()),
        name: t.row.name,
        kind: t.row.kind,
        mode: t.row.mode.to_string(),
        default: t.row.is_default,
        declared: t.row.declared,
        backups: t.backups,
    })
}

/// Lists targets.
#[utoipa::path(get, path = "/api/v1/targets", security(("bearer" = ["targets:read"])),
    responses((status = 200, body = Vec<TargetView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_targets(
    State(state): State<Shared>,
    p: Principal,
) -> ApiResult<Json<Vec<TargetView>>> {
    let views = blocking(move || {
        targets::list(&state, &p)?
            .into_iter()
            .map(|t| target_view(&state, t))
            .collect()
    })
    .await?;
    Ok(Json(views))
}

/// Shows a target.
#[utoipa::path(get, path = "/api/v1/targets/{name}", params(("name" = String, Path, description = "Target name")),
    security(("bearer" = ["targets:read"])),
    responses((status = 200, body = TargetView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn show_target(
    State(state): State<Shared>,
    p: Principal,
    Path(name): Path<String>,
) -> ApiResult<Json<TargetView>> {
    let view = blocking(move || target_view(&state, targets::show(&state, &p, &name)?)).await?;
    Ok(Json(view))
}

/// Add a target.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTarget {
    /// Unique name.
    pub name: String,
    /// `{"kind": "s3", "endpoint": …}` — the same settings as `[[targets]]`
    /// in coffer.toml, secrets as literal strings only.
    #[schema(value_type = Object)]
    pub spec: serde_json::Value,
    /// The repository password. For a new repository, omit it to have one
    /// generated (returned once). For an existing repository, required.
    #[serde(default)]
    pub repository_password: Option<String>,
    /// `own` or `attach` (default: `own` for a new repository, `attach` for an existing one).
    #[serde(default)]
    pub mode: Option<String>,
    /// Make it the default target (with `confirm_default`).
    #[serde(default)]
    pub default: bool,
    /// Confirms that later backups naming no target go to this one.
    #[serde(default)]
    pub confirm_default: bool,
}

/// The answer to adding a target.
#[derive(Debug, Serialize, ToSchema)]
pub struct TargetCreated {
    /// The target.
    pub target: TargetView,
    /// The Validate report that allowed it.
    #[schema(value_type = Object)]
    pub validation: ValidationReport,
    /// A generated repository password: shown this once. Store it offline.
    pub repository_password: Option<String>,
    /// What to do with it.
    pub notice: Option<String>,
    /// For an existing repository: the backups found in it and added to the catalog.
    pub rebuilt: Option<RebuildReport>,
}

const PASSWORD_NOTICE: &str = "This repository password is shown once. Store it offline (a password \
    manager, a safe): with it, a new installation or plain `restic` reads every backup in this \
    target even if this server and its data directory are lost. Coffer keeps it sealed with the \
    server key and never returns it again.";

/// Adds a target after its Validate probe passes (422 with the report otherwise).
#[utoipa::path(post, path = "/api/v1/targets", request_body = CreateTarget, security(("bearer" = ["targets:write"])),
    responses((status = 201, body = TargetCreated), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ValidationFailed)))]
pub async fn create_target(
    State(state): State<Shared>,
    p: Principal,
    JsonBody(req): JsonBody<CreateTarget>,
) -> ApiResult<(StatusCode, Json<TargetCreated>)> {
    let req = NewTarget {
        name: req.name,
        spec: req.spec,
        repository_password: req.repository_password,
        mode: req.mode,
        default: req.default,
        confirm_default: req.confirm_default,
    };
    let added = blocking(move || {
        let added = targets::add(&state, &p, req)?;
        Ok(TargetCreated {
            target: target_view(&state, added.target)?,
            validation: added.validation,
            notice: added
                .repository_password
                .as_ref()
                .map(|_| PASSWORD_NOTICE.to_owned()),
            repository_password: added.repository_password,
            rebuilt: added.rebuilt,
        })
    })
    .await?;
    Ok((StatusCode::CREATED, Json(added)))
}

/// Runs a target's Validate probe (writes and removes at most 16 MiB of test data).
#[utoipa::path(post, path = "/api/v1/targets/{name}/validate", params(("name" = String, Path, description = "Target name")),
    security(("bearer" = ["targets:write"])),
    responses((status = 200, description = "The report", body = Object), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn validate_target(
    State(state): State<Shared>,
    p: Principal,
    Path(name): Path<String>,
) -> ApiResult<Json<ValidationReport>> {
    Ok(Json(
        blocking(move || targets::validate(&state, &p, &name)).await?,
    ))
}

/// Settings to validate before they are saved.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProbeTarget {
    /// The name it would be saved under.
    pub name: String,
    /// The settings, as in [`CreateTarget`].
    #[schema(value_type = Object)]
    pub spec: serde_json::Value,
}

/// Runs the Validate probe of settings without saving them (writes and
/// removes at most 16 MiB of test data): 200 with the report, `ok` false
/// when a step failed; 422 when the settings cannot be read or are not allowed.
#[utoipa::path(post, path = "/api/v1/targets/validate", request_body = ProbeTarget,
    security(("bearer" = ["targets:write"])),
    responses((status = 200, description = "The report", body = Object), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn probe_target(
    State(state): State<Shared>,
    p: Principal,
    JsonBody(req): JsonBody<ProbeTarget>,
) -> ApiResult<Json<ValidationReport>> {
    Ok(Json(
        blocking(move || targets::probe(&state, &p, &req.name, &req.spec)).await?,
    ))
}

/// Change how the server uses a target.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTarget {
    /// `own` (take it over: this server writes, deletes and prunes) or `attach` (read only).
    #[serde(default)]
    pub mode: Option<String>,
    /// Make it the default target (`true` only, with `confirm_default`).
    #[serde(default)]
    pub default: Option<bool>,
    /// Confirms that later backups naming no target go to this one.
    #[serde(default)]
    pub confirm_default: bool,
    /// New settings of the same kind (e.g. rotated credentials, a new endpoint).
    /// They must pass Validate and reach the same repository (its password opens it).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub spec: Option<serde_json::Value>,
}

/// Changes a target's settings or mode, or makes it the default.
#[utoipa::path(put, path = "/api/v1/targets/{name}", params(("name" = String, Path, description = "Target name")),
    request_body = UpdateTarget, security(("bearer" = ["targets:write"])),
    responses((status = 200, body = TargetView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_target(
    State(state): State<Shared>,
    p: Principal,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<UpdateTarget>,
) -> ApiResult<Json<TargetView>> {
    let change = TargetChange {
        mode: req.mode,
        default: req.default,
        confirm_default: req.confirm_default,
        spec: req.spec,
    };
    let view =
        blocking(move || target_view(&state, targets::change(&state, &p, &name, change)?)).await?;
    Ok(Json(view))
}

/// Adds to the catalog every backup found in the target's repository that it
/// lacks (`READY` when complete, `ERROR` with the numbers when components are missing).
#[utoipa::path(post, path = "/api/v1/targets/{name}/rebuild", params(("name" = String, Path, description = "Target name")),
    security(("bearer" = ["targets:write"])),
    responses((status = 200, body = RebuildReport), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn rebuild_target(
    State(state): State<Shared>,
    p: Principal,
    Path(name): Path<String>,
) -> ApiResult<Json<RebuildReport>> {
    let st = Arc::clone(&state);
    Ok(Json(
        blocking(move || targets::rebuild(&st, &p, &name)).await?,
    ))
}

/// Restores the server state escrowed in the target's repository (targets
/// with their credentials, schedules, notification destinations, users and
/// tokens) into this installation: what it lacks, nothing it has replaced.
#[utoipa::path(post, path = "/api/v1/targets/{name}/state", params(("name" = String, Path, description = "Target name")),
    security(("bearer" = ["admin"])),
    extensions(("x-coffer-components" = json!("all"))),
    responses((status = 200, body = StateReport), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn restore_state(
    State(state): State<Shared>,
    p: Principal,
    Path(name): Path<String>,
) -> ApiResult<Json<StateReport>> {
    Ok(Json(
        blocking(move || crate::escrow::restore(&state, &p, &name)).await?,
    ))
}

/// Removes a target from the catalog (its repository and backups stay where they are).
#[utoipa::path(delete, path = "/api/v1/targets/{name}", params(("name" = String, Path, description = "Target name")),
    security(("bearer" = ["targets:write"])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_target(
    State(state): State<Shared>,
    p: Principal,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    blocking(move || targets::remove(&state, &p, &name)).await?;
    Ok(StatusCode::NO_CONTENT)
}
