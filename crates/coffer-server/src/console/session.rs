//! The console's session: the user's login token in an HttpOnly,
//! SameSite=Strict cookie (Secure under TLS), the CSRF token every form
//! carries, and the cookie that protects the login form itself.
//!
//! The cookie holds the same login token (`jwt:…`) the API hands out, so a
//! session ends when the token expires (`server.login_lifetime_secs`), when
//! the user is disabled, or when the server key changes; logging out clears
//! the cookie.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use coffer_model::access::Scope;
use rand::RngCore;

use super::ConsoleState;
use super::forms::FormData;
use crate::access::Principal;
use crate::access::tokens::authenticate;

/// The session cookie's name: under TLS with the `__Host-` prefix, which a
/// browser accepts only from this host, over HTTPS, for the whole site —
/// a sibling domain or a plain-HTTP page cannot plant one.
pub fn session_cookie(secure: bool) -> &'static str {
    if secure {
        "__Host-coffer_session"
    } else {
        "coffer_session"
    }
}
/// The login form's CSRF cookie.
pub const LOGIN_COOKIE: &str = "coffer_login";
/// The form field that carries the CSRF token.
pub const CSRF_FIELD: &str = "csrf";

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct Session {
    /// The login token, sent to the API as the bearer.
    pub token: String,
    /// Who it is and what it may do (shows or hides actions; the API decides).
    pub principal: Principal,
    /// This session's CSRF token.
    pub csrf: String,
}

impl Session {
    /// Whether the user holds `scope`: an action it lacks is not offered.
    pub fn can(&self, scope: Scope) -> bool {
        self.principal.has(scope)
    }

    /// The token, for [`super::Console::call`].
    pub fn bearer(&self) -> Option<&str> {
        Some(&self.token)
    }

    /// Refuses a form whose CSRF token is missing or is not this session's.
    pub fn check(&self, form: &FormData) -> Result<(), Forged> {
        let given = form.get(CSRF_FIELD).unwrap_or_default();
        if same(given.as_bytes(), self.csrf.as_bytes()) {
            Ok(())
        } else {
            Err(Forged)
        }
    }
}

/// A form without this session's CSRF token (answered 403 by
/// [`super::layout`]).
#[derive(Debug, Clone, Copy)]
pub struct Forged;

fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, `Secure` under TLS.
pub fn set_cookie(name: &str, value: &str, path: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("coffer_invalid=; Max-Age=0"))
}

/// A fresh random value for the login form's CSRF cookie.
pub fn nonce() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// Whether the login form's CSRF field matches its cookie.
pub fn login_form_matches(headers: &HeaderMap, form: &FormData) -> bool {
    match (cookie(headers, LOGIN_COOKIE), form.get(CSRF_FIELD)) {
        (Some(c), Some(f)) => !c.is_empty() && same(c.as_bytes(), f.as_bytes()),
        _ => false,
    }
}

/// The CSRF token of a session: bound to its login token by the server's key.
pub fn csrf_of(console: &super::Console, token: &str) -> String {
    let tag = ring::hmac::sign(&console.forms_key, format!("csrf\0{token}").as_bytes());
    hex::encode(&tag.as_ref()[..20])
}

impl FromRequestParts<ConsoleState> for Session {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &ConsoleState,
    ) -> Result<Self, Self::Rejection> {
        let to_login = |why: &str| Redirect::to(&format!("/login?{why}")).into_response();
        let name = session_cookie(console.secure);
        let Some(token) = cookie(&parts.headers, name).filter(|t| !t.is_empty()) else {
            return Err(to_login("signed_out"));
        };
        let st = Arc::clone(&console.state);
        let bearer = format!("Bearer {token}");
        let principal = tokio::task::spawn_blocking(move || {
            authenticate(&st.catalog, &st.login, Some(&bearer))
        })
        .await;
        match principal {
            // A user's login only: an API token in the cookie is no session.
            Ok(Ok(principal)) if principal.id.starts_with("usr-") => Ok(Session {
                csrf: csrf_of(console, &token),
                token,
                principal,
            }),
            // Expired, disabled or from an older server key: sign in again.
            _ => Err(to_login("expired")),
        }
    }
}
