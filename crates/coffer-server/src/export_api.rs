//! The export endpoints: create, show, list, download (with HTTP ranges) and
//! delete portable `.coffer` files (`docs/export-format.md`).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use coffer_export::Protection;
use coffer_model::access::{BackupStatus, Scope};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use utoipa::ToSchema;

use crate::api::{Accepted, ApiResult, JsonBody, backup_snapshots, find_backup_row, time};
use crate::auth::Principal;
use crate::catalog::{BackupComponentRow, BackupRow, ExportRow, now};
use crate::error::{ApiError, ErrorBody};
use crate::exports::{self, EXPORTING, ExportJob};
use crate::jobs::{Jobs, Reservation, backup_key};
use crate::state::Shared;

/// Shortest export password: it is all that protects the file once it
/// leaves the server.
pub const MIN_EXPORT_PASSWORD: usize = 12;

/// One `age1…` key or several.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Recipients {
    /// One key.
    One(String),
    /// Several keys: any matching identity opens the file.
    Many(Vec<String>),
}

/// Create an export. Exactly one of `password` and `age_recipient`.
#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateExport {
    /// A passphrase (at least 12 characters): the file is encrypted with it
    /// (age scrypt, work factor 2^18), and only it opens the file.
    #[serde(default)]
    pub password: Option<String>,
    /// age X25519 public key(s) (`age1…`) instead: for scripts (`age -d -i key.txt`).
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub age_recipient: Option<Recipients>,
    /// Export only the sensitive components (still sealed to their own
    /// recipients), as a separate file. Needs the `sensitive` scope.
    #[serde(default)]
    pub sensitive: bool,
}

/// The protection a request asks for, and its name for the catalog.
pub(crate) fn protection_of(
    password: Option<String>,
    recipients: Option<Recipients>,
) -> ApiResult<(Protection, &'static str)> {
    match (password, recipients) {
        (Some(p), None) => {
            if p.chars().count() < MIN_EXPORT_PASSWORD {
                return Err(ApiError::invalid(format!(
                    "password: at least {MIN_EXPORT_PASSWORD} characters (it alone protects the file)"
                )));
            }
            Ok((Protection::Passphrase(p.into()), "password"))
        }
        (None, Some(r)) => {
            let keys = match r {
                Recipients::One(k) => vec![k],
                Recipients::Many(k) => k,
            };
            Protection::recipients(&keys)
                .map(|p| (p, "age"))
                .map_err(|e| ApiError::invalid(format!("age_recipient: {e}")))
        }
        _ => Err(ApiError::invalid(
            "give exactly one of \"password\" and \"age_recipient\" to encrypt the export",
        )),
    }
}

/// An export as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportView {
    /// `export-<uuid>`.
    pub id: String,
    /// The backup exported.
    pub backup_id: String,
    /// `EXPORTING`, `READY`, `ERROR` or `EXPIRED`.
    pub status: String,
    /// Why it is `ERROR`.
    pub error: Option<String>,
    /// Only the sensitive components.
    pub sensitive: bool,
    /// `password` or `age`.
    pub protection: String,
    /// The file's name: `<backup-id>.coffer`.
    pub name: String,
    /// The components in it.
    pub components: Vec<String>,
    /// Bytes (READY).
    pub size: Option<u64>,
    /// SHA-256 of the file, hex (READY).
    pub sha256: Option<String>,
    /// MD5 of the file, hex (READY).
    pub md5: Option<String>,
    /// Start (RFC 3339).
    pub created_at: String,
    /// End (RFC 3339).
    pub finished_at: Option<String>,
    /// When the file is removed (RFC 3339).
    pub expires_at: Option<String>,
    /// Where to download it (READY).
    pub download: Option<String>,
}

pub(crate) fn export_view(e: ExportRow) -> ExportView {
    let ready = e.status == exports::READY;
    ExportView {
        download: ready.then(|| format!("/api/v1/exports/{}/download", e.id)),
        id: e.id,
        backup_id: e.backup_id,
        status: e.status,
        error: e.error,
        sensitive: e.sensitive,
        protection: e.protection,
        name: e.file_name,
        components: e.components,
        size: e.size,
        sha256: e.sha256,
        md5: e.md5,
        created_at: time(e.created_at),
        finished_at: e.finished_at.map(time),
        expires_at: e.expires_at.map(time),
    }
}

/// What an export of `backup` holds: its unsealed components, or with
/// `sensitive` its sealed ones, each checked against the principal.
pub(crate) async fn export_components(
    state: &Shared,
    p: &Principal,
    backup: &BackupRow,
    comps: Vec<BackupComponentRow>,
    sensitive: bool,
) -> ApiResult<Vec<BackupComponentRow>> {
    let sealed: BTreeSet<String> = backup_snapshots(state, &backup.target, &backup.id)
        .await?
        .into_iter()
        .filter(|s| s.sealed)
        .map(|s| s.id)
        .collect();
    let chosen: Vec<BackupComponentRow> = comps
        .into_iter()
        .filter(|c| c.snapshot_id.as_ref().is_some_and(|id| sealed.contains(id)) == sensitive)
        .collect();
    if chosen.is_empty() {
        return Err(ApiError::invalid(if sensitive {
            format!("backup {} has no sensitive components", backup.id)
        } else {
            format!(
                "backup {} has only sensitive components: export them with \"sensitive\": true",
                backup.id
            )
        }));
    }
    for c in &chosen {
        p.require_component(Scope::Export, &c.component, sensitive)?;
    }
    Ok(chosen)
}

/// A new export's catalog row (`EXPORTING`).
pub(crate) fn new_export_row(
    backup_id: &str,
    sensitive: bool,
    protection: &str,
    components: Vec<String>,
) -> ExportRow {
    ExportRow {
        id: format!("export-{}", uuid::Uuid::new_v4()),
        backup_id: backup_id.to_owned(),
        status: EXPORTING.to_owned(),
        error: None,
        sensitive,
        protection: protection.to_owned(),
        file_name: if sensitive {
            format!("{backup_id}.sensitive.coffer")
        } else {
            format!("{backup_id}.coffer")
        },
        components,
        size: None,
        sha256: None,
        md5: None,
        created_at: now(),
        finished_at: None,
        expires_at: None,
    }
}

/// Starts the job of an already recorded export; `reservation` holds the
/// backup so it is not deleted meanwhile.
pub(crate) fn launch_export(
    state: &Shared,
    reservation: Reservation,
    row: &ExportRow,
    backup: BackupRow,
    components: Vec<BackupComponentRow>,
    protection: Protection,
) {
    let job = ExportJob {
        id: row.id.clone(),
        backup,
        components,
        protection,
        sensitive: row.sensitive,
    };
    tokio::spawn(exports::run_export(Arc::clone(state), job, reservation));
}

/// Holds `backup` for export `row` (409 if it is busy).
pub(crate) fn reserve_for_export(
    state: &Shared,
    row: &ExportRow,
    backup: &BackupRow,
) -> ApiResult<Reservation> {
    Jobs::reserve(state, &row.id, vec![backup_key(&backup.id)])
}

/// Exports a READY backup as one encrypted file: 202 with the export id;
/// watch it with GET /api/v1/exports/{id}.
#[utoipa::path(post, path = "/api/v1/backups/{id}/exports", params(("id" = String, Path, description = "Backup id")),
    request_body = CreateExport, security(("bearer" = [])),
    responses((status = 202, body = Accepted), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn create_export(
    State(state): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<CreateExport>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    p.require(Scope::Export)?;
    let (protection, kind) = protection_of(req.password, req.age_recipient)?;
    let backup = find_backup_row(&state, &id)?;
    if backup.status != BackupStatus::Ready {
        return Err(ApiError::conflict(format!(
            "backup {id} is {}: only READY backups are exported",
            backup.status
        )));
    }
    let comps = state.catalog.backup_components(&id)?;
    let chosen = export_components(&state, &p, &backup, comps, req.sensitive).await?;
    let names = chosen.iter().map(|c| c.component.clone()).collect();
    let row = new_export_row(&id, req.sensitive, kind, names);
    // Reserve before recording, so a 409 leaves no row behind.
    let reservation = reserve_for_export(&state, &row, &backup)?;
    state.catalog.insert_export(&row)?;
    launch_export(&state, reservation, &row, backup, chosen, protection);
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            id: row.id,
            status: EXPORTING.to_owned(),
        }),
    ))
}

/// A backup's exports.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportList {
    /// Oldest first.
    pub exports: Vec<ExportView>,
}

/// Lists a backup's exports.
#[utoipa::path(get, path = "/api/v1/backups/{id}/exports", params(("id" = String, Path, description = "Backup id")),
    security(("bearer" = [])),
    responses((status = 200, body = ExportList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn list_exports(
    State(state): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<ExportList>> {
    p.require(Scope::Export)?;
    find_backup_row(&state, &id)?;
    let exports = state
        .catalog
        .exports_of_backup(&id)?
        .into_iter()
        .filter(|e| may_see(&p, e).is_ok())
        .map(export_view)
        .collect();
    Ok(Json(ExportList { exports }))
}

/// The export, if the principal may touch every component in it.
fn find_export(state: &Shared, p: &Principal, id: &str) -> ApiResult<ExportRow> {
    p.require(Scope::Export)?;
    let e = state
        .catalog
        .export(id)?
        .ok_or_else(|| ApiError::not_found(format!("no export with id {id:?}")))?;
    may_see(p, &e)?;
    Ok(e)
}

/// Whether `p` may touch every component in export `e`.
pub(crate) fn may_see(p: &Principal, e: &ExportRow) -> ApiResult<()> {
    for c in &e.components {
        p.require_component(Scope::Export, c, e.sensitive)?;
    }
    Ok(())
}

/// Shows an export: status, name, size, SHA-256 and MD5.
#[utoipa::path(get, path = "/api/v1/exports/{id}", params(("id" = String, Path, description = "Export id")),
    security(("bearer" = [])),
    responses((status = 200, body = ExportView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn show_export(
    State(state): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<ExportView>> {
    Ok(Json(export_view(find_export(&state, &p, &id)?)))
}

/// Deletes an export and its file.
#[utoipa::path(delete, path = "/api/v1/exports/{id}", params(("id" = String, Path, description = "Export id")),
    security(("bearer" = [])),
    responses((status = 200, body = ExportView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn delete_export(
    State(state): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<ExportView>> {
    let e = find_export(&state, &p, &id)?;
    if e.status == EXPORTING {
        return Err(ApiError::conflict(format!(
            "export {id} is still being written"
        )));
    }
    match std::fs::remove_file(exports::export_file(&state, &id)) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(ApiError::internal(format!("removing export {id}: {err}"))),
    }
    state.catalog.delete_export(&id)?;
    tracing::info!(export = %id, by = %p.id, "export deleted");
    Ok(Json(export_view(e)))
}

/// `Range: bytes=…` (one range) against a file of `len` bytes:
/// `Ok(None)` for the whole file, `Err(())` when unsatisfiable.
fn parse_range(value: &str, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        // Several ranges: answered with the whole file (allowed by RFC 9110).
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let range = match (a.is_empty(), b.is_empty()) {
        (true, false) => {
            let n: u64 = b.parse().map_err(|_| ())?;
            if n == 0 || len == 0 {
                return Err(());
            }
            (len.saturating_sub(n), len - 1)
        }
        (false, _) => {
            let start: u64 = a.parse().map_err(|_| ())?;
            let end: u64 = if b.is_empty() {
                len.saturating_sub(1)
            } else {
                b.parse::<u64>().map_err(|_| ())?.min(len.saturating_sub(1))
            };
            if start >= len || end < start {
                return Err(());
            }
            (start, end)
        }
        (true, true) => return Ok(None),
    };
    Ok(Some(range))
}

/// Streams an export file (HTTP `Range` supported, one range).
#[utoipa::path(get, path = "/api/v1/exports/{id}/download", params(("id" = String, Path, description = "Export id")),
    security(("bearer" = [])),
    responses((status = 200, description = "the .coffer file", content_type = "application/octet-stream"),
        (status = 206, description = "the requested range"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 410, body = ErrorBody), (status = 416, body = ErrorBody)))]
pub(crate) async fn download_export(
    State(state): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let e = find_export(&state, &p, &id)?;
    let expired = e.status == exports::EXPIRED
        || (e.status == exports::READY && e.expires_at.is_some_and(|t| t <= now()));
    if expired {
        return Err(ApiError::gone(format!(
            "export {id} expired at {}: its file was removed; create a new export",
            e.expires_at.map(time).unwrap_or_default()
        )));
    }
    if e.status != exports::READY {
        return Err(ApiError::conflict(format!(
            "export {id} is {}{}",
            e.status,
            e.error.map(|r| format!(": {r}")).unwrap_or_default()
        )));
    }
    let path = exports::export_file(&state, &id);
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(|err| ApiError::internal(format!("opening {}: {err}", path.display())))?;
    let len = file
        .metadata()
        .await
        .map_err(|err| ApiError::internal(format!("reading {}: {err}", path.display())))?
        .len();
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => None,
        Some(v) => match parse_range(v, len) {
            Ok(r) => r,
            Err(()) => {
                let mut resp = (
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    Json(ErrorBody {
                        error: "range_not_satisfiable",
                        message: format!("the file has {len} bytes; the range {v:?} is outside it"),
                    }),
                )
                    .into_response();
                if let Ok(h) = HeaderValue::from_str(&format!("bytes */{len}")) {
                    resp.headers_mut().insert(header::CONTENT_RANGE, h);
                }
                return Ok(resp);
            }
        },
    };
    let (status, start, count) = match range {
        Some((a, b)) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        None => (StatusCode::OK, 0, len),
    };
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(|err| ApiError::internal(format!("reading {}: {err}", path.display())))?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
        file.take(count),
        256 << 10,
    ));
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    let mut set = |name: header::HeaderName, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    set(header::CONTENT_TYPE, "application/octet-stream".into());
    set(header::CONTENT_LENGTH, count.to_string());
    set(header::ACCEPT_RANGES, "bytes".into());
    set(
        header::CONTENT_DISPOSITION,
        format!("attachment; filename=\"{}\"", e.file_name),
    );
    if let Some(sha) = &e.sha256 {
        set(header::ETAG, format!("\"{sha}\""));
    }
    if range.is_some() {
        set(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{len}", start + count - 1),
        );
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=50-500", 100), Ok(Some((50, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=9-3", 100), Err(()));
        assert_eq!(parse_range("bytes=-0", 100), Err(()));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(parse_range("items=0-1", 100), Ok(None));
        assert_eq!(parse_range("bytes=x-1", 100), Err(()));
    }
}
