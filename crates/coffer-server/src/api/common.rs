//! What every handler shares: the guard that authenticates and checks the
//! route's scope before anything of the request is read, the JSON body
//! extractor, running services off the async threads, and small views.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use coffer_model::access::Scope;
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

use crate::access::Principal;
use crate::access::tokens::authenticate;
use crate::api::error::{ApiError, from_bytes_rejection, from_rejection};
use crate::audit::request::Actor;
use crate::error::{ServiceError, ServiceResult};
use crate::state::Shared;

/// A handler's result.
pub type ApiResult<T> = Result<T, ApiError>;

/// Runs a service — which reads the catalog, opens repositories or probes
/// targets, all blocking — on the blocking pool.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ServiceResult<T> + Send + 'static,
) -> ApiResult<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => Err(ApiError::internal(format!("a blocking task failed: {e}"))),
    }
}

/// The guard of every authenticated route: resolves the credentials
/// (401), checks the route's scope (403) and hands the principal to the
/// handler — before the handler reads anything else of the request, so a
/// caller without the scope learns nothing from a 404 or 422.
pub async fn guard(
    State((state, scope)): State<(Shared, Scope)>,
    mut req: Request,
    next: Next,
) -> Response {
    let header = match req.headers().get(header::AUTHORIZATION) {
        None => None,
        Some(v) => match v.to_str() {
            Ok(s) => Some(s.to_owned()),
            Err(_) => {
                return ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "malformed Authorization header: not ASCII",
                )
                .into_response();
            }
        },
    };
    let st = std::sync::Arc::clone(&state);
    let principal = blocking(move || authenticate(&st.catalog, &st.login, header.as_deref())).await;
    let p = match principal {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    // The audit log names whoever was authenticated, refused or not.
    let actor = Actor(p.id.clone());
    let mut response = match p.require(scope) {
        Ok(()) => {
            req.extensions_mut().insert(p);
            next.run(req).await
        }
        Err(e) => ApiError::from(e).into_response(),
    };
    response.extensions_mut().insert(actor);
    response
}

impl FromRequestParts<Shared> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &Shared) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| ApiError::internal("a route without its scope guard"))
    }
}

/// A JSON body whose rejections (bad syntax, unknown fields, too large)
/// use the API's error shape, read within `server.idle_timeout_secs`.
pub struct JsonBody<T>(pub T);

impl<T> FromRequest<Shared> for JsonBody<T>
where
    Json<T>: FromRequest<Shared, Rejection = JsonRejection>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Shared) -> Result<Self, Self::Rejection> {
        let limit = state.config.idle_timeout;
        match tokio::time::timeout(limit, Json::<T>::from_request(req, state)).await {
            Ok(r) => r.map(|Json(v)| JsonBody(v)).map_err(from_rejection),
            Err(_) => Err(body_timeout(limit)),
        }
    }
}

/// A whole body read within `server.idle_timeout_secs`, for handlers whose
/// body is optional or has a field filled in from the path.
pub struct RawBody(pub Bytes);

impl FromRequest<Shared> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Shared) -> Result<Self, Self::Rejection> {
        let limit = state.config.idle_timeout;
        match tokio::time::timeout(limit, Bytes::from_request(req, state)).await {
            Ok(r) => r.map(RawBody).map_err(from_bytes_rejection),
            Err(_) => Err(body_timeout(limit)),
        }
    }
}

impl RawBody {
    /// The body as JSON of `T`; an error naming the body otherwise.
    pub fn json<T: DeserializeOwned>(&self) -> ServiceResult<T> {
        serde_json::from_slice(&self.0).map_err(|e| ServiceError::Invalid(format!("body: {e}")))
    }

    /// As [`Self::json`], but an empty body is `T::default()`.
    pub fn json_or_default<T: DeserializeOwned + Default>(&self) -> ServiceResult<T> {
        if self.0.iter().all(u8::is_ascii_whitespace) {
            Ok(T::default())
        } else {
            self.json()
        }
    }

    /// As [`Self::json`], with `"name"` taken from the path when the body
    /// gives none (an update names its object in the URL).
    pub fn json_named<T: DeserializeOwned>(&self, name: &str) -> ServiceResult<T> {
        let mut v: serde_json::Value = self.json()?;
        if let Some(o) = v.as_object_mut() {
            o.entry("name")
                .or_insert_with(|| serde_json::Value::String(name.to_owned()));
        }
        serde_json::from_value(v).map_err(|e| ServiceError::Invalid(format!("body: {e}")))
    }
}

/// The answer to a body that did not arrive in time.
fn body_timeout(limit: std::time::Duration) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        format!(
            "the request body did not arrive within {} s (server.idle_timeout_secs)",
            limit.as_secs()
        ),
    )
}

/// RFC 3339 from Unix seconds.
pub fn time(secs: i64) -> String {
    crate::clock::rfc3339(secs)
}

/// An accepted job.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// The job's id.
    pub id: String,
    /// Its first state.
    pub status: String,
    /// The export a backup with a `password` makes (follow it at
    /// `GET /api/v1/exports/{export_id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export_id: Option<String>,
}

/// `202 Accepted` with the job's id and first state.
pub fn accepted(id: String, status: &str) -> (StatusCode, Json<Accepted>) {
    (
        StatusCode::ACCEPTED,
        Json(Accepted {
            id,
            status: status.to_owned(),
            export_id: None,
        }),
    )
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

/// The log of job `id` as the API shows it.
pub fn job_log(id: String, lines: Vec<(i64, String)>) -> Json<JobLog> {
    Json(JobLog {
        id,
        lines: lines
            .into_iter()
            .map(|(at, line)| LogLine { at: time(at), line })
            .collect(),
    })
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

/// The progress of component `component` of running job `job`.
pub fn progress_view(state: &Shared, job: &str, component: &str) -> Option<ProgressView> {
    state.jobs.progress(job, component).map(|p| ProgressView {
        bytes_done: p.bytes_done,
        bytes_total: p.bytes_total,
        files_done: p.files_done,
        files_total: p.files_total,
    })
}
