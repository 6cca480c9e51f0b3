//! Data that crosses the API as files, in both directions:
//!
//! * restoring an uploaded export into this installation — the Terraform
//!   Enterprise migration (`POST /api/v1/restores`, multipart);
//! * one component's consistent backup in its native form, as a download
//!   and as an upload to restore (FlowG's `/api/v1/backup/{name}` and
//!   `/api/v1/restore/{name}` are aliases of the per-component routes).
//!
//! Uploads are streamed to a spool directory under the staging directory,
//! never held in memory; [`crate::jobs::upload`] judges them whole before
//! anything is restored.

use std::io::Write;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::multipart::{Field, Multipart, MultipartRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use coffer_engine::CancelToken;
use coffer_model::access::RestoreStatus;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc::error::TrySendError;

use crate::access::Principal;
use crate::api::common::{Accepted, ApiResult, accepted, blocking};
use crate::api::error::{ApiError, ErrorBody};
use crate::error::ServiceError;
use crate::jobs::registry::component_key;
use crate::jobs::restore::OptionsRequest;
use crate::jobs::runner::{Timed, with_timeout};
use crate::jobs::upload::{self, UploadConfig};
use crate::state::Shared;

fn invalid(message: String) -> ApiError {
    ServiceError::Invalid(message).into()
}

/// A multipart body's rejection in the API's error shape.
fn multipart_rejected(r: MultipartRejection) -> ApiError {
    invalid(format!(
        "{} (send multipart/form-data, e.g. curl -F snapshot=@backup.coffer)",
        r.body_text()
    ))
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    invalid(format!("reading the multipart body: {}", e.body_text()))
}

/// The next chunk of a part, within `server.idle_timeout_secs`: a client
/// that stops sending does not hold a spool file open for ever.
async fn next_chunk(state: &Shared, field: &mut Field<'_>) -> ApiResult<Option<Bytes>> {
    let limit = state.config.idle_timeout;
    match tokio::time::timeout(limit, field.chunk()).await {
        Ok(r) => r.map_err(multipart_error),
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the upload stalled for {} s (server.idle_timeout_secs)",
                limit.as_secs()
            ),
        )),
    }
}

/// A fresh spool directory (0700) for one upload, removed when dropped.
fn new_spool(state: &Shared, headers: &HeaderMap) -> ApiResult<tempfile::TempDir> {
    let base = state.config.staging_dir.join("uploads");
    std::fs::create_dir_all(&base)
        .map_err(|e| ApiError::internal(format!("creating {}: {e}", base.display())))?;
    // The declared size must fit twice (the upload, then what it unpacks to)
    // with the preflight reserve to spare; the copy itself is checked as it goes.
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > state.config.max_upload.saturating_add(1 << 20) {
            return Err(too_large(state));
        }
        let free = coffer_targets::free_space_at(&base)
            .map_err(|e| ApiError::internal(format!("free space of {}: {e}", base.display())))?;
        let needed = len
            .saturating_mul(2)
            .saturating_add(state.config.preflight_reserve);
        if free < needed {
            return Err(ServiceError::InsufficientStorage(format!(
                "an upload of {} MiB needs {} MiB in {} (the file, then its contents); {} MiB \
                 are free",
                len >> 20,
                needed >> 20,
                base.display(),
                free >> 20
            ))
            .into());
        }
    }
    // tempfile creates it 0700.
    tempfile::Builder::new()
        .prefix("upload-")
        .tempdir_in(&base)
        .map_err(|e| ApiError::internal(format!("creating a directory in {}: {e}", base.display())))
}

fn too_large(state: &Shared) -> ApiError {
    ServiceError::TooLarge(format!(
        "the upload is larger than server.max_upload_mib ({} MiB)",
        state.config.max_upload >> 20
    ))
    .into()
}

/// Streams one part to `path` (0600) chunk by chunk; returns its size.
async fn spool_part(state: &Shared, mut field: Field<'_>, path: &FsPath) -> ApiResult<u64> {
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .await
        .map_err(|e| ApiError::internal(format!("creating {}: {e}", path.display())))?;
    let mut total = 0u64;
    while let Some(chunk) = next_chunk(state, &mut field).await? {
        total += chunk.len() as u64;
        if total > state.config.max_upload {
            return Err(too_large(state));
        }
        file.write_all(&chunk).await.map_err(|e| {
            if e.raw_os_error() == Some(libc::ENOSPC) {
                ServiceError::InsufficientStorage(format!(
                    "the disk of {} filled up while receiving the upload",
                    path.display()
                ))
                .into()
            } else {
                ApiError::internal(format!("writing {}: {e}", path.display()))
            }
        })?;
    }
    file.flush()
        .await
        .map_err(|e| ApiError::internal(format!("writing {}: {e}", path.display())))?;
    Ok(total)
}

/// The longest part that can be a file name sent by mistake (`PATH_MAX`).
const FILE_NAME_MAX: u64 = 4096;

/// Refuses a file part that is only a file name: `curl --form backup=x.db`
/// (without `@`) sends the text `x.db`, not the file — FlowG's documented
/// command does exactly that. A part without a file name is still accepted
/// when its content is not one short line of text (`--form backup=<x.db`
/// sends a file's content that way).
async fn refuse_file_name_as_text(path: &FsPath, size: u64, part: &str) -> ApiResult<()> {
    if size == 0 || size > FILE_NAME_MAX {
        return Ok(());
    }
    let content = tokio::fs::read(path)
        .await
        .map_err(|e| ApiError::internal(format!("reading {}: {e}", path.display())))?;
    let Ok(text) = std::str::from_utf8(&content) else {
        return Ok(());
    };
    let text = text.trim_end_matches(['\r', '\n']);
    if text.is_empty() || text.chars().any(char::is_control) {
        return Ok(());
    }
    Err(invalid(format!(
        "the {part} part holds the text {text:?}, not a file: with curl, put @ before the \
         file name (--form {part}=@{text})"
    )))
}

/// Reads a small text part (JSON settings), at most `server.max_json_bytes`.
async fn text_part(state: &Shared, mut field: Field<'_>, name: &str) -> ApiResult<String> {
    let mut buf = Vec::new();
    while let Some(chunk) = next_chunk(state, &mut field).await? {
        if buf.len() + chunk.len() > state.config.max_json_bytes {
            return Err(invalid(format!(
                "the {name} part is larger than server.max_json_bytes"
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    String::from_utf8(buf).map_err(|_| invalid(format!("the {name} part is not UTF-8")))
}

/// The parts of an upload: the spooled file (if sent) and the JSON settings.
struct Upload {
    spool: tempfile::TempDir,
    file: Option<PathBuf>,
    settings: Option<String>,
}

/// Reads every part: `file_part` is spooled, `settings_part` read as text;
/// anything else is refused.
async fn read_upload(
    state: &Shared,
    headers: &HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
    file_part: &str,
    settings_part: &str,
) -> ApiResult<Upload> {
    let mut multipart = multipart.map_err(multipart_rejected)?;
    let spool = new_spool(state, headers)?;
    let mut upload = Upload {
        file: None,
        settings: None,
        spool,
    };
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == file_part && upload.file.is_none() {
            let path = upload.spool.path().join("upload");
            let has_file_name = field.file_name().is_some();
            let size = spool_part(state, field, &path).await?;
            if !has_file_name {
                refuse_file_name_as_text(&path, size, file_part).await?;
            }
            upload.file = Some(path);
        } else if name == settings_part && upload.settings.is_none() {
            upload.settings = Some(text_part(state, field, &name).await?);
        } else {
            return Err(invalid(format!(
                "unexpected part {name:?}: send {file_part}=@FILE and optionally \
                 {settings_part}='{{…}}', once each"
            )));
        }
    }
    Ok(upload)
}

/// Restores an uploaded export into this installation: every component
/// matched by name and kind to a configured one (an unconfigured one needs
/// a whole spec and the `admin` scope). The whole file is decrypted and
/// checked against its manifest first; if it cannot be opened, is damaged
/// or hostile, or any component has no match, nothing is restored. 202
/// with the restore id.
#[utoipa::path(post, path = "/api/v1/restores",
    request_body(content_type = "multipart/form-data", description = "`snapshot`: the .coffer file; `config`: JSON (UploadConfig)"),
    security(("bearer" = ["restore"])),
    extensions(("x-coffer-components" = json!("each"))),
    responses((status = 202, body = Accepted), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 507, body = ErrorBody)))]
pub async fn restore_upload(
    State(state): State<Shared>,
    p: Principal,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    let upload = read_upload(&state, &headers, multipart, "snapshot", "config").await?;
    let Some(file) = upload.file else {
        return Err(invalid(
            "no snapshot part: send the export as snapshot=@FILE.coffer with \
             config='{\"password\": \"…\"}'"
                .into(),
        ));
    };
    let config: UploadConfig = serde_json::from_str(upload.settings.as_deref().unwrap_or("{}"))
        .map_err(|e| invalid(format!("config: {e}")))?;
    let spool = upload.spool;
    let id = blocking(move || upload::restore_export(&state, &p, spool, file, config)).await?;
    Ok(accepted(id, RestoreStatus::Restoring.as_str()))
}

/// The Terraform Enterprise spelling of `POST /api/v1/restores`.
#[utoipa::path(post, path = "/api/v1/restore",
    request_body(content_type = "multipart/form-data", description = "`snapshot`: the .coffer file; `config`: JSON (UploadConfig)"),
    security(("bearer" = ["restore"])),
    extensions(("x-coffer-components" = json!("each"))),
    responses((status = 202, body = Accepted), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 507, body = ErrorBody)))]
pub async fn restore_upload_tfe(
    state: State<Shared>,
    p: Principal,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    restore_upload(state, p, headers, multipart).await
}

/// Streams a consistent backup of one component in its native form: a
/// SQLite database file, a `pg_dump` custom-format file, a MariaDB/MySQL
/// SQL dump, an RDB file, a tar of an S3 bucket or of a directory, a
/// command's output. Nothing is stored. If the component fails midway the
/// connection is cut (no final chunk), so a client never takes a partial
/// file for a whole one.
#[utoipa::path(get, path = "/api/v1/components/{name}/backup", params(("name" = String, Path, description = "Component name")),
    security(("bearer" = ["export"])),
    extensions(("x-coffer-components" = json!("each"))),
    responses((status = 200, description = "the component's native backup", content_type = "application/octet-stream"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn component_download(
    State(state): State<Shared>,
    p: Principal,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let (st, n) = (Arc::clone(&state), name.clone());
    let spec = blocking(move || upload::component_for_download(&st, &p, &n)).await?;
    let job = format!("download-{}", uuid::Uuid::new_v4());
    let reservation = state.jobs.reserve(&job, vec![component_key(&name)])?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let staging = state.config.staging_dir.clone();
    let file_name = coffer_components::native_file_name(&spec);
    // The component's time limit and a server shutdown stop it (its next
    // write fails); so does a client that stops reading for
    // `server.idle_timeout_secs`, which would otherwise hold the component
    // busy for as long as it likes.
    let token = CancelToken::new();
    state.jobs.register_cancel(&job, token.clone());
    // A failure cuts the response at once, ahead of chunks still queued (a
    // client that stopped reading leaves the queue full).
    let (abort_tx, abort_rx) = tokio::sync::oneshot::channel::<String>();
    let (limit, idle, st) = (
        state.config.component_timeout,
        state.config.idle_timeout,
        Arc::clone(&state),
    );
    tokio::task::spawn_blocking(move || {
        let _reservation = reservation;
        let writer_token = token.clone();
        let (worker_tx, worker_spec) = (tx.clone(), spec.clone());
        let timed = with_timeout(limit, &token, move || {
            let mut out = ChannelWriter {
                tx: worker_tx,
                buf: Vec::with_capacity(CHUNK),
                idle,
                token: writer_token,
            };
            std::fs::create_dir_all(&staging)
                .map_err(|e| format!("creating {}: {e}", staging.display()))
                .and_then(|()| {
                    coffer_components::download(&worker_spec, &staging, &mut out)
                        .map_err(|e| e.to_string())
                })
                .and_then(|n| out.flush().map(|()| n).map_err(|e| e.to_string()))
        });
        st.jobs.unregister(&job);
        let result = match timed {
            Err(e) => Err(e),
            Ok(Timed::Done(r)) => r,
            Ok(Timed::TimedOut(_)) => Err(format!(
                "stopped after {} s (server.component_timeout_secs)",
                limit.as_secs()
            )),
        };
        match result {
            Ok(n) => tracing::info!(component = %spec.name, "native download: {n} bytes sent"),
            Err(e) => {
                tracing::warn!(component = %spec.name, "native download failed: {e}");
                let _ = abort_tx.send(e);
            }
        }
    });
    // An error item makes hyper abort the response: never a partial file
    // that ends like a whole one.
    let stream = futures_util::stream::unfold(Feed::Open(rx, abort_rx), |feed| async move {
        match feed {
            Feed::Open(mut rx, mut abort) => tokio::select! {
                biased;
                failed = &mut abort => match failed {
                    Ok(e) => Some((Err(std::io::Error::other(e)), Feed::Done)),
                    // The worker ended without failing: the rest is data.
                    Err(_) => rx.recv().await.map(|item| (item, Feed::Draining(rx))),
                },
                item = rx.recv() => item.map(|item| (item, Feed::Open(rx, abort))),
            },
            Feed::Draining(mut rx) => rx.recv().await.map(|item| (item, Feed::Draining(rx))),
            Feed::Done => None,
        }
    });
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

const CHUNK: usize = 256 << 10;

/// A native download's response body: chunks as they come, unless the
/// worker reports a failure first.
enum Feed {
    /// Chunks, and the worker's failure if one comes.
    Open(
        tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
        tokio::sync::oneshot::Receiver<String>,
    ),
    /// The worker ended well: the chunks left.
    Draining(tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>),
    /// The failure was sent.
    Done,
}

/// A blocking writer feeding a response body through a bounded channel, so
/// a slow client slows the component down instead of filling memory.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
    /// The longest a chunk may wait for the client to read.
    idle: std::time::Duration,
    /// Fired by the time limit or a shutdown.
    token: CancelToken,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.flush()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut chunk = Ok(Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(CHUNK),
        )));
        let started = std::time::Instant::now();
        loop {
            if self.token.is_cancelled() {
                return Err(std::io::Error::other("stopped"));
            }
            match self.tx.try_send(chunk) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(_)) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::BrokenPipe,
                        "the client closed the download",
                    ));
                }
                Err(TrySendError::Full(back)) => {
                    if started.elapsed() >= self.idle {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!(
                                "the client read nothing for {} s (server.idle_timeout_secs)",
                                self.idle.as_secs()
                            ),
                        ));
                    }
                    chunk = back;
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            }
        }
    }
}

/// Restores one component from an upload of its native form (what
/// GET …/backup gives): multipart `backup=@FILE`, optionally
/// `options='{"mode": "overwrite"}'`. The component and the token are
/// judged before the upload is read. 202 with the restore id.
#[utoipa::path(post, path = "/api/v1/components/{name}/restore", params(("name" = String, Path, description = "Component name")),
    request_body(content_type = "multipart/form-data", description = "`backup`: the native file; `options`: JSON (OptionsRequest)"),
    security(("bearer" = ["restore"])),
    extensions(("x-coffer-components" = json!("each"))),
    responses((status = 202, body = Accepted), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn component_restore(
    State(state): State<Shared>,
    p: Principal,
    Path(name): Path<String>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    restore_native_upload(state, p, name, headers, multipart, "{}").await
}

/// Restores one component from an upload of its native form, with
/// `default_options` when the upload has no `options` part.
async fn restore_native_upload(
    state: Shared,
    p: Principal,
    name: String,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
    default_options: &str,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    let (st, pp, n) = (Arc::clone(&state), p.clone(), name.clone());
    blocking(move || upload::component_for_restore(&st, &pp, &n)).await?;
    let upload = read_upload(&state, &headers, multipart, "backup", "options").await?;
    let Some(path) = upload.file else {
        return Err(invalid(
            "no backup part: send the component's file as backup=@FILE".into(),
        ));
    };
    let options: OptionsRequest =
        serde_json::from_str(upload.settings.as_deref().unwrap_or(default_options))
            .map_err(|e| invalid(format!("options: {e}")))?;
    let spool = upload.spool;
    let id = blocking(move || upload::restore_component(&state, &p, &name, spool, path, options))
        .await?;
    Ok(accepted(id, RestoreStatus::Restoring.as_str()))
}

/// FlowG's spelling of `GET /api/v1/components/{name}/backup`: the same
/// native backup, the same scope.
#[utoipa::path(get, path = "/api/v1/backup/{name}", params(("name" = String, Path, description = "Component name")),
    security(("bearer" = ["export"])),
    extensions(("x-coffer-components" = json!("each"))),
    responses((status = 200, description = "the component's native backup", content_type = "application/octet-stream"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn component_download_flowg(
    state: State<Shared>,
    p: Principal,
    name: Path<String>,
) -> ApiResult<Response> {
    component_download(state, p, name).await
}

/// FlowG's spelling of `POST /api/v1/components/{name}/restore`:
/// multipart `backup=@FILE`, the same scope. Without an `options` part the
/// mode is `overwrite`: FlowG's restore replaces the live database, and its
/// documented command sends no options.
#[utoipa::path(post, path = "/api/v1/restore/{name}", params(("name" = String, Path, description = "Component name")),
    request_body(content_type = "multipart/form-data", description = "`backup`: the native file; `options`: JSON (OptionsRequest)"),
    security(("bearer" = ["restore"])),
    extensions(("x-coffer-components" = json!("each"))),
    responses((status = 202, body = Accepted), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn component_restore_flowg(
    State(state): State<Shared>,
    p: Principal,
    Path(name): Path<String>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    restore_native_upload(state, p, name, headers, multipart, FLOWG_OPTIONS).await
}

/// What FlowG's restore route does without an `options` part.
const FLOWG_OPTIONS: &str = r#"{"mode": "overwrite"}"#;
