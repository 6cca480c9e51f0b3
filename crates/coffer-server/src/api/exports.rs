//! Exports: `POST/GET /api/v1/backups/{id}/exports`, and
//! `/api/v1/exports/{id}` (show, download with HTTP ranges, delete).

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use utoipa::ToSchema;

use crate::access::Principal;
use crate::api::common::{Accepted, ApiResult, JsonBody, accepted, blocking, time};
use crate::api::error::{ApiError, ErrorBody};
use crate::catalog::{ExportRow, ExportStatus};
use crate::exports::{self, ExportRequest};
use crate::state::Shared;

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

/// An export as the API shows it.
pub fn export_view(e: ExportRow) -> ExportView {
    let ready = e.status == ExportStatus::Ready;
    ExportView {
        download: ready.then(|| format!("/api/v1/exports/{}/download", e.id)),
        id: e.id,
        backup_id: e.backup_id,
        status: e.status.to_string(),
        error: e.error,
        sensitive: e.sensitive,
        protection: e.protection.to_string(),
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

/// A backup's exports.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportList {
    /// Oldest first.
    pub exports: Vec<ExportView>,
}

/// Exports a READY backup as one encrypted file: 202 with the export id;
/// watch it with GET /api/v1/exports/{id}.
#[utoipa::path(post, path = "/api/v1/backups/{id}/exports", params(("id" = String, Path, description = "Backup id")),
    request_body = ExportRequest, security(("bearer" = ["export"])),
    extensions(("x-coffer-components" = json!("each"))),
    responses((status = 202, body = Accepted), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_export(
    State(state): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<ExportRequest>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    let st = Arc::clone(&state);
    let eid = blocking(move || exports::create(&st, &p, &id, req)).await?;
    Ok(accepted(eid, ExportStatus::Exporting.as_str()))
}

/// Lists a backup's exports (those of the token's components).
#[utoipa::path(get, path = "/api/v1/backups/{id}/exports", params(("id" = String, Path, description = "Backup id")),
    security(("bearer" = ["export"])),
    extensions(("x-coffer-components" = json!("filter"))),
    responses((status = 200, body = ExportList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_exports(
    State(state): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<ExportList>> {
    let rows = blocking(move || exports::list(&state, &p, &id)).await?;
    Ok(Json(ExportList {
        exports: rows.into_iter().map(export_view).collect(),
    }))
}

/// Shows an export: status, name, size, SHA-256 and MD5.
#[utoipa::path(get, path = "/api/v1/exports/{id}", params(("id" = String, Path, description = "Export id")),
    security(("bearer" = ["export"])),
    extensions(("x-coffer-components" = json!("each"))),
    responses((status = 200, body = ExportView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn show_export(
    State(state): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<ExportView>> {
    let e = blocking(move || exports::show(&state, &p, &id)).await?;
    Ok(Json(export_view(e)))
}

/// Deletes an export and its file.
#[utoipa::path(delete, path = "/api/v1/exports/{id}", params(("id" = String, Path, description = "Export id")),
    security(("bearer" = ["export"])),
    extensions(("x-coffer-components" = json!("each"))),
    responses((status = 200, body = ExportView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_export(
    State(state): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<ExportView>> {
    let e = blocking(move || exports::delete(&state, &p, &id)).await?;
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
    security(("bearer" = ["export"])),
    extensions(("x-coffer-components" = json!("each"))),
    responses((status = 200, description = "the .coffer file", content_type = "application/octet-stream"),
        (status = 206, description = "the requested range"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 410, body = ErrorBody), (status = 416, body = ErrorBody)))]
pub async fn download_export(
    State(state): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (e, path) = blocking(move || exports::for_download(&state, &p, &id)).await?;
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
