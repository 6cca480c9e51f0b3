//! `/upload`: an export file (`.coffer`) restored into this installation —
//! Terraform Enterprise's migration from the browser. The form's fields come
//! before the file (the page puts the file input last), so the CSRF token
//! and the settings are checked before a byte of the file is read; then the
//! file streams through to `POST /api/v1/restores` as the API's own
//! multipart request (`snapshot` + `config`), which spools it under the
//! server's upload limits.

use axum::body::{Body, Bytes};
use axum::extract::{Multipart, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde_json::{Value, json};

use crate::console::ConsoleState;
use crate::console::client::{answer, segment};
use crate::console::forms::FormData;
use crate::console::layout::{Section, alert, csrf, page};
use crate::console::session::{Session, nonce};

const MODES: [&str; 3] = ["refuse", "overwrite", "mirror"];

fn upload_form(session: &Session, error: Option<&str>) -> Markup {
    html! {
        @if let Some(e) = error { (alert(e)) }
        form.card method="post" action="/upload" enctype="multipart/form-data" {
            (csrf(session))
            p.hint { "An export made by this or another Coffer installation (coffer backup export, the backup page's Export). Its components are restored into the components configured here with the same name and kind." }
            label for="u-password" { "Passphrase the export was made with" }
            input #u-password type="password" name="password" autocomplete="off";
            label for="u-identity" { "or the age identity (AGE-SECRET-KEY-1…) for an export made to age keys" }
            textarea #u-identity name="identity" rows="2" autocomplete="off" {}
            label for="u-components" { "Only these components (comma-separated; empty: all)" }
            input #u-components type="text" name="components";
            label for="u-mode" { "Mode (files and SQLite)" }
            select #u-mode name="mode" { @for m in MODES { option value=(m) { (m) } } }
            label.check { input type="checkbox" name="clean" value="1"; "Databases, Redis, buckets: remove what the destination has first" }
            label.check { input type="checkbox" name="no_owner" value="1"; "PostgreSQL: do not restore ownership (a new installation's roles differ)" }
            // Last: the fields above reach the server before the file.
            label for="u-file" { "Export file (.coffer)" }
            input #u-file type="file" name="snapshot" required;
            div.actions { button type="submit" { "Upload and restore" } }
        }
    }
}

/// `GET /upload`.
pub async fn form(session: Session) -> Response {
    page(
        &session,
        Section::Backups,
        "Restore an export into this installation",
        upload_form(&session, None),
    )
    .into_response()
}

/// The API's `config` part from the form's fields.
fn config(form: &FormData) -> Value {
    let mut config = json!({
        "options": {
            "mode": form.get("mode").unwrap_or("refuse"),
            "clean": form.checked("clean"),
            "no_owner": form.checked("no_owner"),
        }
    });
    if let Some(p) = form.get("password").filter(|p| !p.is_empty()) {
        config["password"] = json!(p);
    }
    if let Some(i) = form.text("identity") {
        config["identity"] = json!(i);
    }
    if let Some(c) = form.text("components") {
        let names: Vec<&str> = c
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        config["components"] = json!(names);
    }
    config
}

fn refused(session: &Session, status: StatusCode, message: &str) -> Response {
    (
        status,
        page(
            session,
            Section::Backups,
            "Restore an export into this installation",
            upload_form(session, Some(message)),
        ),
    )
        .into_response()
}

/// `POST /upload`.
pub async fn submit(
    State(console): State<ConsoleState>,
    session: Session,
    mut multipart: Multipart,
) -> Response {
    let mut form = FormData::default();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => {
                return refused(
                    &session,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "No file: choose the export file.",
                );
            }
            Err(e) => {
                return refused(
                    &session,
                    StatusCode::BAD_REQUEST,
                    &format!("The upload broke off: {e}"),
                );
            }
        };
        let name = field.name().unwrap_or_default().to_owned();
        if name != "snapshot" {
            match field.text().await {
                Ok(v) if form.0.len() < 32 && v.len() <= 64 << 10 => form.0.push((name, v)),
                _ => {
                    return refused(
                        &session,
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "The form's fields are too large or not text.",
                    );
                }
            }
            continue;
        }
        if let Err(forged) = session.check(&form) {
            return forged.into_response();
        }
        return forward(&console, &session, &config(&form), field).await;
    }
}

/// Streams the file to the API as `snapshot`, after `config`, and shows the
/// restore it started or the API's refusal.
async fn forward(
    console: &ConsoleState,
    session: &Session,
    config: &Value,
    mut file: axum::extract::multipart::Field<'_>,
) -> Response {
    let boundary = format!("coffer-console-{}", nonce());
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"config\"\r\nContent-Type: application/json\r\n\r\n{config}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"snapshot\"; filename=\"upload.coffer\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let body =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    let pump = async move {
        if tx.send(Ok(Bytes::from(head))).await.is_err() {
            return;
        }
        loop {
            match file.chunk().await {
                Ok(Some(chunk)) => {
                    if tx.send(Ok(chunk)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
            }
        }
        let _ = tx.send(Ok(Bytes::from(tail))).await;
    };
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let call = console.send_body(
        Some(&session.token),
        Method::POST,
        "/api/v1/restores",
        Some((content_type, Body::from_stream(body))),
    );
    let (res, ()) = tokio::join!(call, pump);
    match answer(res).await {
        Ok(started) => match started["id"].as_str() {
            Some(id) => Redirect::to(&format!("/restores/{}", segment(id))).into_response(),
            None => refused(session, StatusCode::BAD_GATEWAY, "the API named no restore"),
        },
        Err(f) => refused(session, f.status, &f.message),
    }
}
