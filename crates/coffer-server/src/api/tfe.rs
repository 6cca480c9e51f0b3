//! Terraform Enterprise's backup API, as its documentation writes it:
//!
//! * `POST /_backup/api/v1/backup` with `{"password": …}` (whatever
//!   Content-Type curl's `-d` sends) backs up every non-sensitive component
//!   and answers with the password-encrypted export as the body;
//! * `POST /_backup/api/v1/restore` with `-F config=@request.json
//!   -F snapshot=@backup.blob` is `POST /api/v1/restores`.
//!
//! The backup's answer starts at once (200, chunked) and its bytes flow once
//! the export is stored on the server: the client gets the same file that
//! `GET /api/v1/exports/{id}/download` serves (its SHA-256 is in that
//! export's record, named by `X-Coffer-Export-Id`). A failure cuts the
//! connection without the final chunk, so curl exits non-zero and a short
//! file is never taken for a whole one. The backup and its export stay on
//! the server under the usual retention and export expiry.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;
use tokio::io::AsyncReadExt;
use utoipa::ToSchema;

use crate::access::Principal;
use crate::api::common::{Accepted, ApiResult, RawBody, blocking};
use crate::api::error::ErrorBody;
use crate::api::uploads;
use crate::catalog::ExportStatus;
use crate::error::ServiceError;
use crate::exports;
use crate::jobs::backup as backup_job;
use crate::state::Shared;

/// Terraform Enterprise's `request.json`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TfeBackupRequest {
    /// Encrypts the export (at least `server.min_export_password_len`
    /// characters, default 12).
    pub password: String,
}

/// How often the answer checks whether the export is stored.
const POLL: Duration = Duration::from_millis(250);
const CHUNK: usize = 256 << 10;

/// Backs up every non-sensitive component and streams the
/// password-encrypted export (`.coffer`) as the answer. The body is JSON
/// whatever the Content-Type says (`curl -d @request.json` sends a form
/// type). Needs `export` on every non-sensitive component.
#[utoipa::path(post, path = "/_backup/api/v1/backup",
    request_body(content = TfeBackupRequest, description = "`{\"password\": …}`, any Content-Type"),
    security(("bearer" = ["export"])),
    extensions(("x-coffer-components" = json!("all"))),
    responses((status = 200, description = "the .coffer export, chunked; cut short if the backup fails", content_type = "application/octet-stream"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 507, body = ErrorBody)))]
pub async fn backup(
    State(state): State<Shared>,
    p: Principal,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    let req: TfeBackupRequest = serde_json::from_slice(&body).map_err(|e| {
        ServiceError::Invalid(format!(
            "body: {e}; send the JSON {{\"password\": \"…\"}} (curl -d @request.json)"
        ))
    })?;
    let (st, pp) = (Arc::clone(&state), p.clone());
    let (backup_id, export_id) =
        blocking(move || backup_job::start_for_export(&st, &pp, req.password)).await?;
    let (st, pp, eid) = (Arc::clone(&state), p.clone(), export_id.clone());
    let export = blocking(move || exports::show(&st, &pp, &eid)).await?;

    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let eid = export_id.clone();
    tokio::spawn(async move {
        if let Err(e) = send_when_stored(&state, &p, &eid, &tx).await {
            tracing::warn!(export = %eid, "Terraform Enterprise backup answer cut short: {e}");
            // An error item makes hyper abort the response.
            let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    for (name, value) in [
        (
            header::CONTENT_DISPOSITION.as_str(),
            format!("attachment; filename=\"{}\"", export.file_name),
        ),
        ("x-coffer-backup-id", backup_id),
        ("x-coffer-export-id", export_id),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    Ok(resp)
}

/// Waits until export `id` is stored, then sends its file through `tx`.
/// Fails if the backup or the export fails, or the file cannot be read;
/// stops quietly when the client has gone (the export stays stored).
async fn send_when_stored(
    state: &Shared,
    p: &Principal,
    id: &str,
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> Result<(), ServiceError> {
    loop {
        let (st, pp, eid) = (Arc::clone(state), p.clone(), id.to_owned());
        let e = tokio::task::spawn_blocking(move || exports::show(&st, &pp, &eid))
            .await
            .map_err(|e| ServiceError::internal(format!("waiting for the export: {e}")))??;
        match e.status {
            ExportStatus::Exporting => {
                if tx.is_closed() {
                    return Ok(());
                }
                tokio::time::sleep(POLL).await;
            }
            ExportStatus::Ready => break,
            other => {
                return Err(ServiceError::Upstream(format!(
                    "export {id} of backup {} is {other}: {} (GET /api/v1/backups/{}/log)",
                    e.backup_id,
                    e.error.as_deref().unwrap_or("no reason recorded"),
                    e.backup_id
                )));
            }
        }
    }
    let (st, pp, eid) = (Arc::clone(state), p.clone(), id.to_owned());
    let (_, path) = tokio::task::spawn_blocking(move || exports::for_download(&st, &pp, &eid))
        .await
        .map_err(|e| ServiceError::internal(format!("opening the export: {e}")))??;
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| ServiceError::internal(format!("opening {}: {e}", path.display())))?;
    loop {
        let mut buf = Vec::with_capacity(CHUNK);
        let n = (&mut file)
            .take(CHUNK as u64)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| ServiceError::internal(format!("reading {}: {e}", path.display())))?;
        if n == 0 {
            return Ok(());
        }
        if tx.send(Ok(Bytes::from(buf))).await.is_err() {
            return Ok(()); // the client has gone
        }
    }
}

/// Terraform Enterprise's restore call: `POST /api/v1/restores` under
/// TFE's path, the same parts (`config`, `snapshot`) and checks.
#[utoipa::path(post, path = "/_backup/api/v1/restore",
    request_body(content_type = "multipart/form-data", description = "`snapshot`: the .coffer file; `config`: JSON (UploadConfig)"),
    security(("bearer" = ["restore"])),
    extensions(("x-coffer-components" = json!("each"))),
    responses((status = 202, body = Accepted), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 507, body = ErrorBody)))]
pub async fn restore(
    state: State<Shared>,
    p: Principal,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    uploads::restore_upload(state, p, headers, multipart).await
}
