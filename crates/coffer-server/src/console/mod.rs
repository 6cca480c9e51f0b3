//! The web console at `/`: server-rendered pages (maud) and one small script
//! for live progress, served from assets compiled into the binary.
//!
//! The console is a client of the API, inside the server: every page reads
//! and every form acts by calling the API router in-process with the user's
//! login token (see [`client`]), so it can show and do nothing the API would
//! refuse that user. It adds only what a browser needs: a session cookie
//! (HttpOnly, SameSite=Strict, Secure under TLS), a CSRF token on every
//! form, and headers that keep pages out of frames and caches and scripts to
//! the one file served here (a Content-Security-Policy without
//! `unsafe-inline`). docs/console.md says why it is built this way.

mod actions;
mod assets;
mod charts;
mod client;
mod forms;
mod layout;
mod pages;
mod session;
mod view;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::{Next, from_fn};
use axum::response::Response;
use axum::routing::{get, post};

use crate::state::Shared;

/// What every console handler needs.
pub struct Console {
    /// The server's state (configuration, catalog for sessions).
    pub state: Shared,
    /// The API, called in-process.
    pub api: Router,
    /// Signs CSRF tokens and validated target settings.
    pub forms_key: ring::hmac::Key,
    /// Whether cookies carry `Secure` (the server speaks TLS).
    pub secure: bool,
}

/// The console's handlers' state.
pub type ConsoleState = Arc<Console>;

/// The policy of every console page: scripts, styles and images from this
/// server only, no inline script or style, no frames, forms post here only.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// The console's routes in front of `api`: a request no console route
/// matches goes to the API unchanged.
pub fn router(state: Shared, api: Router) -> Router {
    let forms_key = ring::hmac::Key::new(
        ring::hmac::HMAC_SHA256,
        ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, state.key.login_secret()),
            b"coffer console forms v1",
        )
        .as_ref(),
    );
    let console = Arc::new(Console {
        secure: state.config.tls.is_some(),
        state,
        api: api.clone(),
        forms_key,
    });
    use pages::{access, backups, browse, login, overview, restore, schedules, targets, upload};
    Router::new()
        .route("/assets/{file}", get(assets::serve))
        .route("/login", get(login::show).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/", get(overview::show))
        .route("/backups", get(backups::list).post(backups::start))
        .route("/backups/{id}", get(backups::show))
        .route("/backups/{id}/live", get(backups::live))
        .route("/backups/{id}/cancel", post(backups::cancel))
        .route(
            "/backups/{id}/delete",
            get(backups::confirm_delete).post(backups::delete),
        )
        .route("/backups/{id}/exports", post(backups::export))
        .route("/backups/{id}/components/{name}/tree", get(browse::show))
        .route(
            "/backups/{id}/restore",
            get(restore::form).post(restore::submit),
        )
        .route("/restores/{id}", get(restore::show))
        .route("/restores/{id}/live", get(restore::live))
        .route("/exports/{id}/download", get(backups::download))
        .route("/exports/{id}/delete", post(backups::delete_export))
        // The export streams through to the API, which applies its own upload limit.
        .route(
            "/upload",
            get(upload::form)
                .post(upload::submit)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/targets", get(targets::list))
        .route("/targets/new", get(targets::form).post(targets::submit))
        .route("/schedules", get(schedules::list).post(schedules::create))
        .route("/schedules/{name}/run", post(schedules::run))
        .route("/schedules/{name}/delete", post(schedules::delete))
        .route("/access", get(access::show))
        .route("/tokens", post(access::create_token))
        .route("/tokens/{id}/revoke", post(access::revoke_token))
        .route("/users", post(access::create_user))
        .route("/users/{id}/disable", post(access::disable_user))
        .layer(from_fn(security_headers))
        .with_state(console)
        .fallback_service(api)
}
