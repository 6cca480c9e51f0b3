//! `/api/v1/notifications`: list, show, add, change, delete and test
//! notification destinations.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::access::Principal;
use crate::api::common::{ApiResult, JsonBody, RawBody, blocking, time};
use crate::api::error::ErrorBody;
use crate::notify::service::{self, Destination};
use crate::notify::spec::NotificationSpec;
use crate::state::Shared;

/// A destination.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationView {
    /// Its name.
    pub name: String,
    /// Declared in coffer.toml: read-only over the API.
    pub declared: bool,
    /// Its spec (the secret shown as `***`).
    pub spec: NotificationSpec,
    /// Added (RFC 3339).
    pub created_at: String,
}

fn view((row, spec): Destination) -> NotificationView {
    NotificationView {
        name: row.name,
        declared: row.declared,
        spec,
        created_at: time(row.created_at),
    }
}

/// Every destination.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationList {
    /// By name.
    pub notifications: Vec<NotificationView>,
}

/// What a test message's delivery gave.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestAnswer {
    /// A 2xx answer came back.
    pub delivered: bool,
    /// Tries made (retried on connection failures, 429 and 5xx).
    pub attempts: u32,
    /// The last HTTP status.
    pub status: Option<u16>,
    /// The start of the receiver's answer.
    pub answer: Option<String>,
    /// Why it was not delivered.
    pub error: Option<String>,
}

/// Lists notification destinations.
#[utoipa::path(get, path = "/api/v1/notifications",
    security(("bearer" = ["notifications:read"])),
    extensions(("x-coffer-components" = json!("all"))),
    responses((status = 200, body = NotificationList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_notifications(
    State(state): State<Shared>,
    p: Principal,
) -> ApiResult<Json<NotificationList>> {
    let list = blocking(move || service::list(&state, &p)).await?;
    Ok(Json(NotificationList {
        notifications: list.into_iter().map(view).collect(),
    }))
}

/// Shows a destination.
#[utoipa::path(get, path = "/api/v1/notifications/{name}", params(("name" = String, Path, description = "Notification name")),
    security(("bearer" = ["notifications:read"])),
    extensions(("x-coffer-components" = json!("all"))),
    responses((status = 200, body = NotificationView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn show_notification(
    State(state): State<Shared>,
    p: Principal,
    Path(name): Path<String>,
) -> ApiResult<Json<NotificationView>> {
    let d = blocking(move || service::show(&state, &p, &name)).await?;
    Ok(Json(view(d)))
}

/// Adds a destination: its secret given as itself, its URL's host allowed
/// by `server.target_allow`.
#[utoipa::path(post, path = "/api/v1/notifications", request_body = NotificationSpec,
    security(("bearer" = ["notifications:write"])),
    extensions(("x-coffer-components" = json!("all"))),
    responses((status = 201, body = NotificationView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_notification(
    State(state): State<Shared>,
    p: Principal,
    JsonBody(spec): JsonBody<NotificationSpec>,
) -> ApiResult<(StatusCode, Json<NotificationView>)> {
    let d = blocking(move || service::create(&state, &p, spec)).await?;
    Ok((StatusCode::CREATED, Json(view(d))))
}

/// Replaces a destination's spec (`name` may be left out); 409 for one
/// declared in coffer.toml.
#[utoipa::path(put, path = "/api/v1/notifications/{name}", params(("name" = String, Path, description = "Notification name")),
    request_body = NotificationSpec,
    security(("bearer" = ["notifications:write"])),
    extensions(("x-coffer-components" = json!("all"))),
    responses((status = 200, body = NotificationView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_notification(
    State(state): State<Shared>,
    p: Principal,
    Path(name): Path<String>,
    body: RawBody,
) -> ApiResult<Json<NotificationView>> {
    let spec: NotificationSpec = body.json_named(&name)?;
    let d = blocking(move || service::update(&state, &p, &name, spec)).await?;
    Ok(Json(view(d)))
}

/// Deletes a destination; 409 for one declared in coffer.toml.
#[utoipa::path(delete, path = "/api/v1/notifications/{name}", params(("name" = String, Path, description = "Notification name")),
    security(("bearer" = ["notifications:write"])),
    extensions(("x-coffer-components" = json!("all"))),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_notification(
    State(state): State<Shared>,
    p: Principal,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    blocking(move || service::delete(&state, &p, &name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends a test message now and returns the transport's answer (200 even
/// when it was not delivered: `delivered` and `error` say).
#[utoipa::path(post, path = "/api/v1/notifications/{name}/test", params(("name" = String, Path, description = "Notification name")),
    security(("bearer" = ["notifications:write"])),
    extensions(("x-coffer-components" = json!("all"))),
    responses((status = 200, body = TestAnswer), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn test_notification(
    State(state): State<Shared>,
    p: Principal,
    Path(name): Path<String>,
) -> ApiResult<Json<TestAnswer>> {
    let d = blocking(move || service::test(&state, &p, &name)).await?;
    Ok(Json(TestAnswer {
        delivered: d.error.is_none(),
        attempts: d.attempts,
        status: d.status,
        answer: d.answer,
        error: d.error,
    }))
}
