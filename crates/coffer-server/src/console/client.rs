//! Calls to the API router, in-process, as the signed-in user: the same
//! guard, scopes, component limits and validation as any API client.

use axum::body::{Body, to_bytes};
use axum::http::{Method, Request, StatusCode, header};
use axum::response::Response;
use serde_json::Value;
use tower::ServiceExt;

use super::Console;

/// Largest JSON answer the console reads (a backup list of a busy server).
const MAX_ANSWER: usize = 32 << 20;

/// An API call that did not succeed: its status and the API's message.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The API's status.
    pub status: StatusCode,
    /// What the API said (its `message`).
    pub message: String,
    /// The whole answer (a failed Validate carries its report).
    pub body: Value,
}

/// An API path segment from a value a user typed or the API gave:
/// percent-encoded so it stays one segment.
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A query string (`?a=1&b=2`) from pairs whose value is set.
pub fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let set: Vec<(&str, &str)> = pairs
        .iter()
        .filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| (*k, v)))
        .collect();
    match serde_urlencoded::to_string(&set) {
        Ok(q) if !q.is_empty() => format!("?{q}"),
        _ => String::new(),
    }
}

impl Console {
    /// Sends a request to the API with `token` and a JSON body, and returns
    /// its response.
    pub async fn send(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Response {
        let body = body.map(|b| ("application/json".to_owned(), Body::from(b.to_string())));
        self.send_body(token, method, path, body).await
    }

    /// Sends a request with any body (its content type, the body).
    pub async fn send_body(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<(String, Body)>,
    ) -> Response {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some((content_type, b)) => req.header(header::CONTENT_TYPE, content_type).body(b),
            None => req.body(Body::empty()),
        };
        let req = match req {
            Ok(r) => r,
            Err(e) => return internal(&format!("building an API request for {path}: {e}")),
        };
        match self.api.clone().oneshot(req).await {
            Ok(res) => res,
            Err(never) => match never {},
        }
    }

    /// Calls the API and reads its JSON answer.
    pub async fn call(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Failure> {
        answer(self.send(token, method, path, body).await).await
    }
}

/// The JSON of an API response, or its failure.
pub async fn answer(res: Response) -> Result<Value, Failure> {
    let status = res.status();
    let bytes = to_bytes(res.into_body(), MAX_ANSWER)
        .await
        .map_err(|e| Failure {
            status: StatusCode::BAD_GATEWAY,
            message: format!("reading the API's answer: {e}"),
            body: Value::Null,
        })?;
    let body: Value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    if status.is_success() {
        Ok(body)
    } else {
        Err(Failure {
            status,
            message: body["message"]
                .as_str()
                .unwrap_or("the request failed")
                .to_owned(),
            body,
        })
    }
}

fn internal(message: &str) -> Response {
    let mut res = Response::new(Body::from(message.to_owned()));
    *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    res
}
