//! The HTTP API under `/api/v1`, plus `/healthz`, `/metrics` and the OpenAPI
//! document. docs/api.md describes every endpoint with the scope it needs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use coffer_components::RestoreOptions;
use coffer_engine::{AgeIdentity, EngineError, RestoreMode, SnapshotFilter};
use coffer_model::access::{BackupStatus, RestoreStatus, Scope};
use coffer_model::component::{ComponentKind, ComponentSpec, reveal_secrets};
use coffer_model::target::{TargetKind, TargetSpec};
use coffer_model::{BackupId, ComponentName, Label};
use coffer_targets::OpenTarget;
use coffer_targets::validate::{StepStatus, ValidateOptions, ValidationReport};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::auth::{NewToken, Principal, authenticate, create_token};
use crate::catalog::{BackupComponentRow, BackupRow, RestoreRow, TargetRow, TokenRow, now};
use crate::error::{ApiError, ErrorBody, from_rejection};
use crate::jobs::{
    self, BackupJob, ItemSource, Jobs, RestoreItem, RestoreJob, backup_key, component_key,
};
use crate::rebuild::RebuildReport;
use crate::state::{KindName, MODE_ATTACH, MODE_OWN, SAME_DISK_WARNING, Shared, is_same_disk};
use crate::upload_api;

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// A JSON body whose rejections (bad syntax, unknown fields, too large) use
/// the API's error shape.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T> FromRequest<S> for JsonBody<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Json::<T>::from_request(req, state)
            .await
            .map(|Json(v)| JsonBody(v))
            .map_err(from_rejection)
    }
}

impl FromRequestParts<Shared> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Shared,
    ) -> Result<Self, Self::Rejection> {
        let header = match parts.headers.get(header::AUTHORIZATION) {
            None => None,
            Some(v) => Some(v.to_str().map_err(|_| {
                ApiError::unauthorized("malformed Authorization header: not ASCII")
            })?),
        };
        authenticate(&state.catalog, &state.login, header)
    }
}

/// RFC 3339 from Unix seconds.
pub(crate) fn time(secs: i64) -> String {
    jiff::Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| secs.to_string())
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(ApiError::internal(format!("a blocking task failed: {e}"))))
}

// ------------------------------------------------------------------ views

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

/// How far a running component has got.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProgressView {
    /// Bytes read (backup) or written (restore) so far.
    pub bytes_done: u64,
    /// Total bytes, when known in advance.
    pub bytes_total: Option<u64>,
    /// Files done so far.
    pub files_done: u64,
    /// Total files, when known in advance.
    pub files_total: Option<u64>,
}

fn progress_view(p: Option<coffer_engine::ProgressInfo>) -> Option<ProgressView> {
    p.map(|p| ProgressView {
        bytes_done: p.bytes_done,
        bytes_total: p.bytes_total,
        files_done: p.files_done,
        files_total: p.files_total,
    })
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
    /// Its components.
    pub components: Vec<BackupComponentView>,
    /// Its exports (a backup requested with a `password` links the export
    /// made of it here).
    pub exports: Vec<crate::export_api::ExportView>,
}

/// A backup as `p` may see it: its exports only with the `export` scope on
/// every component in them.
fn backup_view(
    state: &Shared,
    p: &Principal,
    b: BackupRow,
    comps: Vec<BackupComponentRow>,
) -> ApiResult<BackupView> {
    let exports = if p.scopes.contains(&Scope::Export) {
        state
            .catalog
            .exports_of_backup(&b.id)?
            .into_iter()
            .filter(|e| crate::export_api::may_see(p, e).is_ok())
            .map(crate::export_api::export_view)
            .collect()
    } else {
        Vec::new()
    };
    let components: Vec<BackupComponentView> = comps
        .into_iter()
        .map(|c| BackupComponentView {
            progress: (c.status == BackupStatus::BackingUp)
                .then(|| progress_view(state.jobs.progress(&b.id, &c.component)))
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
    Ok(BackupView {
        bytes: components.iter().filter_map(|c| c.bytes).sum(),
        bytes_added: components.iter().filter_map(|c| c.bytes_added).sum(),
        label: b.label,
        target: b.target,
        status: b.status.to_string(),
        error: b.error,
        created_at: time(b.created_at),
        finished_at: b.finished_at.map(time),
        duration_secs: b.finished_at.map(|f| f - b.created_at),
        exports,
        id: b.id,
        components,
    })
}

/// Accepted job.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// The job's id.
    pub id: String,
    /// Its first state.
    pub status: String,
}

/// A list of backups.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackupList {
    /// Newest first.
    pub backups: Vec<BackupView>,
}

/// A log line.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogLine {
    /// When (RFC 3339).
    pub at: String,
    /// What.
    pub line: String,
}

/// A job's log.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobLog {
    /// The job.
    pub id: String,
    /// Oldest first.
    pub lines: Vec<LogLine>,
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
    /// Its components.
    pub components: Vec<RestoreComponentView>,
}

fn restore_view(
    state: &Shared,
    r: RestoreRow,
    comps: Vec<crate::catalog::RestoreComponentRow>,
) -> RestoreView {
    let running = |c: &crate::catalog::RestoreComponentRow| {
        (c.status == RestoreStatus::Restoring)
            .then(|| progress_view(state.jobs.progress(&r.id, &c.component)))
            .flatten()
    };
    let components = comps
        .into_iter()
        .map(|c| RestoreComponentView {
            progress: running(&c),
            name: c.component,
            status: c.status.to_string(),
            error: c.error,
            notes: c.notes,
            started_at: c.started_at.map(time),
            finished_at: c.finished_at.map(time),
        })
        .collect();
    RestoreView {
        id: r.id,
        backup_id: r.backup_id,
        status: r.status.to_string(),
        error: r.error,
        created_at: time(r.created_at),
        finished_at: r.finished_at.map(time),
        components,
    }
}

// ------------------------------------------------------------------ health, metrics

/// Server health.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
    /// Coffer's version.
    pub version: &'static str,
    /// Problems an operator should fix (e.g. backups only on the local disk).
    pub warnings: Vec<String>,
}

/// Health and configuration warnings. No authentication.
#[utoipa::path(get, path = "/healthz", responses((status = 200, body = Health)))]
async fn healthz(State(state): State<Shared>) -> ApiResult<Json<Health>> {
    let targets = state.catalog.targets()?;
    let mut warnings = Vec::new();
    if !targets.is_empty() && targets.iter().all(|t| is_same_disk(&t.kind)) {
        warnings.push(SAME_DISK_WARNING.to_owned());
    }
    if state.config.components.is_empty() {
        warnings.push("no components are configured: add [[components]] to the config file".into());
    }
    Ok(Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        warnings,
    }))
}

/// Prometheus metrics. No authentication (bind to loopback or firewall it).
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format")))]
async fn metrics(State(state): State<Shared>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

// ------------------------------------------------------------------ components

/// A configured component.
#[derive(Debug, Serialize, ToSchema)]
pub struct ComponentView {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: String,
    /// Sensitive components need the `sensitive` scope.
    pub sensitive: bool,
}

/// Lists the configured components the token may see.
#[utoipa::path(get, path = "/api/v1/components", security(("bearer" = [])),
    responses((status = 200, body = Vec<ComponentView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_components(
    State(state): State<Shared>,
    p: Principal,
) -> ApiResult<Json<Vec<ComponentView>>> {
    p.require(Scope::BackupsRead)?;
    Ok(Json(
        state
            .config
            .components
            .iter()
            .filter(|c| {
                p.components
                    .as_ref()
                    .is_none_or(|a| a.contains(c.name.as_str()))
            })
            .map(|c| ComponentView {
                name: c.name.to_string(),
                kind: c.kind.name().to_owned(),
                sensitive: c.sensitive,
            })
            .collect(),
    ))
}

// ------------------------------------------------------------------ backups

/// Start a backup.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBackup {
    /// 3–25 characters of `[A-Za-z0-9_.-]`, not starting with `..`.
    /// Required, except with `password` (then `api-backup`).
    #[serde(default)]
    pub label: Option<String>,
    /// Terraform Enterprise style: once the backup is READY, export it
    /// encrypted with this password (at least 12 characters); the export
    /// is linked from the backup. Needs the `export` scope.
    #[serde(default)]
    pub password: Option<String>,
    /// Components to back up (default: every configured one the token may touch).
    #[serde(default)]
    pub components: Option<Vec<String>>,
    /// Target name (default: the default target).
    #[serde(default)]
    pub target: Option<String>,
}

/// Starts a backup: 202 with its id; watch it with GET /api/v1/backups/{id}.
#[utoipa::path(post, path = "/api/v1/backups", request_body = CreateBackup, security(("bearer" = [])),
    responses((status = 202, body = Accepted), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 507, body = ErrorBody)))]
async fn create_backup(
    State(state): State<Shared>,
    p: Principal,
    JsonBody(req): JsonBody<CreateBackup>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    p.require(Scope::BackupsWrite)?;
    let label = match (&req.label, &req.password) {
        (Some(l), _) => l.clone(),
        (None, Some(_)) => TFE_DEFAULT_LABEL.to_owned(),
        (None, None) => {
            return Err(ApiError::invalid(
                "label: required (3 to 25 characters of A-Z a-z 0-9 _ . -)",
            ));
        }
    };
    let label = Label::new(&label).map_err(|e| ApiError::invalid(e.to_string()))?;
    let specs = pick_components(&state, &p, Scope::BackupsWrite, req.components.as_deref())?;
    // The export that follows: checked now, so a 403 or 422 comes before any work.
    let export = match req.password {
        None => None,
        Some(pw) => {
            p.require(Scope::Export)?;
            let (protection, _) = crate::export_api::protection_of(Some(pw), None)?;
            for s in specs.iter().filter(|s| !s.sensitive) {
                p.require_component(Scope::Export, s.name.as_str(), false)?;
            }
            if specs.iter().all(|s| s.sensitive) {
                return Err(ApiError::invalid(
                    "only sensitive components were chosen: they are never in a password export",
                ));
            }
            Some(protection)
        }
    };
    let target = match req.target {
        Some(t) => state
            .catalog
            .target(&t)?
            .ok_or_else(|| ApiError::invalid(format!("no target named {t:?}")))?,
        None => {
            let name = state
                .catalog
                .default_target()?
                .ok_or_else(|| ApiError::invalid("there is no default target: name one"))?;
            state.target_row(&name)?
        }
    };
    if target.mode != MODE_OWN {
        return Err(ApiError::conflict(format!(
            "target {} is attached read-only (mode attach): another installation owns it. \
             Take it over with PUT /api/v1/targets/{} and mode \"own\" only if that installation is gone",
            target.name, target.name
        )));
    }
    // Walks source directories: off the async threads.
    let (specs, target) = {
        let st = Arc::clone(&state);
        blocking(move || preflight(&st, &specs, &target).map(|()| (specs, target))).await?
    };
    let id = BackupId::generate(&label);
    let keys = specs
        .iter()
        .map(|s| component_key(s.name.as_str()))
        .collect();
    let reservation = Jobs::reserve(&state, id.as_str(), keys)?;
    let row = BackupRow {
        id: id.to_string(),
        label: label.to_string(),
        target: target.name.clone(),
        status: BackupStatus::BackingUp,
        error: None,
        component_count: u32::try_from(specs.len()).unwrap_or(u32::MAX),
        created_at: now(),
        finished_at: None,
    };
    let comps: Vec<(String, String)> = specs
        .iter()
        .map(|s| (s.name.to_string(), s.kind.name().to_owned()))
        .collect();
    state.catalog.insert_backup(&row, &comps)?;
    let export_row = export.as_ref().map(|_| {
        let names = specs
            .iter()
            .filter(|s| !s.sensitive)
            .map(|s| s.name.to_string())
            .collect();
        crate::export_api::new_export_row(id.as_str(), false, "password", names)
    });
    if let Some(e) = &export_row {
        state.catalog.insert_export(e)?;
        state
            .catalog
            .log(&e.id, &format!("waiting for backup {id} to be READY"));
    }
    let job = BackupJob {
        id: id.clone(),
        target: target.name,
        components: specs,
    };
    let st = Arc::clone(&state);
    tokio::spawn(async move {
        jobs::run_backup(Arc::clone(&st), job, reservation).await;
        if let (Some(row), Some(protection)) = (export_row, export) {
            export_after_backup(&st, row, protection);
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            id: id.to_string(),
            status: BackupStatus::BackingUp.to_string(),
        }),
    ))
}

/// The label of a backup requested Terraform Enterprise style (a password, no label).
pub const TFE_DEFAULT_LABEL: &str = "api-backup";

/// Starts the export a backup was requested with, once the backup ended;
/// an ERROR backup makes the export ERROR too.
fn export_after_backup(
    state: &Shared,
    row: crate::catalog::ExportRow,
    protection: coffer_export::Protection,
) {
    let fail = |reason: String| {
        state.catalog.log(&row.id, &reason);
        if let Err(e) = state.catalog.finish_export(&row.id, Err(&reason)) {
            tracing::error!(export = %row.id, "recording the export's end: {e}");
        }
    };
    let backup = match state.catalog.backup(&row.backup_id) {
        Ok(Some(b)) => b,
        Ok(None) => return fail(format!("backup {} is gone", row.backup_id)),
        Err(e) => return fail(e.to_string()),
    };
    if backup.status != BackupStatus::Ready {
        return fail(format!(
            "backup {} ended {}: nothing to export{}",
            backup.id,
            backup.status,
            backup
                .error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        ));
    }
    let comps = match state.catalog.backup_components(&backup.id) {
        Ok(c) => c
            .into_iter()
            .filter(|c| row.components.contains(&c.component))
            .collect(),
        Err(e) => return fail(e.to_string()),
    };
    match crate::export_api::reserve_for_export(state, &row, &backup) {
        Ok(r) => crate::export_api::launch_export(state, r, &row, backup, comps, protection),
        Err(e) => fail(e.message),
    }
}

/// The components a request names (all configured ones by default), each
/// checked against the token.
fn pick_components(
    state: &Shared,
    p: &Principal,
    scope: Scope,
    names: Option<&[String]>,
) -> ApiResult<Vec<ComponentSpec>> {
    let all = &state.config.components;
    let specs: Vec<ComponentSpec> = match names {
        None => all
            .iter()
            .filter(|c| {
                p.components
                    .as_ref()
                    .is_none_or(|a| a.contains(c.name.as_str()))
            })
            .cloned()
            .collect(),
        Some(names) => {
            let mut seen = BTreeSet::new();
            let mut out = Vec::new();
            for n in names {
                if !seen.insert(n.as_str()) {
                    return Err(ApiError::invalid(format!("component {n:?} is named twice")));
                }
                let spec = state.config.component(n).ok_or_else(|| {
                    ApiError::invalid(format!(
                        "unknown component {n:?}: configured components are {}",
                        all.iter()
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
        return Err(ApiError::invalid(
            "no components to back up: configure [[components]] in the config file (or name some)",
        ));
    }
    for s in &specs {
        p.require_component(scope, s.name.as_str(), s.sensitive)?;
    }
    Ok(specs)
}

/// Refuses with 507 when the staging area or a local target cannot hold the
/// backup: the sources' size times `server.preflight_factor` (2 by default,
/// Auth0's rule) plus `server.preflight_reserve_mib`.
fn preflight(state: &Shared, specs: &[ComponentSpec], target: &TargetRow) -> ApiResult<()> {
    std::fs::create_dir_all(&state.config.staging_dir).map_err(|e| {
        ApiError::internal(format!(
            "creating staging directory {}: {e}",
            state.config.staging_dir.display()
        ))
    })?;
    coffer_components::check_staging_space(specs, &state.config.staging_dir)
        .map_err(ApiError::insufficient_storage)?;
    if target.kind == "local" {
        let spec = state.target_spec(target)?;
        if let TargetKind::Local(l) = &spec.kind {
            let sources: u64 = specs
                .iter()
                .filter_map(coffer_components::source_size)
                .sum();
            let factor = state.config.preflight_factor;
            let reserve = state.config.preflight_reserve;
            let need = (sources as f64 * factor) as u64 + reserve;
            let free = coffer_targets::free_space_at(&l.path).unwrap_or(u64::MAX);
            if sources > 0 && free < need {
                return Err(ApiError::insufficient_storage(format!(
                    "target {} ({}) has {free} bytes free; this backup may need {need} bytes \
                     ({factor} × the sources' {sources} bytes, plus a {} MiB reserve)",
                    target.name,
                    l.path.display(),
                    reserve >> 20
                )));
            }
        }
    }
    Ok(())
}

/// Filters of the backup list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct BackupQuery {
    /// Only this label.
    pub label: Option<String>,
    /// Only this state.
    pub status: Option<String>,
}

/// Lists backups, newest first.
#[utoipa::path(get, path = "/api/v1/backups", params(BackupQuery), security(("bearer" = [])),
    responses((status = 200, body = BackupList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_backups(
    State(state): State<Shared>,
    p: Principal,
    Query(q): Query<BackupQuery>,
) -> ApiResult<Json<BackupList>> {
    p.require(Scope::BackupsRead)?;
    let status = q
        .status
        .as_deref()
        .map(str::parse::<BackupStatus>)
        .transpose()
        .map_err(ApiError::invalid)?;
    let rows = state.catalog.backups(q.label.as_deref(), status)?;
    let mut backups = Vec::with_capacity(rows.len());
    for b in rows {
        let comps = state.catalog.backup_components(&b.id)?;
        backups.push(backup_view(&state, &p, b, comps)?);
    }
    Ok(Json(BackupList { backups }))
}

pub(crate) fn find_backup_row(state: &Shared, id: &str) -> ApiResult<BackupRow> {
    state
        .catalog
        .backup(id)?
        .ok_or_else(|| ApiError::not_found(format!("no backup with id {id:?}")))
}

/// Shows one backup with its components.
#[utoipa::path(get, path = "/api/v1/backups/{id}", params(("id" = String, Path, description = "Backup id")),
    security(("bearer" = [])),
    responses((status = 200, body = BackupView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn show_backup(
    State(state): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<BackupView>> {
    p.require(Scope::BackupsRead)?;
    let b = find_backup_row(&state, &id)?;
    let comps = state.catalog.backup_components(&id)?;
    Ok(Json(backup_view(&state, &p, b, comps)?))
}

/// A backup's log: hooks, components, timings, tool errors.
#[utoipa::path(get, path = "/api/v1/backups/{id}/log", params(("id" = String, Path, description = "Backup id")),
    security(("bearer" = [])),
    responses((status = 200, body = JobLog), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn backup_log(
    State(state): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<JobLog>> {
    p.require(Scope::BackupsRead)?;
    find_backup_row(&state, &id)?;
    job_log(&state, id)
}

fn job_log(state: &Shared, id: String) -> ApiResult<Json<JobLog>> {
    let lines = state
        .catalog
        .job_log(&id)?
        .into_iter()
        .map(|(at, line)| LogLine { at: time(at), line })
        .collect();
    Ok(Json(JobLog { id, lines }))
}

/// Cancels a running backup: it ends `ERROR` ("cancelled") and keeps nothing.
#[utoipa::path(post, path = "/api/v1/backups/{id}/cancel", params(("id" = String, Path, description = "Backup id")),
    security(("bearer" = [])),
    responses((status = 202, body = Accepted), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn cancel_backup(
    State(state): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    p.require(Scope::BackupsWrite)?;
    let b = find_backup_row(&state, &id)?;
    if b.status != BackupStatus::BackingUp || !state.jobs.cancel(&id) {
        return Err(ApiError::conflict(format!(
            "backup {id} is {}, not running",
            b.status
        )));
    }
    state
        .catalog
        .log(&id, &format!("cancel requested by token {}", p.id));
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            id,
            status: BackupStatus::BackingUp.to_string(),
        }),
    ))
}

/// Deletes a backup from its repository and the catalog.
#[utoipa::path(delete, path = "/api/v1/backups/{id}", params(("id" = String, Path, description = "Backup id")),
    security(("bearer" = [])),
    responses((status = 200, body = Deleted), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_backup(
    State(state): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Deleted>> {
    p.require(Scope::BackupsDelete)?;
    let b = find_backup_row(&state, &id)?;
    if b.status == BackupStatus::BackingUp {
        return Err(ApiError::conflict(format!(
            "backup {id} is being backed up: cancel it first (POST /api/v1/backups/{id}/cancel)"
        )));
    }
    let target = state.target_row(&b.target)?;
    if target.mode != MODE_OWN {
        return Err(ApiError::conflict(format!(
            "target {} is attached read-only: only the installation that owns it deletes backups",
            target.name
        )));
    }
    // Held while deleting, so no restore or export of it starts meanwhile.
    let reservation = Jobs::reserve(&state, &format!("delete-{id}"), vec![backup_key(&id)])?;
    let st = Arc::clone(&state);
    let bid = id.clone();
    let removed = blocking(move || {
        let _reservation = reservation;
        let repo = st.repo(&b.target)?;
        let snaps = repo
            .snapshots(&SnapshotFilter {
                backup_id: Some(bid.clone()),
                ..SnapshotFilter::default()
            })
            .map_err(|e| ApiError::upstream(e.to_string()))?;
        let ids: Vec<String> = snaps.into_iter().map(|s| s.id).collect();
        let n = if ids.is_empty() {
            0
        } else {
            repo.forget(&ids).map_err(|e| match e {
                EngineError::Locked { .. } => ApiError::conflict(e.to_string()),
                e => ApiError::upstream(e.to_string()),
            })?
        };
        st.catalog.delete_backup(&bid)?;
        Ok(n)
    })
    .await?;
    tracing::info!(backup = %id, snapshots = removed, "backup deleted");
    Ok(Json(Deleted {
        id,
        snapshots_removed: removed,
        space: "the backup's snapshots are gone; the data only they used is freed by the next \
                prune, which is two-phase (unused packs are marked, then deleted after a grace \
                period) and takes the repository's exclusive lock"
            .into(),
    }))
}

// ------------------------------------------------------------------ restores

/// How to treat what the destination already has.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreOptionsBody {
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

/// Start a restore.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRestore {
    /// Components to restore (default: every component of the backup).
    #[serde(default)]
    pub components: Option<Vec<String>>,
    /// Per component, settings that replace the configured ones — another
    /// path, database, bucket or server (restore into a new installation).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub overrides: BTreeMap<String, serde_json::Value>,
    /// Options for every component.
    #[serde(default)]
    pub options: RestoreOptionsBody,
    /// The age identity (`AGE-SECRET-KEY-1…`, or an identity file's text)
    /// that opens sealed (sensitive) components. Used for this restore only:
    /// never stored or logged.
    #[serde(default, deserialize_with = "identity_field")]
    #[schema(value_type = Option<String>)]
    pub age_identity: Option<Arc<AgeIdentity>>,
}

pub(crate) fn identity_field<'de, D: serde::Deserializer<'de>>(
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

pub(crate) fn restore_options(o: RestoreOptionsBody) -> ApiResult<RestoreOptions> {
    let mode = match o.mode.as_deref() {
        None | Some("refuse") => RestoreMode::RefuseNonEmpty,
        Some("overwrite") => RestoreMode::Overwrite,
        Some("mirror") => RestoreMode::Mirror,
        Some(other) => {
            return Err(ApiError::invalid(format!(
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

/// The configured spec of `name` with `overrides` laid over its settings.
pub(crate) fn overridden(
    spec: &ComponentSpec,
    over: &serde_json::Value,
) -> ApiResult<ComponentSpec> {
    let name = spec.name.as_str();
    let serde_json::Value::Object(fields) = over else {
        return Err(ApiError::invalid(format!(
            "overrides.{name} must be an object of settings, e.g. {{\"database\": \"new_db\"}}"
        )));
    };
    let mut base =
        reveal_secrets(|| serde_json::to_value(&spec.kind)).map_err(ApiError::internal)?;
    let serde_json::Value::Object(base_fields) = &mut base else {
        return Err(ApiError::internal("a component spec is not an object"));
    };
    for (k, v) in fields {
        if k == "kind" && v.as_str() != Some(spec.kind.name()) {
            return Err(ApiError::invalid(format!(
                "overrides.{name}.kind: a {} component restores into a {} destination only",
                spec.kind.name(),
                spec.kind.name()
            )));
        }
        base_fields.insert(k.clone(), v.clone());
    }
    let kind: ComponentKind = serde_json::from_value(base)
        .map_err(|e| ApiError::invalid(format!("overrides.{name}: {e}")))?;
    let out = ComponentSpec {
        name: spec.name.clone(),
        sensitive: spec.sensitive,
        kind,
    };
    out.validate()
        .map_err(|e| ApiError::invalid(format!("overrides.{name}: {e}")))?;
    Ok(out)
}

/// Restores a backup (all or some components, optionally elsewhere): 202 with
/// the restore id; watch it with GET /api/v1/restores/{id}.
#[utoipa::path(post, path = "/api/v1/backups/{id}/restore", params(("id" = String, Path, description = "Backup id")),
    request_body = CreateRestore, security(("bearer" = [])),
    responses((status = 202, body = Accepted), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_restore(
    State(state): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<CreateRestore>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    p.require(Scope::Restore)?;
    let b = find_backup_row(&state, &id)?;
    if b.status != BackupStatus::Ready {
        return Err(ApiError::conflict(format!(
            "backup {id} is {}: only READY backups are restored",
            b.status
        )));
    }
    let comps = state.catalog.backup_components(&id)?;
    let wanted: Vec<&BackupComponentRow> = match &req.components {
        None => comps.iter().collect(),
        Some(names) => {
            let mut out = Vec::new();
            for n in names {
                out.push(comps.iter().find(|c| &c.component == n).ok_or_else(|| {
                    ApiError::invalid(format!(
                        "backup {id} has no component {n:?}; it has {}",
                        comps
                            .iter()
                            .map(|c| c.component.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?);
            }
            out
        }
    };
    if let Some(extra) = req
        .overrides
        .keys()
        .find(|k| !wanted.iter().any(|c| &c.component == *k))
    {
        return Err(ApiError::invalid(format!(
            "overrides.{extra}: that component is not being restored"
        )));
    }
    let options = restore_options(req.options)?;
    let mut items = Vec::new();
    for c in &wanted {
        let spec = state.config.component(&c.component).ok_or_else(|| {
            ApiError::invalid(format!(
                "component {:?} is not configured on this server: add it to [[components]] \
                 to say where it goes",
                c.component
            ))
        })?;
        p.require_component(Scope::Restore, &c.component, spec.sensitive)?;
        let dest = match req.overrides.get(&c.component) {
            Some(o) => overridden(spec, o)?,
            None => spec.clone(),
        };
        let snapshot_id = c.snapshot_id.clone().ok_or_else(|| {
            ApiError::internal(format!("component {} has no snapshot", c.component))
        })?;
        items.push(RestoreItem {
            dest,
            source: ItemSource::Snapshot(snapshot_id),
        });
    }
    check_sealed(&state, &p, &b.target, &id, &items, req.age_identity.clone()).await?;
    launch_restore(
        &state,
        RestoreJob {
            id: format!("restore-{}", uuid::Uuid::new_v4()),
            backup_id: id,
            target: Some(b.target),
            items,
            options,
            identity: req.age_identity,
            spool: None,
        },
    )
}

/// Reserves the restored components (and a backup restored from a target),
/// records the restore and starts it: 202 with its id.
pub(crate) fn launch_restore(
    state: &Shared,
    job: RestoreJob,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    let mut keys: Vec<String> = job
        .items
        .iter()
        .map(|i| component_key(i.dest.name.as_str()))
        .collect();
    if job.target.is_some() {
        keys.push(backup_key(&job.backup_id));
    }
    let reservation = Jobs::reserve(state, &job.id, keys)?;
    let row = RestoreRow {
        id: job.id.clone(),
        backup_id: job.backup_id.clone(),
        status: RestoreStatus::Restoring,
        error: None,
        created_at: now(),
        finished_at: None,
    };
    let names: Vec<String> = job.items.iter().map(|i| i.dest.name.to_string()).collect();
    state.catalog.insert_restore(&row, &names)?;
    let id = job.id.clone();
    tokio::spawn(jobs::run_restore(Arc::clone(state), job, reservation));
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            id,
            status: RestoreStatus::Restoring.to_string(),
        }),
    ))
}

/// Before anything (a pre-restore hook included) runs: every sealed
/// component's snapshot must open with the request's identity, and sealed
/// data needs the `sensitive` scope even if the configuration no longer
/// marks the component sensitive.
async fn check_sealed(
    state: &Shared,
    p: &Principal,
    target: &str,
    backup_id: &str,
    items: &[RestoreItem],
    identity: Option<Arc<AgeIdentity>>,
) -> ApiResult<()> {
    let snaps = backup_snapshots(state, target, backup_id).await?;
    let sealed: Vec<(String, String)> = items
        .iter()
        .filter_map(|i| match &i.source {
            ItemSource::Snapshot(sid) if snaps.iter().any(|s| &s.id == sid && s.sealed) => {
                Some((i.dest.name.to_string(), sid.clone()))
            }
            _ => None,
        })
        .collect();
    for (name, _) in &sealed {
        p.require_component(Scope::Restore, name, true)?;
    }
    if sealed.is_empty() {
        return Ok(());
    }
    let Some(identity) = identity else {
        let names: Vec<&str> = sealed.iter().map(|(n, _)| n.as_str()).collect();
        return Err(ApiError::invalid(format!(
            "components {} are sealed to an age recipient: send the matching identity as \
             \"age_identity\": \"AGE-SECRET-KEY-1…\" (nothing was restored)",
            names.join(", ")
        )));
    };
    let (state, target) = (Arc::clone(state), target.to_owned());
    blocking(move || {
        let repo = state.repo(&target)?.with_identity(identity);
        for (name, snapshot) in &sealed {
            repo.check_identity(snapshot)
                .map_err(|e| ApiError::invalid(format!("component {name:?}: {e}")))?;
        }
        Ok(())
    })
    .await
}

/// Every snapshot of `backup_id` in `target`'s repository.
pub(crate) async fn backup_snapshots(
    state: &Shared,
    target: &str,
    backup_id: &str,
) -> ApiResult<Vec<coffer_engine::SnapshotInfo>> {
    let (st, target, id) = (Arc::clone(state), target.to_owned(), backup_id.to_owned());
    blocking(move || {
        st.repo(&target)?
            .snapshots(&SnapshotFilter {
                backup_id: Some(id),
                ..SnapshotFilter::default()
            })
            .map_err(|e| ApiError::upstream(format!("listing the backup's snapshots: {e}")))
    })
    .await
}

fn find_restore(state: &Shared, id: &str) -> ApiResult<RestoreView> {
    let (r, comps) = state
        .catalog
        .restore(id)?
        .ok_or_else(|| ApiError::not_found(format!("no restore with id {id:?}")))?;
    Ok(restore_view(state, r, comps))
}

/// Shows a restore with each component's state.
#[utoipa::path(get, path = "/api/v1/restores/{id}", params(("id" = String, Path, description = "Restore id")),
    security(("bearer" = [])),
    responses((status = 200, body = RestoreView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn show_restore(
    State(state): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<RestoreView>> {
    p.require(Scope::BackupsRead)?;
    Ok(Json(find_restore(&state, &id)?))
}

/// A restore's log, hook output included.
#[utoipa::path(get, path = "/api/v1/restores/{id}/log", params(("id" = String, Path, description = "Restore id")),
    security(("bearer" = [])),
    responses((status = 200, body = JobLog), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn restore_log(
    State(state): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<JobLog>> {
    p.require(Scope::BackupsRead)?;
    find_restore(&state, &id)?;
    job_log(&state, id)
}

// ------------------------------------------------------------------ targets

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
}

fn target_view(state: &Shared, row: &TargetRow) -> ApiResult<TargetView> {
    let spec = state.target_spec(row)?;
    Ok(TargetView {
        name: row.name.clone(),
        kind: row.kind.clone(),
        mode: row.mode.clone(),
        default: row.is_default,
        spec: serde_json::to_value(&spec.kind).map_err(ApiError::internal)?,
        backups: state.catalog.backups_on_target(&row.name)?,
        warning: is_same_disk(&row.kind).then(|| SAME_DISK_WARNING.to_owned()),
    })
}

/// Lists targets.
#[utoipa::path(get, path = "/api/v1/targets", security(("bearer" = [])),
    responses((status = 200, body = Vec<TargetView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_targets(
    State(state): State<Shared>,
    p: Principal,
) -> ApiResult<Json<Vec<TargetView>>> {
    p.require(Scope::TargetsRead)?;
    let rows = state.catalog.targets()?;
    rows.iter()
        .map(|r| target_view(&state, r))
        .collect::<ApiResult<Vec<_>>>()
        .map(Json)
}

/// Shows a target.
#[utoipa::path(get, path = "/api/v1/targets/{name}", params(("name" = String, Path, description = "Target name")),
    security(("bearer" = [])),
    responses((status = 200, body = TargetView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn show_target(
    State(state): State<Shared>,
    p: Principal,
    Path(name): Path<String>,
) -> ApiResult<Json<TargetView>> {
    p.require(Scope::TargetsRead)?;
    let row = state.target_row(&name)?;
    Ok(Json(target_view(&state, &row)?))
}

/// Add a target.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTarget {
    /// Unique name.
    pub name: String,
    /// `{"kind": "s3", "endpoint": …}` — the same settings as `[[targets]]` in coffer.toml.
    #[schema(value_type = Object)]
    pub spec: serde_json::Value,
    /// The repository password. For a new repository, omit it to have one
    /// generated (returned once). For an existing repository, required.
    #[serde(default)]
    pub repository_password: Option<String>,
    /// `own` or `attach` (default: `own` for a new repository, `attach` for an existing one).
    #[serde(default)]
    pub mode: Option<String>,
    /// Make it the default target.
    #[serde(default)]
    pub default: bool,
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

/// A failed validation: 422 with the report.
#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationFailed {
    /// `validation_failed`.
    pub error: &'static str,
    /// Which step failed and why.
    pub message: String,
    /// Every step.
    #[schema(value_type = Object)]
    pub validation: ValidationReport,
}

fn parse_target(name: &str, spec: &serde_json::Value) -> ApiResult<TargetSpec> {
    let name = ComponentName::new(name).map_err(|e| ApiError::invalid(e.to_string()))?;
    let kind: TargetKind = serde_json::from_value(spec.clone())
        .map_err(|e| ApiError::invalid(format!("spec: {e}")))?;
    coffer_model::target::validate_kind(&kind)
        .map_err(|e| ApiError::invalid(format!("spec: {e}")))?;
    Ok(TargetSpec { name, kind })
}

const PASSWORD_NOTICE: &str = "This repository password is shown once. Store it offline (a password \
    manager, a safe): with it, a new installation or plain `restic` reads every backup in this \
    target even if this server and its data directory are lost. Coffer keeps it sealed with the \
    server key and never returns it again.";

/// Adds a target after its Validate probe passes (422 with the report otherwise).
#[utoipa::path(post, path = "/api/v1/targets", request_body = CreateTarget, security(("bearer" = [])),
    responses((status = 201, body = TargetCreated), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ValidationFailed)))]
async fn create_target(
    State(state): State<Shared>,
    p: Principal,
    JsonBody(req): JsonBody<CreateTarget>,
) -> ApiResult<Response> {
    p.require(Scope::TargetsWrite)?;
    let spec = parse_target(&req.name, &req.spec)?;
    if state.catalog.target(spec.name.as_str())?.is_some() {
        return Err(ApiError::conflict(format!(
            "a target named {} exists",
            spec.name
        )));
    }
    if let Some(m) = req.mode.as_deref()
        && m != MODE_OWN
        && m != MODE_ATTACH
    {
        return Err(ApiError::invalid(format!("mode {m:?}: use own or attach")));
    }
    let st = Arc::clone(&state);
    blocking(move || {
        let (target, report) = match open_validated(&spec)? {
            Ok(ok) => ok,
            Err(failed) => return Ok(failed),
        };
        let storage = target.storage();
        let exists = coffer_engine::Repo::exists(&*storage)
            .map_err(|e| ApiError::upstream(e.to_string()))?;
        let (password, generated, mode, existed) = if exists {
            let Some(pw) = req.repository_password else {
                return Err(ApiError::invalid(format!(
                    "target {} already holds a repository: give its repository_password to attach it",
                    spec.name
                )));
            };
            coffer_engine::Repo::open(storage, &pw).map_err(|e| ApiError::invalid(e.to_string()))?;
            (pw, None, req.mode.unwrap_or_else(|| MODE_ATTACH.to_owned()), true)
        } else {
            let (pw, generated) = match req.repository_password {
                Some(pw) => (pw, None),
                None => {
                    let pw = crate::keys::random_secret("");
                    (pw.clone(), Some(pw))
                }
            };
            coffer_engine::Repo::init(storage, &pw).map_err(|e| ApiError::invalid(e.to_string()))?;
            (pw, generated, req.mode.unwrap_or_else(|| MODE_OWN.to_owned()), false)
        };
        let first = st.catalog.targets()?.is_empty();
        let row = st.seal_target(&spec, &password, &mode, first)?;
        st.catalog.insert_target(&row)?;
        if req.default {
            st.catalog.set_default_target(&row.name)?;
        }
        tracing::info!(target = %row.name, kind = %row.kind, mode = %row.mode, "target added");
        // An existing repository: list what it holds at once.
        let rebuilt = if existed {
            Some(crate::rebuild::rebuild_target(&st, &row.name)?)
        } else {
            None
        };
        let view = target_view(&st, &row)?;
        Ok((
            StatusCode::CREATED,
            Json(TargetCreated {
                target: view,
                validation: report,
                notice: generated.as_ref().map(|_| PASSWORD_NOTICE.to_owned()),
                repository_password: generated,
                rebuilt,
            }),
        )
            .into_response())
    })
    .await
}

/// Opens `spec` and runs its Validate probe: the target, or the 422 answer
/// with the report when a step failed.
fn open_validated(
    spec: &TargetSpec,
) -> ApiResult<Result<(OpenTarget, ValidationReport), Response>> {
    let target = OpenTarget::open(spec).map_err(|e| ApiError::invalid(e.to_string()))?;
    let report = target.validate(ValidateOptions::default());
    if !report.ok {
        return Ok(Err(validation_failed(report)));
    }
    Ok(Ok((target, report)))
}

fn validation_failed(report: ValidationReport) -> Response {
    let failed = report
        .steps
        .iter()
        .find(|s| s.status == StepStatus::Failed)
        .map(|s| format!("validation failed at step {}: {}", s.name, s.message))
        .unwrap_or_else(|| "validation failed".into());
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(ValidationFailed {
            error: "validation_failed",
            message: failed,
            validation: report,
        }),
    )
        .into_response()
}

/// Runs a target's Validate probe (writes and removes at most 16 MiB of test data).
#[utoipa::path(post, path = "/api/v1/targets/{name}/validate", params(("name" = String, Path, description = "Target name")),
    security(("bearer" = [])),
    responses((status = 200, description = "The report", body = Object), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn validate_target(
    State(state): State<Shared>,
    p: Principal,
    Path(name): Path<String>,
) -> ApiResult<Json<ValidationReport>> {
    p.require(Scope::TargetsWrite)?;
    let row = state.target_row(&name)?;
    let spec = state.target_spec(&row)?;
    blocking(move || {
        let target = OpenTarget::open(&spec).map_err(|e| ApiError::invalid(e.to_string()))?;
        Ok(Json(target.validate(ValidateOptions::default())))
    })
    .await
}

/// Change how the server uses a target.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTarget {
    /// `own` (take it over: this server writes, deletes and prunes) or `attach` (read only).
    #[serde(default)]
    pub mode: Option<String>,
    /// Make it the default target (`true` only).
    #[serde(default)]
    pub default: Option<bool>,
    /// New settings of the same kind (e.g. rotated credentials, a new endpoint).
    /// They must pass Validate and reach the same repository (its password opens it).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub spec: Option<serde_json::Value>,
}

/// Changes a target's settings or mode, or makes it the default.
#[utoipa::path(put, path = "/api/v1/targets/{name}", params(("name" = String, Path, description = "Target name")),
    request_body = UpdateTarget, security(("bearer" = [])),
    responses((status = 200, body = TargetView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_target(
    State(state): State<Shared>,
    p: Principal,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<UpdateTarget>,
) -> ApiResult<Response> {
    p.require(Scope::TargetsWrite)?;
    let mut row = state.target_row(&name)?;
    if let Some(spec) = &req.spec {
        let spec = parse_target(&name, spec)?;
        if spec.kind_name() != row.kind {
            return Err(ApiError::invalid(format!(
                "spec: target {name} is a {} target; add a new target for a {} one",
                row.kind,
                spec.kind_name()
            )));
        }
        let st = Arc::clone(&state);
        let current = row.clone();
        let checked = blocking(move || {
            let target = match open_validated(&spec)? {
                Ok((target, _)) => target,
                Err(failed) => return Ok(Err(failed)),
            };
            let password = st.target_password(&current)?;
            coffer_engine::Repo::open(target.storage(), &password).map_err(|e| {
                ApiError::invalid(format!(
                    "spec: the new settings do not reach this target's repository ({e}); \
                     add a new target for a different repository"
                ))
            })?;
            let sealed = st.seal_target(&spec, &password, &current.mode, current.is_default)?;
            Ok(Ok(sealed))
        })
        .await?;
        match checked {
            Err(response) => return Ok(response),
            Ok(sealed) => {
                state.catalog.update_target(&sealed)?;
                state.forget_repo(&name);
                tracing::info!(target = %name, by = %p.id, "target settings changed");
                row = state.target_row(&name)?;
            }
        }
    }
    if let Some(m) = req.mode {
        if m != MODE_OWN && m != MODE_ATTACH {
            return Err(ApiError::invalid(format!("mode {m:?}: use own or attach")));
        }
        if m != row.mode {
            tracing::warn!(target = %name, from = %row.mode, to = %m, by = %p.id, "target mode changed");
        }
        row.mode = m;
        state.catalog.update_target(&row)?;
    }
    match req.default {
        Some(true) => state.catalog.set_default_target(&name)?,
        Some(false) => {
            return Err(ApiError::invalid(
                "default: false is not accepted: make another target the default instead",
            ));
        }
        None => {}
    }
    let row = state.target_row(&name)?;
    Ok(Json(target_view(&state, &row)?).into_response())
}

/// Adds to the catalog every backup found in the target's repository that it
/// lacks (`READY` when complete, `ERROR` with the numbers when components are missing).
#[utoipa::path(post, path = "/api/v1/targets/{name}/rebuild", params(("name" = String, Path, description = "Target name")),
    security(("bearer" = [])),
    responses((status = 200, body = RebuildReport), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 502, body = ErrorBody)))]
async fn rebuild_target_route(
    State(state): State<Shared>,
    p: Principal,
    Path(name): Path<String>,
) -> ApiResult<Json<RebuildReport>> {
    p.require(Scope::TargetsWrite)?;
    state.target_row(&name)?;
    let st = Arc::clone(&state);
    blocking(move || crate::rebuild::rebuild_target(&st, &name).map(Json)).await
}

/// Removes a target from the catalog (its repository and backups stay where they are).
#[utoipa::path(delete, path = "/api/v1/targets/{name}", params(("name" = String, Path, description = "Target name")),
    security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_target(
    State(state): State<Shared>,
    p: Principal,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    p.require(Scope::TargetsWrite)?;
    let row = state.target_row(&name)?;
    let n = state.catalog.backups_on_target(&name)?;
    if n > 0 {
        return Err(ApiError::conflict(format!(
            "target {name} has {n} backups in the catalog: delete them first (the repository \
             itself is never deleted by Coffer)"
        )));
    }
    if row.is_default && state.catalog.targets()?.len() > 1 {
        return Err(ApiError::conflict(format!(
            "target {name} is the default: make another target the default first"
        )));
    }
    state.catalog.delete_target(&name)?;
    state.forget_repo(&name);
    Ok(StatusCode::NO_CONTENT)
}

// ------------------------------------------------------------------ tokens

/// A token, without its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    /// `tok-<uuid>`.
    pub id: String,
    /// What it is for.
    pub name: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// The components it is limited to (absent: all).
    pub components: Option<Vec<String>>,
    /// Expiry (RFC 3339).
    pub expires_at: Option<String>,
    /// Creation (RFC 3339).
    pub created_at: String,
    /// Revocation (RFC 3339).
    pub revoked_at: Option<String>,
}

fn token_view(t: TokenRow) -> TokenView {
    TokenView {
        id: t.id,
        name: t.name,
        scopes: t.scopes.into_iter().map(String::from).collect(),
        components: t.components,
        expires_at: t.expires_at.map(time),
        created_at: time(t.created_at),
        revoked_at: t.revoked_at.map(time),
    }
}

/// Create a token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// What it is for.
    pub name: String,
    /// Scopes: backups:read, backups:write, backups:delete, restore, export,
    /// targets:read, targets:write, tokens:admin, sensitive.
    pub scopes: Vec<String>,
    /// Limit it to these components.
    #[serde(default)]
    pub components: Option<Vec<String>>,
    /// Lifetime in seconds (default: no expiry).
    #[serde(default)]
    pub expires_in_secs: Option<u64>,
}

/// A new token and its secret (shown once).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenCreated {
    /// The token.
    pub token: TokenView,
    /// The secret to send as `Authorization: Bearer <secret>`. Shown once.
    pub secret: String,
}

/// Checks a token request; shared by the API and `coffer token create`.
pub fn new_token(
    name: &str,
    scopes: &[String],
    components: Option<Vec<String>>,
    expires_in_secs: Option<u64>,
    known_components: &[ComponentSpec],
) -> Result<NewToken, String> {
    if name.trim().is_empty() {
        return Err("name must not be empty".into());
    }
    if scopes.is_empty() {
        return Err("give at least one scope".into());
    }
    let scopes = scopes
        .iter()
        .map(|s| s.parse::<Scope>().map_err(|e| e.to_string()))
        .collect::<Result<BTreeSet<_>, _>>()?;
    if let Some(cs) = &components {
        if cs.is_empty() {
            return Err("components, when given, must name at least one component".into());
        }
        for c in cs {
            if !known_components.iter().any(|k| k.name.as_str() == c) {
                return Err(format!("unknown component {c:?}"));
            }
        }
    }
    Ok(NewToken {
        name: name.to_owned(),
        scopes,
        components: components.map(|c| c.into_iter().collect()),
        expires_in_secs,
    })
}

/// Creates a token. The secret is in the response, once.
#[utoipa::path(post, path = "/api/v1/tokens", request_body = CreateToken, security(("bearer" = [])),
    responses((status = 201, body = TokenCreated), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_token_route(
    State(state): State<Shared>,
    p: Principal,
    JsonBody(req): JsonBody<CreateToken>,
) -> ApiResult<(StatusCode, Json<TokenCreated>)> {
    p.require(Scope::TokensAdmin)?;
    let t = new_token(
        &req.name,
        &req.scopes,
        req.components,
        req.expires_in_secs,
        &state.config.components,
    )
    .map_err(ApiError::invalid)?;
    let (row, secret) = create_token(&state.catalog, &t)?;
    tracing::info!(token = %row.id, by = %p.id, "token created");
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            token: token_view(row),
            secret,
        }),
    ))
}

/// Lists tokens (never their secrets).
#[utoipa::path(get, path = "/api/v1/tokens", security(("bearer" = [])),
    responses((status = 200, body = Vec<TokenView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_tokens(State(state): State<Shared>, p: Principal) -> ApiResult<Json<Vec<TokenView>>> {
    p.require(Scope::TokensAdmin)?;
    Ok(Json(
        state
            .catalog
            .tokens()?
            .into_iter()
            .map(token_view)
            .collect(),
    ))
}

/// Revokes a token.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", params(("id" = String, Path, description = "Token id")),
    security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_token(
    State(state): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    p.require(Scope::TokensAdmin)?;
    if !state.catalog.revoke_token(&id)? {
        return Err(ApiError::not_found(format!("no token with id {id:?}")));
    }
    tracing::info!(token = %id, by = %p.id, "token revoked");
    Ok(StatusCode::NO_CONTENT)
}

// ------------------------------------------------------------------ users and login

/// Log in.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// User name.
    pub name: String,
    /// Password.
    pub password: String,
}

/// A login token.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// The JWT: send `Authorization: Bearer jwt:<token>`.
    pub token: String,
    /// Expiry (RFC 3339).
    pub expires_at: String,
}

/// Exchanges a user's name and password for a short-lived login token. No
/// authentication; 401 "wrong user name or password" for any mismatch.
#[utoipa::path(post, path = "/api/v1/auth/login", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
async fn login(
    State(state): State<Shared>,
    JsonBody(req): JsonBody<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    if let Err(wait) = state.login_throttle.check(&req.name) {
        return Err(ApiError::too_many_requests(format!(
            "too many failed logins for this name: retry in {} s",
            wait.as_secs().max(1)
        )));
    }
    let st = Arc::clone(&state);
    let name = req.name.clone();
    // argon2 is deliberately slow: off the async threads.
    let result = blocking(move || {
        crate::users::login(
            &st.catalog,
            &st.login,
            &req.name,
            &req.password,
            st.config.login_lifetime.as_secs(),
        )
    })
    .await;
    if result
        .as_ref()
        .is_err_and(|e| e.status == StatusCode::UNAUTHORIZED)
    {
        state.login_throttle.failed(&name);
    } else if result.is_ok() {
        state.login_throttle.succeeded(&name);
    }
    let l = result?;
    Ok(Json(LoginResponse {
        token: l.token,
        expires_at: time(l.expires_at),
    }))
}

/// A user (never the password).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// `usr-<uuid>`.
    pub id: String,
    /// Login name.
    pub name: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// The components the user is limited to (absent: all).
    pub components: Option<Vec<String>>,
    /// Creation (RFC 3339).
    pub created_at: String,
    /// When it was disabled (RFC 3339).
    pub disabled_at: Option<String>,
}

fn user_view(u: crate::catalog::UserRow) -> UserView {
    UserView {
        id: u.id,
        name: u.name,
        scopes: u.scopes.into_iter().map(String::from).collect(),
        components: u.components,
        created_at: time(u.created_at),
        disabled_at: u.disabled_at.map(time),
    }
}

/// Create a user.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// Login name.
    pub name: String,
    /// Password, at least 12 characters.
    pub password: String,
    /// Scopes, as for tokens.
    pub scopes: Vec<String>,
    /// Limit the user to these components.
    #[serde(default)]
    pub components: Option<Vec<String>>,
}

/// Checks a user request; shared by the API and `coffer user add`.
pub fn new_user(
    name: &str,
    password: String,
    scopes: &[String],
    components: Option<Vec<String>>,
    known_components: &[ComponentSpec],
) -> Result<crate::users::NewUser, String> {
    let t = new_token(name, scopes, components, None, known_components)?;
    Ok(crate::users::NewUser {
        name: t.name,
        password,
        scopes: t.scopes,
        components: t.components,
    })
}

/// Creates a user.
#[utoipa::path(post, path = "/api/v1/users", request_body = CreateUser, security(("bearer" = [])),
    responses((status = 201, body = UserView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_user_route(
    State(state): State<Shared>,
    p: Principal,
    JsonBody(req): JsonBody<CreateUser>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    p.require(Scope::TokensAdmin)?;
    let u = new_user(
        &req.name,
        req.password,
        &req.scopes,
        req.components,
        &state.config.components,
    )
    .map_err(ApiError::invalid)?;
    let st = Arc::clone(&state);
    let row = blocking(move || {
        crate::users::create_user(&st.catalog, &u).map_err(|e| match e {
            crate::users::UserError::Invalid(m) => ApiError::invalid(m),
            e @ crate::users::UserError::Exists(_) => ApiError::conflict(e.to_string()),
            crate::users::UserError::Catalog(e) => ApiError::internal(e),
        })
    })
    .await?;
    tracing::info!(user = %row.id, by = %p.id, "user created");
    Ok((StatusCode::CREATED, Json(user_view(row))))
}

/// Lists users.
#[utoipa::path(get, path = "/api/v1/users", security(("bearer" = [])),
    responses((status = 200, body = Vec<UserView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_users(State(state): State<Shared>, p: Principal) -> ApiResult<Json<Vec<UserView>>> {
    p.require(Scope::TokensAdmin)?;
    Ok(Json(
        state.catalog.users()?.into_iter().map(user_view).collect(),
    ))
}

/// Disables a user: no more logins, and its login tokens stop working at once.
#[utoipa::path(delete, path = "/api/v1/users/{id}", params(("id" = String, Path, description = "User id")),
    security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn disable_user(
    State(state): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    p.require(Scope::TokensAdmin)?;
    if !state.catalog.disable_user(&id)? {
        return Err(ApiError::not_found(format!("no user with id {id:?}")));
    }
    tracing::info!(user = %id, by = %p.id, "user disabled");
    Ok(StatusCode::NO_CONTENT)
}

// ------------------------------------------------------------------ router

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A Coffer token (`cft_…`), optionally prefixed `pat:`"))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document, generated from the handlers above.
#[derive(OpenApi)]
#[openapi(
    info(title = "Coffer API", description = "Backups and restores of self-hosted applications. See docs/api.md."),
    paths(
        healthz, metrics, list_components,
        create_backup, list_backups, show_backup, backup_log, cancel_backup, delete_backup,
        create_restore, show_restore, restore_log,
        list_targets, show_target, create_target, update_target, validate_target, rebuild_target_route, delete_target,
        create_token_route, list_tokens, revoke_token,
        login, create_user_route, list_users, disable_user,
        crate::export_api::create_export, crate::export_api::list_exports, crate::export_api::show_export,
        crate::export_api::download_export, crate::export_api::delete_export,
        upload_api::restore_upload, upload_api::component_download, upload_api::component_restore,
    ),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

async fn openapi() -> Response {
    match ApiDoc::openapi().to_json() {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint: see /api/v1/openapi.json")
}

/// The whole HTTP surface.
pub fn router(state: Shared) -> Router {
    let limit = state.config.max_json_bytes;
    // Uploads count their own bytes against `server.max_upload_mib`.
    let upload_limit = DefaultBodyLimit::disable();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/components", get(list_components))
        .route("/api/v1/backups", post(create_backup).get(list_backups))
        .route(
            "/api/v1/backups/{id}",
            get(show_backup).delete(delete_backup),
        )
        .route("/api/v1/backups/{id}/log", get(backup_log))
        .route("/api/v1/backups/{id}/cancel", post(cancel_backup))
        .route("/api/v1/backups/{id}/restore", post(create_restore))
        .route(
            "/api/v1/backups/{id}/exports",
            post(crate::export_api::create_export).get(crate::export_api::list_exports),
        )
        .route(
            "/api/v1/exports/{id}",
            get(crate::export_api::show_export).delete(crate::export_api::delete_export),
        )
        .route(
            "/api/v1/exports/{id}/download",
            get(crate::export_api::download_export),
        )
        .route(
            "/api/v1/restores",
            post(upload_api::restore_upload).layer(upload_limit),
        )
        // The Terraform Enterprise spelling.
        .route(
            "/api/v1/restore",
            post(upload_api::restore_upload).layer(upload_limit),
        )
        .route(
            "/api/v1/components/{name}/backup",
            get(upload_api::component_download),
        )
        .route(
            "/api/v1/components/{name}/restore",
            post(upload_api::component_restore).layer(upload_limit),
        )
        .route("/api/v1/restores/{id}", get(show_restore))
        .route("/api/v1/restores/{id}/log", get(restore_log))
        .route("/api/v1/targets", get(list_targets).post(create_target))
        .route(
            "/api/v1/targets/{name}",
            get(show_target).put(update_target).delete(delete_target),
        )
        .route("/api/v1/targets/{name}/validate", post(validate_target))
        .route("/api/v1/targets/{name}/rebuild", post(rebuild_target_route))
        .route("/api/v1/tokens", get(list_tokens).post(create_token_route))
        .route("/api/v1/tokens/{id}", axum::routing::delete(revoke_token))
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/users", get(list_users).post(create_user_route))
        .route("/api/v1/users/{id}", axum::routing::delete(disable_user))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}
