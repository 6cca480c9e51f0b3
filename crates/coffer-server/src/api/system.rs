//! `/healthz`, `/metrics` and `GET /api/v1/components`.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use coffer_model::access::Scope;

use crate::access::Principal;
use crate::api::common::{ApiResult, blocking};
use crate::api::error::ErrorBody;
use crate::jobs::overrides::overridable_fields;
use crate::state::Shared;
use crate::targets::{SAME_DISK_WARNING, is_same_disk};

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
pub async fn healthz(State(state): State<Shared>) -> ApiResult<Json<Health>> {
    let warnings = blocking(move || {
        let targets = state.catalog.targets()?;
        let mut warnings = Vec::new();
        if !targets.is_empty() && targets.iter().all(|t| is_same_disk(&t.kind)) {
            warnings.push(SAME_DISK_WARNING.to_owned());
        }
        if state.config.components.is_empty() {
            warnings
                .push("no components are configured: add [[components]] to the config file".into());
        }
        Ok(warnings)
    })
    .await?;
    Ok(Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        warnings,
    }))
}

/// Prometheus metrics. No authentication (bind to loopback or firewall it).
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics(State(state): State<Shared>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// A configured component.
#[derive(Debug, Serialize, ToSchema)]
pub struct ComponentView {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: String,
    /// Sensitive components need the `sensitive` scope.
    pub sensitive: bool,
    /// The fields a restore may override (docs/api.md "Restore overrides"),
    /// with their configured values (secrets never shown).
    pub overridable: Vec<OverridableView>,
}

/// A field a restore may override.
#[derive(Debug, Serialize, ToSchema)]
pub struct OverridableView {
    /// The field (`path`, `database`, `bucket`, …).
    pub name: &'static str,
    /// Its configured value: absent for secrets and values read from files,
    /// and for a caller without `restore` (or, for fields that move the data
    /// to another server, without `restore:redirect`).
    pub configured: Option<String>,
    /// Overriding it needs the `restore:redirect` scope too.
    pub redirect: bool,
}

/// Lists the configured components the token may see (its own, and
/// sensitive ones only with the `sensitive` scope).
#[utoipa::path(get, path = "/api/v1/components", security(("bearer" = ["backups:read"])),
    extensions(("x-coffer-components" = json!("filter"))),
    responses((status = 200, body = Vec<ComponentView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_components(
    State(state): State<Shared>,
    p: Principal,
) -> Json<Vec<ComponentView>> {
    Json(
        state
            .config
            .components
            .iter()
            .filter(|c| p.sees(c.name.as_str(), c.sensitive))
            .map(|c| ComponentView {
                name: c.name.to_string(),
                kind: c.kind.name().to_owned(),
                sensitive: c.sensitive,
                overridable: overridable_fields(&c.kind)
                    .into_iter()
                    .map(|f| OverridableView {
                        // Where a component lives is shown to those who may restore it
                        // (and, for another server's fields, move it).
                        configured: f.configured.filter(|_| {
                            p.has(Scope::Restore) && (!f.redirect || p.has(Scope::RestoreRedirect))
                        }),
                        name: f.name,
                        redirect: f.redirect,
                    })
                    .collect(),
            })
            .collect(),
    )
}
