//! Sign in with a user's name and password (the API's login), sign out.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use crate::console::ConsoleState;
use crate::console::forms::FormData;
use crate::console::layout::{alert, bare, notice};
use crate::console::session::{
    CSRF_FIELD, LOGIN_COOKIE, Session, login_form_matches, nonce, session_cookie, set_cookie,
};

/// How long the login form may sit before it is sent.
const LOGIN_FORM_SECS: u64 = 1800;

/// Why the sign-in page is shown.
#[derive(Debug, Deserialize)]
pub struct Why {
    expired: Option<String>,
}

fn form(token: &str, message: Option<Markup>) -> Markup {
    bare(
        "Sign in",
        html! {
            @if let Some(m) = message { (m) }
            form.card method="post" action="/login" {
                input type="hidden" name=(CSRF_FIELD) value=(token);
                label for="name" { "User name" }
                input #name type="text" name="name" autocomplete="username" required autofocus;
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
                div.actions { button type="submit" { "Sign in" } }
            }
        },
    )
}

fn with_form_cookie(
    console: &ConsoleState,
    status: StatusCode,
    message: Option<Markup>,
) -> Response {
    let token = nonce();
    let cookie = set_cookie(
        LOGIN_COOKIE,
        &token,
        "/login",
        LOGIN_FORM_SECS,
        console.secure,
    );
    (
        status,
        [(header::SET_COOKIE, cookie)],
        form(&token, message),
    )
        .into_response()
}

/// `GET /login`.
pub async fn show(State(console): State<ConsoleState>, Query(why): Query<Why>) -> Response {
    let message = why.expired.is_some().then(|| {
        notice("Your session ended (it expired, or the user was changed): sign in again.")
    });
    with_form_cookie(&console, StatusCode::OK, message)
}

/// `POST /login`.
pub async fn submit(
    State(console): State<ConsoleState>,
    headers: HeaderMap,
    form: FormData,
) -> Response {
    if !login_form_matches(&headers, &form) {
        return with_form_cookie(
            &console,
            StatusCode::FORBIDDEN,
            Some(alert(
                "The sign-in form expired or was not sent from this page: try again.",
            )),
        );
    }
    let body = json!({
        "name": form.get("name").unwrap_or_default(),
        "password": form.get("password").unwrap_or_default(),
    });
    match console
        .call(None, Method::POST, "/api/v1/auth/login", Some(&body))
        .await
    {
        Ok(login) => {
            let token = login["token"].as_str().unwrap_or_default();
            let lifetime = console.state.config.login_lifetime.as_secs();
            let session = set_cookie(
                session_cookie(console.secure),
                token,
                "/",
                lifetime,
                console.secure,
            );
            let clear = set_cookie(LOGIN_COOKIE, "", "/login", 0, console.secure);
            let mut res = Redirect::to("/").into_response();
            res.headers_mut().append(header::SET_COOKIE, session);
            res.headers_mut().append(header::SET_COOKIE, clear);
            res
        }
        Err(f) => with_form_cookie(&console, f.status, Some(alert(&f.message))),
    }
}

/// `POST /logout`: clears the session cookie.
pub async fn logout(
    State(console): State<ConsoleState>,
    session: Session,
    form: FormData,
) -> Response {
    if let Err(refused) = session.check(&form) {
        return refused.into_response();
    }
    let clear = set_cookie(session_cookie(console.secure), "", "/", 0, console.secure);
    let mut res = Redirect::to("/login").into_response();
    res.headers_mut().append(header::SET_COOKIE, clear);
    res
}
