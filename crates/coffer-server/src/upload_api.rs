//! Data that crosses the API as files, in both directions:
//!
//! * restoring an uploaded export into this installation — the Terraform
//!   Enterprise migration (`POST /api/v1/restores`, multipart);
//! * one component's consistent backup in its native form, as a download
//!   and as an upload to restore (FlowG).
//!
//! Uploads are streamed to a spool directory under the staging directory,
//! never held in memory, and verified whole before anything is restored.

use std::collections::BTreeMap;
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
use coffer_components::PortableFile;
use coffer_engine::{AgeIdentity, ContentKind};
use coffer_export::{ExportError, Limits, Secret};
use coffer_model::access::Scope;
use coffer_model::component::{ComponentKind, ComponentSpec};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use utoipa::ToSchema;

use crate::api::{
    Accepted, ApiResult, RestoreOptionsBody, blocking, identity_field, launch_restore, overridden,
    restore_options,
};
use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::jobs::{ItemSource, Jobs, RestoreItem, RestoreJob, component_key};
use crate::state::Shared;

/// The `config` part of an export upload.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadConfig {
    /// The password the export was made with.
    #[serde(default)]
    pub password: Option<String>,
    /// For an export made for an age recipient: the matching identity
    /// (`AGE-SECRET-KEY-1…` or an identity file's text).
    #[serde(default)]
    pub identity: Option<String>,
    /// Opens sealed (sensitive) components, as for any restore. Never
    /// stored or logged.
    #[serde(default, deserialize_with = "identity_field")]
    #[schema(value_type = Option<String>)]
    pub age_identity: Option<Arc<AgeIdentity>>,
    /// Components of the export to restore (default: all).
    #[serde(default)]
    pub components: Option<Vec<String>>,
    /// Per component, settings laid over the configured component — or,
    /// for a component this server does not have, a whole spec with `kind`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub overrides: BTreeMap<String, serde_json::Value>,
    /// Options for every component.
    #[serde(default)]
    pub options: RestoreOptionsBody,
}

/// A multipart body's rejection in the API's error shape.
fn multipart_rejected(r: MultipartRejection) -> ApiError {
    ApiError::invalid(format!(
        "{} (send multipart/form-data, e.g. curl -F snapshot=@backup.coffer)",
        r.body_text()
    ))
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    ApiError::invalid(format!("reading the multipart body: {}", e.body_text()))
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
            return Err(ApiError::insufficient_storage(format!(
                "an upload of {} MiB needs {} MiB in {} (the file, then its contents); {} MiB \
                 are free",
                len >> 20,
                needed >> 20,
                base.display(),
                free >> 20
            )));
        }
    }
    // tempfile creates it 0700.
    tempfile::Builder::new()
        .prefix("upload-")
        .tempdir_in(&base)
        .map_err(|e| ApiError::internal(format!("creating a directory in {}: {e}", base.display())))
}

fn too_large(state: &Shared) -> ApiError {
    ApiError::payload_too_large(format!(
        "the upload is larger than server.max_upload_mib ({} MiB)",
        state.config.max_upload >> 20
    ))
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
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        total += chunk.len() as u64;
        if total > state.config.max_upload {
            return Err(too_large(state));
        }
        file.write_all(&chunk).await.map_err(|e| {
            if e.raw_os_error() == Some(libc::ENOSPC) {
                ApiError::insufficient_storage(format!(
                    "the disk of {} filled up while receiving the upload",
                    path.display()
                ))
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

/// Reads a small text part (JSON settings), at most `server.max_json_bytes`.
async fn text_part(state: &Shared, mut field: Field<'_>, name: &str) -> ApiResult<String> {
    let mut buf = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if buf.len() + chunk.len() > state.config.max_json_bytes {
            return Err(ApiError::invalid(format!(
                "the {name} part is larger than server.max_json_bytes"
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    String::from_utf8(buf).map_err(|_| ApiError::invalid(format!("the {name} part is not UTF-8")))
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
            spool_part(state, field, &path).await?;
            upload.file = Some(path);
        } else if name == settings_part && upload.settings.is_none() {
            upload.settings = Some(text_part(state, field, &name).await?);
        } else {
            return Err(ApiError::invalid(format!(
                "unexpected part {name:?}: send {file_part}=@FILE and optionally \
                 {settings_part}='{{…}}', once each"
            )));
        }
    }
    Ok(upload)
}

/// An export that cannot be opened or is not sound, as the caller's error.
fn export_refused(e: ExportError) -> ApiError {
    match e {
        ExportError::WrongSecret => ApiError::invalid(
            "wrong password or identity: the export cannot be decrypted with it (nothing was \
             restored)",
        ),
        ExportError::Io { context, source } if source.raw_os_error() == Some(libc::ENOSPC) => {
            ApiError::insufficient_storage(format!("{context}: {source}"))
        }
        ExportError::Io { context, source } => ApiError::internal(format!("{context}: {source}")),
        other => ApiError::invalid(format!("{other} (nothing was restored)")),
    }
}

/// Restores an uploaded export into this installation: every component
/// matched by name and kind to a configured one (or an override). The whole
/// file is decrypted and checked against its manifest first; if it cannot
/// be opened, is damaged or hostile, or any component has no match, nothing
/// is restored. 202 with the restore id.
#[utoipa::path(post, path = "/api/v1/restores",
    request_body(content_type = "multipart/form-data", description = "`snapshot`: the .coffer file; `config`: JSON (UploadConfig)"),
    security(("bearer" = [])),
    responses((status = 202, body = Accepted), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody), (status = 507, body = ErrorBody)))]
pub(crate) async fn restore_upload(
    State(state): State<Shared>,
    p: Principal,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    p.require(Scope::Restore)?;
    let upload = read_upload(&state, &headers, multipart, "snapshot", "config").await?;
    let Some(file) = upload.file else {
        return Err(ApiError::invalid(
            "no snapshot part: send the export as snapshot=@FILE.coffer with \
             config='{\"password\": \"…\"}'",
        ));
    };
    let config: UploadConfig = serde_json::from_str(upload.settings.as_deref().unwrap_or("{}"))
        .map_err(|e| ApiError::invalid(format!("config: {e}")))?;
    let secret = match (&config.password, &config.identity) {
        (Some(p), None) if !p.is_empty() => Secret::passphrase(p),
        (None, Some(i)) => {
            Secret::identity(i).map_err(|e| ApiError::invalid(format!("config.identity: {e}")))?
        }
        (None, None) | (Some(_), None) => {
            return Err(ApiError::invalid(
                "config needs the export's \"password\" (or \"identity\" for an export made \
                 for an age recipient)",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "config: give \"password\" or \"identity\", not both",
            ));
        }
    };
    let spool = upload.spool;
    let unpack_dir = spool.path().join("files");
    let unpacked = {
        let (file, dir) = (file.clone(), unpack_dir.clone());
        blocking(move || {
            std::fs::create_dir(&dir)
                .map_err(|e| ApiError::internal(format!("creating {}: {e}", dir.display())))?;
            let input = std::fs::File::open(&file)
                .map_err(|e| ApiError::internal(format!("opening {}: {e}", file.display())))?;
            let unpacked = coffer_export::unpack(
                std::io::BufReader::with_capacity(256 << 10, input),
                &secret,
                &dir,
                &Limits::default(),
            )
            .map_err(export_refused)?;
            // The unpacked files are what is restored; free the space now.
            let _ = std::fs::remove_file(&file);
            Ok(unpacked)
        })
        .await?
    };
    let manifest = &unpacked.manifest;
    let wanted: Vec<&coffer_export::ManifestComponent> = match &config.components {
        None => manifest.components.iter().collect(),
        Some(names) => names
            .iter()
            .map(|n| {
                manifest
                    .components
                    .iter()
                    .find(|c| &c.name == n)
                    .ok_or_else(|| {
                        ApiError::invalid(format!(
                            "the export has no component {n:?}; it has {}",
                            component_list(&manifest.components)
                        ))
                    })
            })
            .collect::<ApiResult<_>>()?,
    };
    if let Some(extra) = config
        .overrides
        .keys()
        .find(|k| !wanted.iter().any(|c| &c.name == *k))
    {
        return Err(ApiError::invalid(format!(
            "overrides.{extra}: that component is not being restored"
        )));
    }
    let mut items = Vec::new();
    let mut unmatched = Vec::new();
    for c in &wanted {
        let Some(dest) = destination(&state, c, config.overrides.get(&c.name))? else {
            unmatched.push(format!("{} ({})", c.name, c.kind));
            continue;
        };
        p.require_component(Scope::Restore, &c.name, dest.sensitive || c.sealed)?;
        let path =
            unpacked.files.get(&c.name).cloned().ok_or_else(|| {
                ApiError::internal(format!("component {} was not unpacked", c.name))
            })?;
        items.push(RestoreItem {
            dest,
            source: ItemSource::File(PortableFile {
                path,
                file_name: c.file_name().to_owned(),
                content: if c.is_tree() {
                    ContentKind::Tree
                } else {
                    ContentKind::Stream
                },
                sealed: c.sealed,
                identity: config.age_identity.clone(),
            }),
        });
    }
    if !unmatched.is_empty() {
        return Err(ApiError::invalid(format!(
            "nothing was restored: this server has no component of the same name and kind for \
             {} — add them to [[components]] in {}, or pass \"overrides\" with a whole spec \
             (\"kind\" and its settings) for each",
            unmatched.join(", "),
            state.config.source.display()
        )));
    }
    verify_files(&items, config.age_identity.as_deref()).await?;
    let options = restore_options(config.options)?;
    launch_restore(
        &state,
        RestoreJob {
            id: format!("restore-{}", uuid::Uuid::new_v4()),
            backup_id: manifest.backup_id.clone(),
            target: None,
            items,
            options,
            identity: config.age_identity,
            spool: Some(spool),
        },
    )
}

fn component_list(comps: &[coffer_export::ManifestComponent]) -> String {
    comps
        .iter()
        .map(|c| format!("{} ({})", c.name, c.kind))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where an exported component goes: the configured component of the same
/// name and kind (with `over` laid over it), or the whole spec `over`
/// gives. `None` when neither matches.
fn destination(
    state: &Shared,
    c: &coffer_export::ManifestComponent,
    over: Option<&serde_json::Value>,
) -> ApiResult<Option<ComponentSpec>> {
    let dest = match (state.config.component(&c.name), over) {
        (Some(spec), Some(o)) => overridden(spec, o)?,
        (Some(spec), None) => spec.clone(),
        (None, Some(o)) => {
            let kind: ComponentKind = serde_json::from_value(o.clone()).map_err(|e| {
                ApiError::invalid(format!(
                    "overrides.{}: component {:?} is not configured here, so give a whole \
                     spec with \"kind\": {e}",
                    c.name, c.name
                ))
            })?;
            let name = c.name.parse().map_err(|e| {
                ApiError::invalid(format!("the export's component name {:?}: {e}", c.name))
            })?;
            let spec = ComponentSpec {
                name,
                sensitive: c.sealed,
                kind,
            };
            spec.validate()
                .map_err(|e| ApiError::invalid(format!("overrides.{}: {e}", c.name)))?;
            spec
        }
        (None, None) => return Ok(None),
    };
    Ok((dest.kind.name() == c.kind).then_some(dest))
}

/// Before anything runs: sealed files need an identity that opens them, and
/// every file must pass [`PortableFile::verify`] (a tree's tar is read whole).
async fn verify_files(items: &[RestoreItem], identity: Option<&AgeIdentity>) -> ApiResult<()> {
    let files: Vec<(String, PortableFile)> = items
        .iter()
        .filter_map(|i| match &i.source {
            ItemSource::File(f) => Some((i.dest.name.to_string(), f.clone())),
            ItemSource::Snapshot(_) => None,
        })
        .collect();
    let sealed: Vec<&str> = files
        .iter()
        .filter(|(_, f)| f.sealed)
        .map(|(n, _)| n.as_str())
        .collect();
    if identity.is_none() && !sealed.is_empty() {
        return Err(ApiError::invalid(format!(
            "components {} are sealed to an age recipient: add \"age_identity\": \
             \"AGE-SECRET-KEY-1…\" to config (nothing was restored)",
            sealed.join(", ")
        )));
    }
    blocking(move || {
        for (name, f) in &files {
            f.verify(name)
                .map_err(|e| ApiError::invalid(format!("{e} (nothing was restored)")))?;
        }
        Ok(())
    })
    .await
}

/// The configured component `name`, or 404.
fn configured(state: &Shared, name: &str) -> ApiResult<ComponentSpec> {
    state.config.component(name).cloned().ok_or_else(|| {
        ApiError::not_found(format!(
            "no component {name:?} is configured; GET /api/v1/components lists them"
        ))
    })
}

/// Streams a consistent backup of one component in its native form: a
/// SQLite database file, a `pg_dump` custom-format file, a MariaDB/MySQL
/// SQL dump, an RDB file, a tar of an S3 bucket or of a directory, a
/// command's output. Nothing is stored. If the component fails midway the
/// connection is cut (no final chunk), so a client never takes a partial
/// file for a whole one.
#[utoipa::path(get, path = "/api/v1/components/{name}/backup", params(("name" = String, Path, description = "Component name")),
    security(("bearer" = [])),
    responses((status = 200, description = "the component's native backup", content_type = "application/octet-stream"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn component_download(
    State(state): State<Shared>,
    p: Principal,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let spec = configured(&state, &name)?;
    p.require_component(Scope::Export, &name, spec.sensitive)?;
    let job = format!("download-{}", uuid::Uuid::new_v4());
    let reservation = Jobs::reserve(&state, &job, vec![component_key(&name)])?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let staging = state.config.staging_dir.clone();
    let file_name = coffer_components::native_file_name(&spec);
    tokio::task::spawn_blocking(move || {
        let _reservation = reservation;
        let mut out = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let result = std::fs::create_dir_all(&staging)
            .map_err(|e| format!("creating {}: {e}", staging.display()))
            .and_then(|()| {
                coffer_components::download(&spec, &staging, &mut out).map_err(|e| e.to_string())
            })
            .and_then(|n| out.flush().map(|()| n).map_err(|e| e.to_string()));
        match result {
            Ok(n) => tracing::info!(component = %spec.name, "native download: {n} bytes sent"),
            Err(e) => {
                tracing::warn!(component = %spec.name, "native download failed: {e}");
                // An error item makes hyper abort the response.
                let _ = tx.blocking_send(Err(std::io::Error::other(e)));
            }
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
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

const CHUNK: usize = 256 << 10;

/// A blocking writer feeding a response body through a bounded channel, so
/// a slow client slows the component down instead of filling memory.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
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
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the client closed the download",
            )
        })
    }
}

/// Restores one component from an upload of its native form (what
/// GET …/backup gives): multipart `backup=@FILE`, optionally
/// `options='{"mode": "overwrite"}'`. 202 with the restore id.
#[utoipa::path(post, path = "/api/v1/components/{name}/restore", params(("name" = String, Path, description = "Component name")),
    request_body(content_type = "multipart/form-data", description = "`backup`: the native file; `options`: JSON (RestoreOptionsBody)"),
    security(("bearer" = [])),
    responses((status = 202, body = Accepted), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn component_restore(
    State(state): State<Shared>,
    p: Principal,
    Path(name): Path<String>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    let spec = configured(&state, &name)?;
    p.require_component(Scope::Restore, &name, spec.sensitive)?;
    let upload = read_upload(&state, &headers, multipart, "backup", "options").await?;
    let Some(path) = upload.file else {
        return Err(ApiError::invalid(
            "no backup part: send the component's file as backup=@FILE",
        ));
    };
    let options: RestoreOptionsBody =
        serde_json::from_str(upload.settings.as_deref().unwrap_or("{}"))
            .map_err(|e| ApiError::invalid(format!("options: {e}")))?;
    let options = restore_options(options)?;
    let id = uuid::Uuid::new_v4();
    let item = RestoreItem {
        source: ItemSource::File(PortableFile {
            path,
            file_name: coffer_components::native_file_name(&spec),
            content: coffer_components::native_content(&spec),
            sealed: false,
            identity: None,
        }),
        dest: spec,
    };
    verify_files(std::slice::from_ref(&item), None).await?;
    launch_restore(
        &state,
        RestoreJob {
            id: format!("restore-{id}"),
            backup_id: format!("upload-{id}"),
            target: None,
            items: vec![item],
            options,
            identity: None,
            spool: Some(upload.spool),
        },
    )
}
