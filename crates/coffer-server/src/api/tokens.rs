//! `/api/v1/tokens`: create (with at most the caller's own powers), list, revoke.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::Principal;
use crate::access::tokens::{self, new_token};
use crate::api::common::{ApiResult, JsonBody, blocking, time};
use crate::api::error::ErrorBody;
use crate::catalog::TokenRow;
use crate::state::Shared;

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
    /// Scopes (docs/api.md lists them); only scopes the caller holds.
    pub scopes: Vec<String>,
    /// Limit it to these components (required, within its own, for a
    /// caller limited to components).
    #[serde(default)]
    pub components: Option<Vec<String>>,
    /// Lifetime in seconds (default: no expiry; at most the caller's own).
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

/// Creates a token with at most the caller's own scopes and components.
/// The secret is in the response, once.
#[utoipa::path(post, path = "/api/v1/tokens", request_body = CreateToken, security(("bearer" = ["tokens:admin"])),
    responses((status = 201, body = TokenCreated), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_token(
    State(state): State<Shared>,
    p: Principal,
    JsonBody(req): JsonBody<CreateToken>,
) -> ApiResult<(StatusCode, Json<TokenCreated>)> {
    let (row, secret) = blocking(move || {
        let t = new_token(
            &req.name,
            &req.scopes,
            req.components,
            req.expires_in_secs,
            &state.config.components,
        )?;
        tokens::issue(&state.catalog, &p, &t)
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            token: token_view(row),
            secret,
        }),
    ))
}

/// Lists tokens (never their secrets); a caller limited to components sees those within them.
#[utoipa::path(get, path = "/api/v1/tokens", security(("bearer" = ["tokens:admin"])),
    responses((status = 200, body = Vec<TokenView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_tokens(
    State(state): State<Shared>,
    p: Principal,
) -> ApiResult<Json<Vec<TokenView>>> {
    let rows = blocking(move || tokens::list(&state.catalog, &p)).await?;
    Ok(Json(rows.into_iter().map(token_view).collect()))
}

/// Revokes a token; a caller limited to components, only one within them.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", params(("id" = String, Path, description = "Token id")),
    security(("bearer" = ["tokens:admin"])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_token(
    State(state): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    blocking(move || tokens::revoke(&state.catalog, &p, &id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
