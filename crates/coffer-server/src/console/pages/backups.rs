//! `/backups`: the list (by label and state) and the start form; a backup's
//! page with live per-component progress, log, cancel, delete (confirmed),
//! exports (download, SHA-256 and MD5 with copy buttons) and its restores.

use axum::extract::{Path, Query, State};
use axum::http::{Method, header};
use axum::response::{IntoResponse, Redirect, Response};
use coffer_model::access::Scope;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::console::ConsoleState;
use crate::console::actions::{ApiCall, act, fragment};
use crate::console::client::{query, segment};
use crate::console::forms::FormData;
use crate::console::layout::{Section, alert, csrf, failure, page};
use crate::console::session::Session;
use crate::console::view::{
    is_final, items, job_log, progress, size, size_of, span, status, text, when,
};

/// The list's filters.
#[derive(Debug, Deserialize)]
pub struct Filters {
    label: Option<String>,
    status: Option<String>,
}

const STATES: [&str; 4] = ["", "BACKING_UP", "READY", "ERROR"];

/// `GET /backups`.
async fn list_page(
    console: &ConsoleState,
    session: &Session,
    f: &Filters,
    error: Option<&str>,
) -> Response {
    let t = session.bearer();
    let path = format!(
        "/api/v1/backups{}",
        query(&[
            ("label", f.label.as_deref()),
            ("status", f.status.as_deref())
        ])
    );
    let backups = match console.call(t, Method::GET, &path, None).await {
        Ok(b) => b,
        Err(e) => return failure(session, Section::Backups, &e),
    };
    let components = if session.can(Scope::BackupsWrite) {
        console
            .call(t, Method::GET, "/api/v1/components", None)
            .await
            .ok()
    } else {
        None
    };
    let body = html! {
        @if let Some(e) = error { (alert(e)) }
        @if let Some(c) = &components { (start_form(session, items(c))) }
        @if session.can(Scope::Restore) {
            div.actions { a.button.secondary href="/upload" { "Restore an export file…" } }
        }
        form.card method="get" action="/backups" role="search" {
            div.grid {
                div { label for="f-label" { "Label" } input #f-label type="text" name="label" value=[f.label.as_deref()]; }
                div {
                    label for="f-status" { "State" }
                    select #f-status name="status" {
                        @for s in STATES {
                            option value=(s) selected[f.status.as_deref().unwrap_or("") == s] { @if s.is_empty() { "any" } @else { (s) } }
                        }
                    }
                }
            }
            div.actions { button.secondary type="submit" { "Filter" } }
        }
        div.scroll { table {
            thead { tr { th { "Backup" } th { "Label" } th { "State" } th { "Started" } th { "Size" } th { "Took" } } }
            tbody {
                @for b in items(&backups["backups"]) {
                    tr {
                        td { a.mono href=(format!("/backups/{}", segment(text(&b["id"])))) { (text(&b["id"])) } }
                        td { (text(&b["label"])) }
                        td { (status(&b["status"])) }
                        td { (when(&b["created_at"])) }
                        td { (size_of(&b["bytes"])) }
                        td { @if let Some(d) = b["duration_secs"].as_i64() { (span(d)) } }
                    }
                }
            }
        } }
    };
    page(session, Section::Backups, "Backups", body).into_response()
}

fn start_form(session: &Session, components: &[Value]) -> Markup {
    html! {
        form.card method="post" action="/backups" {
            h2 { "Start a backup" }
            (csrf(session))
            label for="label" { "Label" }
            input #label type="text" name="label" placeholder="e.g. before-upgrade";
            fieldset {
                legend { "Components" }
                p.hint { "None checked: every component." }
                @for c in components {
                    @let name = text(&c["name"]);
                    label.check { input type="checkbox" name="component" value=(name); (name) " (" (text(&c["kind"])) ")" }
                }
            }
            div.actions { button type="submit" { "Start backup" } }
        }
    }
}

/// `GET /backups`.
pub async fn list(
    State(console): State<ConsoleState>,
    session: Session,
    Query(f): Query<Filters>,
) -> Response {
    list_page(&console, &session, &f, None).await
}

/// `POST /backups`: starts a backup and shows it.
pub async fn start(
    State(console): State<ConsoleState>,
    session: Session,
    form: FormData,
) -> Response {
    if let Err(r) = session.check(&form) {
        return r.into_response();
    }
    let mut body = json!({});
    if let Some(label) = form.text("label") {
        body["label"] = json!(label);
    }
    let components = form.all("component");
    if !components.is_empty() {
        body["components"] = json!(components);
    }
    match console
        .call(
            session.bearer(),
            Method::POST,
            "/api/v1/backups",
            Some(&body),
        )
        .await
    {
        Ok(a) => Redirect::to(&format!("/backups/{}", segment(text(&a["id"])))).into_response(),
        Err(f) => {
            let filters = Filters {
                label: None,
                status: None,
            };
            let mut res = list_page(&console, &session, &filters, Some(&f.message)).await;
            *res.status_mut() = f.status;
            res
        }
    }
}

/// The live part of a backup's page: its components' states and progress.
fn components(id: &str, b: &Value) -> Markup {
    let done = is_final(&b["status"]);
    html! {
        div #live data-poll=[(!done).then(|| format!("/backups/{}/live", segment(id)))] data-final[done] {
            p { "State: " (status(&b["status"])) @if let Some(e) = b["error"].as_str() { " " (e) } }
            div.scroll { table {
                thead { tr { th { "Component" } th { "Kind" } th { "State" } th { "Progress" } th { "Files" } th { "Size" } th { "Added" } th { "Took" } } }
                tbody {
                    @for c in items(&b["components"]) {
                        tr {
                            td {
                                (text(&c["name"]))
                                @if done && text(&c["kind"]) == "files" && text(&c["status"]) == "READY" {
                                    " " a href=(format!("/backups/{}/components/{}/tree", segment(id), segment(text(&c["name"])))) { "browse" }
                                }
                            }
                            td { (text(&c["kind"])) }
                            td { (status(&c["status"])) @if let Some(e) = c["error"].as_str() { br; span.hint { (e) } } }
                            td { (progress(&c["progress"])) }
                            td { @if let Some(n) = c["files"].as_u64() { (n) } }
                            td { (size_of(&c["bytes"])) }
                            td { (size_of(&c["bytes_added"])) }
                            td { @if let Some(d) = c["duration_secs"].as_i64() { (span(d)) } }
                        }
                    }
                }
            } }
        }
    }
}

/// `GET /backups/{id}/live`: the fragment the page's script polls.
pub async fn live(
    State(console): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
) -> Response {
    let path = format!("/api/v1/backups/{}", segment(&id));
    fragment(&console, &session, &path, |b| components(&id, b)).await
}

/// `GET /backups/{id}`.
pub async fn show(
    State(console): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
) -> Response {
    let t = session.bearer();
    let seg = segment(&id);
    let b = match console
        .call(t, Method::GET, &format!("/api/v1/backups/{seg}"), None)
        .await
    {
        Ok(b) => b,
        Err(f) => return failure(&session, Section::Backups, &f),
    };
    let log = console
        .call(t, Method::GET, &format!("/api/v1/backups/{seg}/log"), None)
        .await
        .ok();
    let exports = if session.can(Scope::Export) {
        console
            .call(
                t,
                Method::GET,
                &format!("/api/v1/backups/{seg}/exports"),
                None,
            )
            .await
            .ok()
    } else {
        None
    };
    let running = !is_final(&b["status"]);
    let ready = text(&b["status"]) == "READY";
    let body = html! {
        dl.facts {
            dt { "Label" } dd { (text(&b["label"])) }
            dt { "Target" } dd { (text(&b["target"])) }
            dt { "Started" } dd { (when(&b["created_at"])) }
            dt { "Finished" } dd { (when(&b["finished_at"])) }
            dt { "Size" } dd { (size(b["bytes"].as_u64().unwrap_or(0))) " (" (size(b["bytes_added"].as_u64().unwrap_or(0))) " new)" }
            @if b["pinned"].as_bool() == Some(true) { dt { "Pinned" } dd { "kept by retention" } }
        }
        div.actions {
            @if ready && session.can(Scope::Restore) {
                a.button href=(format!("/backups/{seg}/restore")) { "Restore…" }
            }
            @if running && session.can(Scope::BackupsWrite) {
                form method="post" action=(format!("/backups/{seg}/cancel")) {
                    (csrf(&session))
                    button.secondary type="submit" { "Cancel" }
                }
            }
            @if !running && session.can(Scope::BackupsDelete) {
                a.button.secondary href=(format!("/backups/{seg}/delete")) { "Delete…" }
            }
        }
        section.card { h2 { "Components" } (components(&id, &b)) }
        @if let Some(e) = &exports { (export_table(&session, items(&e["exports"]))) }
        @if ready && session.can(Scope::Export) { (export_form(&session, &seg)) }
        (restore_table(items(&b["restores"])))
        @if let Some(l) = &log {
            section.card {
                h2 { "Log" }
                (job_log(l))
            }
        }
    };
    page(&session, Section::Backups, &format!("Backup {id}"), body).into_response()
}

fn export_table(session: &Session, exports: &[Value]) -> Markup {
    html! {
        section.card {
            h2 { "Exports" }
            @if exports.is_empty() { p.hint { "None yet." } } @else {
                div.scroll { table {
                    thead { tr { th { "File" } th { "State" } th { "Size" } th { "SHA-256" } th { "MD5" } th { span.sr-only { "Actions" } } } }
                    tbody { @for e in exports {
                        @let ready = text(&e["status"]) == "READY";
                        tr {
                            td { (text(&e["name"])) }
                            td { (status(&e["status"])) }
                            td { (size_of(&e["size"])) }
                            td.hash { (text(&e["sha256"])) @if ready { " " button.secondary type="button" data-copy=(text(&e["sha256"])) { "Copy" } } }
                            td.hash { (text(&e["md5"])) @if ready { " " button.secondary type="button" data-copy=(text(&e["md5"])) { "Copy" } } }
                            td { div.actions {
                                @if ready { a href=(format!("/exports/{}/download", segment(text(&e["id"])))) download { "Download" } }
                                form method="post" action=(format!("/exports/{}/delete", segment(text(&e["id"])))) data-confirm="Delete this export file?" {
                                    (csrf(session)) input type="hidden" name="backup" value=(text(&e["backup_id"]));
                                    button.secondary type="submit" { "Delete" }
                                }
                            } }
                        }
                    } }
                } }
            }
        }
    }
}

/// Exports are encrypted with a passphrase (Terraform Enterprise's and
/// Auth0's way) or to age public keys (for scripts).
fn export_form(session: &Session, seg: &str) -> Markup {
    html! {
        form.card method="post" action=(format!("/backups/{seg}/exports")) {
            h2 { "Export this backup" }
            (csrf(session))
            p.hint { "The file is encrypted with a passphrase (12 characters or more), or to age public keys. Only they open it." }
            label for="export-password" { "Passphrase" }
            input #export-password type="password" name="password" autocomplete="new-password" minlength="12";
            label for="export-recipient" { "or age recipients (age1…, one per line)" }
            textarea #export-recipient name="age_recipient" rows="2" {}
            div.actions { button.secondary type="submit" { "Export" } }
        }
    }
}

fn restore_table(restores: &[Value]) -> Markup {
    html! {
        @if !restores.is_empty() {
            section.card {
                h2 { "Restores of this backup" }
                div.scroll { table {
                    thead { tr { th { "Restore" } th { "State" } th { "Started" } th { "Components" } } }
                    tbody { @for r in restores { tr {
                        td { a.mono href=(format!("/restores/{}", segment(text(&r["id"])))) { (text(&r["id"])) } }
                        td { (status(&r["status"])) }
                        td { (when(&r["created_at"])) }
                        td { @for c in items(&r["components"]) { (text(&c["name"])) " " (status(&c["status"])) " " } }
                    } } }
                } }
            }
        }
    }
}

/// `POST /backups/{id}/cancel`.
pub async fn cancel(
    State(console): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
    form: FormData,
) -> Response {
    let seg = segment(&id);
    let call = ApiCall::post(format!("/api/v1/backups/{seg}/cancel"), json!({}));
    act(
        &console,
        &session,
        &form,
        Section::Backups,
        call,
        &format!("/backups/{seg}"),
    )
    .await
}

/// `POST /backups/{id}/exports`: with a passphrase or age recipients (the
/// API says which is missing or wrong).
pub async fn export(
    State(console): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
    form: FormData,
) -> Response {
    let seg = segment(&id);
    let mut body = json!({});
    if let Some(p) = form.get("password").filter(|p| !p.is_empty()) {
        body["password"] = json!(p);
    }
    let recipients: Vec<&str> = form
        .get("age_recipient")
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    if !recipients.is_empty() {
        body["age_recipient"] = json!(recipients);
    }
    let call = ApiCall::post(format!("/api/v1/backups/{seg}/exports"), body);
    act(
        &console,
        &session,
        &form,
        Section::Backups,
        call,
        &format!("/backups/{seg}"),
    )
    .await
}

/// `GET /backups/{id}/delete`: asks before deleting.
pub async fn confirm_delete(session: Session, Path(id): Path<String>) -> Response {
    let seg = segment(&id);
    let body = html! {
        p.warning { "Deleting backup " code { (id) } " removes its snapshots from the target's repository. It cannot be undone." }
        div.actions {
            form method="post" action=(format!("/backups/{seg}/delete")) {
                (csrf(&session))
                button.danger type="submit" { "Delete this backup" }
            }
            a.button.secondary href=(format!("/backups/{seg}")) { "Keep it" }
        }
    };
    page(&session, Section::Backups, "Delete a backup?", body).into_response()
}

/// `POST /backups/{id}/delete`.
pub async fn delete(
    State(console): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
    form: FormData,
) -> Response {
    let call = ApiCall::delete(format!("/api/v1/backups/{}", segment(&id)));
    act(
        &console,
        &session,
        &form,
        Section::Backups,
        call,
        "/backups",
    )
    .await
}

/// `GET /exports/{id}/download`: the API's download, streamed through
/// (its length, checksum headers and ranges included).
pub async fn download(
    State(console): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
) -> Response {
    let path = format!("/api/v1/exports/{}/download", segment(&id));
    let res = console
        .send(session.bearer(), Method::GET, &path, None)
        .await;
    if !res.status().is_success() {
        let status = res.status();
        return (
            status,
            page(
                &session,
                Section::Backups,
                "Download refused",
                alert(&format!("The API answered {status}.")),
            ),
        )
            .into_response();
    }
    let (parts, body) = res.into_parts();
    let mut out = Response::new(body);
    *out.status_mut() = parts.status;
    for name in [
        header::CONTENT_TYPE,
        header::CONTENT_LENGTH,
        header::CONTENT_DISPOSITION,
        header::ETAG,
        header::ACCEPT_RANGES,
        header::CONTENT_RANGE,
    ] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

/// `POST /exports/{id}/delete`: removes an export file (the backup stays).
pub async fn delete_export(
    State(console): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
    form: FormData,
) -> Response {
    let back = form.text("backup").map_or_else(
        || "/backups".to_owned(),
        |b| format!("/backups/{}", segment(&b)),
    );
    let call = ApiCall::delete(format!("/api/v1/exports/{}", segment(&id)));
    act(&console, &session, &form, Section::Backups, call, &back).await
}
