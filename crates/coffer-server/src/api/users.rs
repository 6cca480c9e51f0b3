//! Users: `/api/v1/users` (create with at most the caller's own powers, list,
//! disable) and `POST /api/v1/auth/login`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::Principal;
use crate::access::login::log_in;
use crate::access::users::{self, new_user};
use crate::api::common::{ApiResult, JsonBody, blocking, time};
use crate::api::error::ErrorBody;
use crate::audit::request::Actor;
use crate::catalog::UserRow;
use crate::state::Shared;

/// Log in.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// User name (FlowG's `username` is accepted too).
    #[serde(alias = "username")]
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
/// authentication; 401 "wrong user name or password" for any mismatch; 429
/// past the lockout of a name, the server's login rate or its concurrent
/// verifications.
#[utoipa::path(post, path = "/api/v1/auth/login", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn login(
    State(state): State<Shared>,
    JsonBody(req): JsonBody<LoginRequest>,
) -> ApiResult<(Extension<Actor>, Json<LoginResponse>)> {
    let l = blocking(move || log_in(&state, &req.name, &req.password)).await?;
    Ok((
        Extension(Actor(l.user_id)),
        Json(LoginResponse {
            token: l.token,
            expires_at: time(l.expires_at),
        }),
    ))
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

fn user_view(u: UserRow) -> UserView {
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
    /// Scopes, as for tokens (only scopes the caller holds).
    pub scopes: Vec<String>,
    /// Limit the user to these components.
    #[serde(default)]
    pub components: Option<Vec<String>>,
}

/// Creates a user with at most the caller's own scopes and components.
#[utoipa::path(post, path = "/api/v1/users", request_body = CreateUser, security(("bearer" = ["tokens:admin"])),
    responses((status = 201, body = UserView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_user(
    State(state): State<Shared>,
    p: Principal,
    JsonBody(req): JsonBody<CreateUser>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    let row = blocking(move || {
        let u = new_user(
            &req.name,
            req.password,
            &req.scopes,
            req.components,
            &state.config.components,
        )?;
        users::issue(&state.catalog, &p, &u)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(user_view(row))))
}

/// Lists users; a caller limited to components sees those within them.
#[utoipa::path(get, path = "/api/v1/users", security(("bearer" = ["tokens:admin"])),
    responses((status = 200, body = Vec<UserView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_users(
    State(state): State<Shared>,
    p: Principal,
) -> ApiResult<Json<Vec<UserView>>> {
    let rows = blocking(move || users::list(&state.catalog, &p)).await?;
    Ok(Json(rows.into_iter().map(user_view).collect()))
}

/// Disables a user: no more logins, and its login tokens stop working at once.
#[utoipa::path(delete, path = "/api/v1/users/{id}", params(("id" = String, Path, description = "User id")),
    security(("bearer" = ["tokens:admin"])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn disable_user(
    State(state): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    blocking(move || users::disable(&state.catalog, &p, &id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
