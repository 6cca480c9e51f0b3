//! What many console handlers do alike: a form's action — its CSRF token
//! checked, one API call, then back to a page or the API's refusal shown —
//! and the live fragment a running job's page polls.

use axum::http::Method;
use axum::response::{IntoResponse, Redirect, Response};
use maud::Markup;
use serde_json::Value;

use super::Console;
use super::forms::FormData;
use super::layout::{Section, alert, failure};
use super::session::Session;

/// One call to the API.
#[derive(Debug)]
pub struct ApiCall {
    /// The method.
    pub method: Method,
    /// The path (segments already encoded).
    pub path: String,
    /// A JSON body.
    pub body: Option<Value>,
}

impl ApiCall {
    /// `POST path` with `body`.
    pub fn post(path: String, body: Value) -> Self {
        Self {
            method: Method::POST,
            path,
            body: Some(body),
        }
    }

    /// `DELETE path`.
    pub fn delete(path: String) -> Self {
        Self {
            method: Method::DELETE,
            path,
            body: None,
        }
    }
}

/// A form's action: refused without this session's CSRF token; otherwise
/// `call`, then a redirect to `back`, or the API's refusal as a page of
/// `section`.
pub async fn act(
    console: &Console,
    session: &Session,
    form: &FormData,
    section: Section,
    call: ApiCall,
    back: &str,
) -> Response {
    if let Err(forged) = session.check(form) {
        return forged.into_response();
    }
    match console
        .call(
            session.bearer(),
            call.method,
            &call.path,
            call.body.as_ref(),
        )
        .await
    {
        Ok(_) => Redirect::to(back).into_response(),
        Err(f) => failure(session, section, &f),
    }
}

/// The fragment a page's script polls: `render` of the API's answer at
/// `path`, or the API's message with its status.
pub async fn fragment(
    console: &Console,
    session: &Session,
    path: &str,
    render: impl FnOnce(&Value) -> Markup,
) -> Response {
    match console
        .call(session.bearer(), Method::GET, path, None)
        .await
    {
        Ok(v) => render(&v).into_response(),
        Err(f) => (f.status, alert(&f.message)).into_response(),
    }
}
