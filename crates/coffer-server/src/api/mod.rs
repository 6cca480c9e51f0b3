//! The HTTP API under `/api/v1`, plus `/healthz`, `/metrics` and the OpenAPI
//! document. One file per resource; the route table below is the one place
//! that says which scope each route needs — its guard checks it before the
//! handler reads anything — and tests hold it, the OpenAPI document and
//! docs/api.md's table to the same answer.

pub mod audit;
pub mod backups;
pub mod browse;
pub mod checks;
pub mod common;
pub mod dcos;
pub mod drills;
pub mod error;
pub mod exports;
pub mod notifications;
pub mod prunes;
pub mod restores;
pub mod retention;
pub mod schedules;
pub mod serve;
pub mod system;
pub mod targets;
pub mod tfe;
pub mod tokens;
pub mod uploads;
pub mod users;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use coffer_model::access::Scope;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api::common::guard;
use crate::api::error::ApiError;
use crate::error::ServiceError;
use crate::state::Shared;

/// Declares every route once: the table [`ROUTES`] and the router built
/// from it. `upload` marks routes whose body is counted against
/// `server.max_upload_mib` instead of `server.max_json_bytes`.
macro_rules! api_routes {
    ($( $method:ident $path:literal, $scope:expr => $handler:path $(, $upload:ident)? ;)*) => {
        /// Every route: method, path and the scope its guard checks (`None`: public).
        // Read by the tests that hold the router, the OpenAPI document and
        // docs/api.md to one answer.
        #[cfg_attr(not(test), allow(dead_code))]
        pub const ROUTES: &[(&str, &str, Option<Scope>)] =
            &[$((stringify!($method), $path, $scope)),*];

        fn routes(state: &Shared) -> Router<Shared> {
            let mut router = Router::new();
            $(
                let route = axum::routing::$method($handler);
                let scope: Option<Scope> = $scope;
                let route = match scope {
                    Some(s) => route.route_layer(from_fn_with_state((Arc::clone(state), s), guard)),
                    None => route,
                };
                $( let route = { let _ = stringify!($upload); route.layer(DefaultBodyLimit::disable()) }; )?
                router = router.route($path, route);
            )*
            router
        }
    };
}

api_routes! {
    get "/healthz", None => system::healthz;
    get "/metrics", None => system::metrics;
    get "/api/v1/openapi.json", None => openapi;
    get "/api/v1/components", Some(Scope::BackupsRead) => system::list_components;
    post "/api/v1/backups", Some(Scope::BackupsWrite) => backups::create_backup;
    get "/api/v1/backups", Some(Scope::BackupsRead) => backups::list_backups;
    get "/api/v1/backups/{id}", Some(Scope::BackupsRead) => backups::show_backup;
    get "/api/v1/backups/{id}/components/{name}/tree", Some(Scope::BackupsRead) => browse::browse_tree;
    put "/api/v1/backups/{id}", Some(Scope::BackupsDelete) => backups::change_backup;
    delete "/api/v1/backups/{id}", Some(Scope::BackupsDelete) => backups::delete_backup;
    get "/api/v1/backups/{id}/log", Some(Scope::BackupsRead) => backups::backup_log;
    post "/api/v1/backups/{id}/cancel", Some(Scope::BackupsWrite) => backups::cancel_backup;
    post "/api/v1/backups/{id}/restore", Some(Scope::Restore) => restores::create_restore;
    post "/api/v1/backups/{id}/drills", Some(Scope::Restore) => drills::create_drill;
    get "/api/v1/drills/{id}", Some(Scope::BackupsRead) => drills::show_drill;
    post "/api/v1/backups/{id}/exports", Some(Scope::Export) => exports::create_export;
    get "/api/v1/backups/{id}/exports", Some(Scope::Export) => exports::list_exports;
    get "/api/v1/exports/{id}", Some(Scope::Export) => exports::show_export;
    delete "/api/v1/exports/{id}", Some(Scope::Export) => exports::delete_export;
    get "/api/v1/exports/{id}/download", Some(Scope::Export) => exports::download_export;
    post "/api/v1/restores", Some(Scope::Restore) => uploads::restore_upload, upload;
    post "/api/v1/restore", Some(Scope::Restore) => uploads::restore_upload_tfe, upload;
    post "/_backup/api/v1/backup", Some(Scope::Export) => tfe::backup;
    post "/_backup/api/v1/restore", Some(Scope::Restore) => tfe::restore, upload;
    get "/api/v1/restores", Some(Scope::BackupsRead) => restores::list_restores;
    get "/api/v1/restores/{id}", Some(Scope::BackupsRead) => restores::show_restore;
    get "/api/v1/restores/{id}/log", Some(Scope::BackupsRead) => restores::restore_log;
    get "/api/v1/components/{name}/backup", Some(Scope::Export) => uploads::component_download;
    post "/api/v1/components/{name}/restore", Some(Scope::Restore) => uploads::component_restore, upload;
    get "/api/v1/backup/{name}", Some(Scope::Export) => uploads::component_download_flowg;
    post "/api/v1/restore/{name}", Some(Scope::Restore) => uploads::component_restore_flowg, upload;
    get "/api/v1/targets", Some(Scope::TargetsRead) => targets::list_targets;
    post "/api/v1/targets", Some(Scope::TargetsWrite) => targets::create_target;
    post "/api/v1/targets/validate", Some(Scope::TargetsWrite) => targets::probe_target;
    get "/api/v1/targets/{name}", Some(Scope::TargetsRead) => targets::show_target;
    put "/api/v1/targets/{name}", Some(Scope::TargetsWrite) => targets::update_target;
    delete "/api/v1/targets/{name}", Some(Scope::TargetsWrite) => targets::delete_target;
    post "/api/v1/targets/{name}/validate", Some(Scope::TargetsWrite) => targets::validate_target;
    post "/api/v1/targets/{name}/rebuild", Some(Scope::TargetsWrite) => targets::rebuild_target;
    post "/api/v1/targets/{name}/state", Some(Scope::Admin) => targets::restore_state;
    post "/api/v1/targets/{name}/prune", Some(Scope::Maintenance) => prunes::prune_target;
    get "/api/v1/prunes/{id}", Some(Scope::Maintenance) => prunes::show_prune;
    post "/api/v1/targets/{name}/check", Some(Scope::Maintenance) => checks::check_target;
    get "/api/v1/checks/{id}", Some(Scope::Maintenance) => checks::show_check;
    get "/api/v1/schedules", Some(Scope::SchedulesRead) => schedules::list_schedules;
    post "/api/v1/schedules", Some(Scope::SchedulesWrite) => schedules::create_schedule;
    get "/api/v1/schedules/{name}", Some(Scope::SchedulesRead) => schedules::show_schedule;
    put "/api/v1/schedules/{name}", Some(Scope::SchedulesWrite) => schedules::update_schedule;
    delete "/api/v1/schedules/{name}", Some(Scope::SchedulesWrite) => schedules::delete_schedule;
    post "/api/v1/schedules/{name}/run", Some(Scope::BackupsWrite) => schedules::run_schedule;
    get "/api/v1/retention/preview", Some(Scope::BackupsRead) => retention::preview_retention;
    get "/api/v1/notifications", Some(Scope::NotificationsRead) => notifications::list_notifications;
    post "/api/v1/notifications", Some(Scope::NotificationsWrite) => notifications::create_notification;
    get "/api/v1/notifications/{name}", Some(Scope::NotificationsRead) => notifications::show_notification;
    put "/api/v1/notifications/{name}", Some(Scope::NotificationsWrite) => notifications::update_notification;
    delete "/api/v1/notifications/{name}", Some(Scope::NotificationsWrite) => notifications::delete_notification;
    post "/api/v1/notifications/{name}/test", Some(Scope::NotificationsWrite) => notifications::test_notification;
    get "/api/v1/tokens", Some(Scope::TokensAdmin) => tokens::list_tokens;
    post "/api/v1/tokens", Some(Scope::TokensAdmin) => tokens::create_token;
    delete "/api/v1/tokens/{id}", Some(Scope::TokensAdmin) => tokens::revoke_token;
    post "/api/v1/auth/login", None => users::login;
    get "/api/v1/users", Some(Scope::TokensAdmin) => users::list_users;
    post "/api/v1/users", Some(Scope::TokensAdmin) => users::create_user;
    delete "/api/v1/users/{id}", Some(Scope::TokensAdmin) => users::disable_user;
    get "/api/v1/audit", Some(Scope::AuditRead) => audit::list_audit;
    get "/api/v1/audit/verify", Some(Scope::AuditRead) => audit::verify_audit;
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A Coffer token (`cft_…`, optionally prefixed `pat:`) or a login token \
                         (`jwt:…`). Each operation lists the one scope it needs.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document, generated from the handlers. Each operation's
/// security requirement names its scope; `x-coffer-components` says how the
/// token's component list applies (`each`: every component the request
/// touches is checked; `filter`: the answer lists only the token's; `all`:
/// the whole installation, so a token limited to components is refused).
#[derive(OpenApi)]
#[openapi(
    info(title = "Coffer API", description = "Backups and restores of self-hosted applications. See docs/api.md."),
    paths(
        system::healthz, system::metrics, system::list_components,
        backups::create_backup, backups::list_backups, backups::show_backup, backups::backup_log,
        backups::cancel_backup, backups::change_backup, backups::delete_backup, browse::browse_tree,
        drills::create_drill, drills::show_drill,
        restores::create_restore, restores::list_restores, restores::show_restore, restores::restore_log,
        exports::create_export, exports::list_exports, exports::show_export,
        exports::download_export, exports::delete_export,
        uploads::restore_upload, uploads::restore_upload_tfe, uploads::component_download,
        tfe::backup, tfe::restore,
        uploads::component_restore, uploads::component_download_flowg, uploads::component_restore_flowg,
        targets::list_targets, targets::show_target, targets::create_target, targets::update_target,
        targets::validate_target, targets::probe_target, targets::rebuild_target, targets::restore_state,
        targets::delete_target,
        prunes::prune_target, prunes::show_prune, checks::check_target, checks::show_check,
        schedules::list_schedules, schedules::show_schedule, schedules::create_schedule,
        schedules::update_schedule, schedules::delete_schedule, schedules::run_schedule,
        retention::preview_retention,
        notifications::list_notifications, notifications::show_notification,
        notifications::create_notification, notifications::update_notification,
        notifications::delete_notification, notifications::test_notification,
        tokens::create_token, tokens::list_tokens, tokens::revoke_token,
        users::login, users::create_user, users::list_users, users::disable_user,
        audit::list_audit, audit::verify_audit,
        openapi,
    ),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// This document, as JSON.
#[utoipa::path(get, path = "/api/v1/openapi.json", responses((status = 200, description = "The OpenAPI document")))]
pub async fn openapi() -> Response {
    match ApiDoc::openapi().to_json() {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

async fn not_found() -> ApiError {
    ServiceError::NotFound("no such endpoint: see /api/v1/openapi.json".into()).into()
}

/// The whole HTTP surface.
pub fn router(state: Shared) -> Router {
    let limit = state.config.max_json_bytes;
    routes(&state)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(from_fn_with_state(
            Arc::clone(&state),
            crate::audit::request::record,
        ))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// (method, path, scope) of every operation in the OpenAPI document.
    fn documented() -> BTreeSet<(String, String, Option<String>)> {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut out = BTreeSet::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                let scope = op["security"]
                    .as_array()
                    .and_then(|s| s.first())
                    .and_then(|req| req["bearer"].as_array())
                    .map(|scopes| {
                        assert_eq!(scopes.len(), 1, "{method} {path}: one scope per operation");
                        scopes[0].as_str().unwrap().to_owned()
                    });
                out.insert((method.clone(), path.clone(), scope));
            }
        }
        out
    }

    fn served() -> BTreeSet<(String, String, Option<String>)> {
        ROUTES
            .iter()
            .map(|(m, p, s)| ((*m).to_owned(), (*p).to_owned(), s.map(|s| s.to_string())))
            .collect()
    }

    #[test]
    fn every_route_served_is_documented_with_the_scope_its_guard_checks() {
        let (documented, served) = (documented(), served());
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let unserved: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty() && unserved.is_empty(),
            "served but not in openapi.json (or with another scope): {undocumented:?}\n\
             in openapi.json but not served: {unserved:?}"
        );
    }

    /// docs/api.md's endpoint table: (method, path, scope) per row.
    fn docs_table() -> BTreeSet<(String, String, Option<String>)> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/api.md");
        let text = std::fs::read_to_string(path).unwrap();
        let mut out = BTreeSet::new();
        for line in text.lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            if cells.len() < 4 {
                continue;
            }
            let scope = cells[2]
                .split('`')
                .nth(1)
                .filter(|s| s.parse::<Scope>().is_ok())
                .map(str::to_owned);
            for endpoint in cells[1].split(',') {
                let endpoint = endpoint.trim().trim_matches('`');
                let Some((method, path)) = endpoint.split_once(' ') else {
                    continue;
                };
                if !matches!(method, "GET" | "POST" | "PUT" | "DELETE") {
                    continue;
                }
                out.insert((method.to_lowercase(), path.to_owned(), scope.clone()));
            }
        }
        out
    }

    #[test]
    fn the_scope_table_in_docs_is_what_the_server_enforces() {
        let (docs, served) = (docs_table(), served());
        let missing: Vec<_> = served.difference(&docs).collect();
        let extra: Vec<_> = docs.difference(&served).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "routes missing from docs/api.md's table (or with another scope): {missing:?}\n\
             rows in docs/api.md the server does not serve that way: {extra:?}"
        );
    }
}
