//! The restore wizard: choose components, override where each goes (the
//! configured value shown beside each field), choose the mode, review a
//! summary, start — then the restore's page follows each component from
//! RESTORING to READY or ERROR.

use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Redirect, Response};
use coffer_model::access::Scope;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::console::ConsoleState;
use crate::console::actions::fragment;
use crate::console::client::{Failure, segment};
use crate::console::forms::FormData;
use crate::console::layout::{Section, alert, csrf, failure, page};
use crate::console::session::Session;
use crate::console::view::{is_final, items, job_log, progress, status, text, when};

const MODES: [(&str, &str); 3] = [
    ("refuse", "refuse a destination that is not empty (safest)"),
    ("overwrite", "overwrite files, keep others"),
    (
        "mirror",
        "make the destination exactly the backup (removes other files)",
    ),
];

/// A form field name for a component's override (`/` is in no component
/// name, `.` may be).
fn field_name(component: &str, field: &str) -> String {
    format!("o/{component}/{field}")
}

/// What the wizard needs: the backup and the configured components.
async fn load(
    console: &ConsoleState,
    session: &Session,
    id: &str,
) -> Result<(Value, Value), Failure> {
    let t = session.bearer();
    let b = console
        .call(
            t,
            Method::GET,
            &format!("/api/v1/backups/{}", segment(id)),
            None,
        )
        .await?;
    let c = console
        .call(t, Method::GET, "/api/v1/components", None)
        .await?;
    Ok((b, c))
}

/// The components of the backup that can be restored, with their configuration.
fn restorable<'a>(b: &'a Value, configured: &'a Value) -> Vec<(&'a Value, Option<&'a Value>)> {
    items(&b["components"])
        .iter()
        .filter(|c| text(&c["status"]) == "READY")
        .map(|c| {
            let conf = items(configured).iter().find(|k| k["name"] == c["name"]);
            (c, conf)
        })
        .collect()
}

/// A part of one component to preselect (from the browse page).
#[derive(Debug, Default, Deserialize)]
pub struct Preset {
    component: Option<String>,
    part: Option<String>,
}

fn wizard(
    session: &Session,
    seg: &str,
    b: &Value,
    configured: &Value,
    form: Option<&FormData>,
    preset: &Preset,
    error: Option<&str>,
) -> Markup {
    let redirect = session.can(Scope::RestoreRedirect);
    let chosen = |name: &str| match (form, preset.component.as_deref()) {
        (Some(f), _) => f.all("component").iter().any(|c| c == name),
        (None, Some(only)) => only == name,
        (None, None) => true,
    };
    let value = |k: &str| form.and_then(|f| f.get(k)).unwrap_or("").to_owned();
    let part_of = |name: &str| match form {
        Some(f) => f.get(&format!("part/{name}")).unwrap_or("").to_owned(),
        None if preset.component.as_deref() == Some(name) => {
            preset.part.clone().unwrap_or_default()
        }
        None => String::new(),
    };
    let mode = form
        .and_then(|f| f.get("mode"))
        .unwrap_or("refuse")
        .to_owned();
    html! {
        @if let Some(e) = error { (alert(e)) }
        form.card method="post" action=(format!("/backups/{seg}/restore")) {
            (csrf(session))
            p.hint { "Leave a field empty to restore where the component is configured. Paths must lie below the server's restore roots." }
            @for (c, conf) in restorable(b, configured) {
                @let name = text(&c["name"]);
                fieldset {
                    legend { label.check { input type="checkbox" name="component" value=(name) checked[chosen(name)]; (name) " (" (text(&c["kind"])) ")" } }
                    @if text(&c["kind"]) == "files" {
                        @let id = format!("part-{name}");
                        label for=(id) { "Only this file or directory" }
                        p.hint { "A path below the component's top (browse the backup to find it); empty: all of it. It goes back where it was, or into the path below." }
                        input id=(id) type="text" name=(format!("part/{name}")) value=(part_of(name)) autocomplete="off";
                    }
                    @if let Some(conf) = conf {
                        @for f in items(&conf["overridable"]).iter().filter(|f| redirect || f["redirect"].as_bool() != Some(true)) {
                            @let field = text(&f["name"]);
                            @let id = format!("o-{name}-{field}");
                            @let key = field_name(name, field);
                            label for=(id) { (field) " of " (name) }
                            @if let Some(v) = f["configured"].as_str() { p.hint { "configured: " code { (v) } } }
                            input id=(id) type=(if matches!(field, "password" | "secret_key") { "password" } else { "text" }) name=(key) value=(value(&key)) autocomplete="off";
                        }
                    } @else {
                        p.hint { "Not configured on this server: restored only through an upload." }
                    }
                }
            }
            label for="mode" { "Mode (files and SQLite)" }
            select #mode name="mode" {
                @for (m, what) in MODES { option value=(m) selected[mode == m] { (m) " — " (what) } }
            }
            label.check { input type="checkbox" name="clean" value="1" checked[form.is_some_and(|f| f.checked("clean"))]; "Databases, Redis, buckets: remove what the destination has first" }
            label.check { input type="checkbox" name="no_owner" value="1" checked[form.is_some_and(|f| f.checked("no_owner"))]; "PostgreSQL: do not restore ownership" }
            @if restorable(b, configured).iter().any(|(_, conf)| conf.is_some_and(|k| k["sensitive"] == json!(true))) {
                label for="age_identity" { "age identity (sealed components only)" }
                textarea #age_identity name="age_identity" rows="2" autocomplete="off" { (value("age_identity")) }
            }
            div.actions { button type="submit" name="action" value="review" { "Review…" } }
        }
    }
}

/// The restore request the form describes.
fn request(form: &FormData) -> Value {
    let components = form.all("component");
    let mut overrides = Map::new();
    for c in &components {
        let prefix = format!("o/{c}/");
        let mut fields = Map::new();
        for (k, v) in &form.0 {
            let (Some(field), false) = (k.strip_prefix(&prefix), v.trim().is_empty()) else {
                continue;
            };
            let v = v.trim();
            let typed = match (field, v.parse::<u64>(), v) {
                ("port", Ok(n), _) => json!(n),
                ("path_style", _, "true" | "false") => json!(v == "true"),
                _ => json!(v),
            };
            fields.insert(field.to_owned(), typed);
        }
        if !fields.is_empty() {
            overrides.insert(c.clone(), Value::Object(fields));
        }
    }
    let parts: Map<String, Value> = components
        .iter()
        .filter_map(|c| {
            form.text(&format!("part/{c}"))
                .map(|p| (c.clone(), json!(p)))
        })
        .collect();
    let mut req = json!({
        "components": components,
        "overrides": overrides,
        "parts": parts,
        "options": {
            "mode": form.get("mode").unwrap_or("refuse"),
            "clean": form.checked("clean"),
            "no_owner": form.checked("no_owner"),
        },
    });
    if let Some(id) = form.text("age_identity") {
        req["age_identity"] = json!(id);
    }
    req
}

fn summary(session: &Session, seg: &str, form: &FormData) -> Markup {
    let req = request(form);
    html! {
        form.card method="post" action=(format!("/backups/{seg}/restore")) {
            (csrf(session))
            @for (k, v) in form.0.iter().filter(|(k, _)| k != "csrf" && k != "action") {
                input type="hidden" name=(k) value=(v);
            }
            p.warning { "The restore writes into the destinations below. Check them." }
            div.scroll { table {
                thead { tr { th { "Component" } th { "Goes to" } } }
                tbody {
                    @for c in items(&req["components"]) {
                        @let name = text(c);
                        tr {
                            td { (name) @if let Some(p) = req["parts"][name].as_str() { br; "only " code { (p) } } }
                            td {
                                @match req["overrides"][name].as_object() {
                                    Some(o) => { @for (k, v) in o { code { (k) " = " (if k.contains("password") || k == "secret_key" { "***".to_owned() } else { v.as_str().map_or_else(|| v.to_string(), str::to_owned) }) } " " } },
                                    None => "where it is configured",
                                }
                            }
                        }
                    }
                }
            } }
            p { "Mode: " code { (text(&req["options"]["mode"])) }
                @if req["options"]["clean"] == json!(true) { ", clean first" }
                @if req["options"]["no_owner"] == json!(true) { ", no ownership" } }
            div.actions {
                button type="submit" name="action" value="start" { "Start restore" }
                button.secondary type="submit" name="action" value="edit" { "Change" }
            }
        }
    }
}

/// `GET /backups/{id}/restore`.
pub async fn form(
    State(console): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
    Query(preset): Query<Preset>,
) -> Response {
    let (b, c) = match load(&console, &session, &id).await {
        Ok(x) => x,
        Err(f) => return failure(&session, Section::Backups, &f),
    };
    let body = wizard(&session, &segment(&id), &b, &c, None, &preset, None);
    page(
        &session,
        Section::Backups,
        &format!("Restore backup {id}"),
        body,
    )
    .into_response()
}

/// `POST /backups/{id}/restore`: review, change, or start.
pub async fn submit(
    State(console): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
    form: FormData,
) -> Response {
    if let Err(r) = session.check(&form) {
        return r.into_response();
    }
    let seg = segment(&id);
    let title = format!("Restore backup {id}");
    let start = form.get("action") == Some("start");
    let error = if form.all("component").is_empty() {
        Some("Choose at least one component.".to_owned())
    } else if start {
        let path = format!("/api/v1/backups/{seg}/restore");
        match console
            .call(session.bearer(), Method::POST, &path, Some(&request(&form)))
            .await
        {
            Ok(a) => {
                return Redirect::to(&format!("/restores/{}", segment(text(&a["id"]))))
                    .into_response();
            }
            Err(f) if f.status == axum::http::StatusCode::FORBIDDEN => {
                return failure(&session, Section::Backups, &f);
            }
            Err(f) => Some(f.message),
        }
    } else {
        None
    };
    if form.get("action") == Some("review") && error.is_none() {
        return page(
            &session,
            Section::Backups,
            &title,
            summary(&session, &seg, &form),
        )
        .into_response();
    }
    let (b, c) = match load(&console, &session, &id).await {
        Ok(x) => x,
        Err(f) => return failure(&session, Section::Backups, &f),
    };
    let body = wizard(
        &session,
        &seg,
        &b,
        &c,
        Some(&form),
        &Preset::default(),
        error.as_deref(),
    );
    page(&session, Section::Backups, &title, body).into_response()
}

fn components(id: &str, r: &Value) -> Markup {
    let done = is_final(&r["status"]);
    html! {
        div #live data-poll=[(!done).then(|| format!("/restores/{}/live", segment(id)))] data-final[done] {
            p { "State: " (status(&r["status"])) @if let Some(e) = r["error"].as_str() { " " (e) } }
            div.scroll { table {
                thead { tr { th { "Component" } th { "State" } th { "Progress" } th { "Notes" } } }
                tbody { @for c in items(&r["components"]) { tr {
                    td { (text(&c["name"])) }
                    td { (status(&c["status"])) @if let Some(e) = c["error"].as_str() { br; span.hint { (e) } } }
                    td { (progress(&c["progress"])) }
                    td { @for n in items(&c["notes"]) { (text(n)) br; } }
                } } }
            } }
        }
    }
}

/// `GET /restores/{id}/live`.
pub async fn live(
    State(console): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
) -> Response {
    let path = format!("/api/v1/restores/{}", segment(&id));
    fragment(&console, &session, &path, |r| components(&id, r)).await
}

/// `GET /restores/{id}`.
pub async fn show(
    State(console): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
) -> Response {
    let t = session.bearer();
    let seg = segment(&id);
    let r = match console
        .call(t, Method::GET, &format!("/api/v1/restores/{seg}"), None)
        .await
    {
        Ok(r) => r,
        Err(f) => return failure(&session, Section::Backups, &f),
    };
    let log = console
        .call(t, Method::GET, &format!("/api/v1/restores/{seg}/log"), None)
        .await
        .ok();
    let body = html! {
        dl.facts {
            dt { "Backup" } dd { a.mono href=(format!("/backups/{}", segment(text(&r["backup_id"])))) { (text(&r["backup_id"])) } }
            dt { "Started" } dd { (when(&r["created_at"])) }
            dt { "Finished" } dd { (when(&r["finished_at"])) }
        }
        section.card { h2 { "Components" } (components(&id, &r)) }
        @if let Some(l) = &log {
            section.card { h2 { "Log" } (job_log(l)) }
        }
    };
    page(&session, Section::Backups, &format!("Restore {id}"), body).into_response()
}
