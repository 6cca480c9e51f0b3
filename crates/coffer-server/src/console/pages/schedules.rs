//! `/schedules`: every schedule with its next and last run, run now,
//! delete; Palette's schedule form (every N days at hours, UTC) or a cron
//! expression in a time zone, with retention; and the retention preview —
//! what each policy keeps, and would delete now.

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use coffer_model::access::Scope;
use maud::{Markup, html};
use serde_json::{Map, Value, json};

use crate::console::ConsoleState;
use crate::console::actions::{ApiCall, act};
use crate::console::client::segment;
use crate::console::forms::FormData;
use crate::console::layout::{Section, alert, csrf, failure, page};
use crate::console::session::Session;
use crate::console::view::{items, status, text, when};

const KEEP: [(&str, &str); 4] = [
    ("keep_days", "Keep every backup of the last N days"),
    ("keep_last", "Keep the last N backups"),
    ("keep_daily", "Keep one a day for N days"),
    ("keep_weekly", "Keep one a week for N weeks"),
];

async fn list_page(
    console: &ConsoleState,
    session: &Session,
    form: Option<&FormData>,
    error: Option<&str>,
) -> Response {
    let t = session.bearer();
    let schedules = match console
        .call(t, Method::GET, "/api/v1/schedules", None)
        .await
    {
        Ok(s) => s,
        Err(f) => return failure(session, Section::Schedules, &f),
    };
    let preview = console
        .call(t, Method::GET, "/api/v1/retention/preview", None)
        .await
        .ok();
    let write = session.can(Scope::SchedulesWrite);
    let body = html! {
        @if let Some(e) = error { (alert(e)) }
        div.scroll { table {
            thead { tr { th { "Schedule" } th { "When" } th { "Next run" } th { "Last run" } th { "Last success" } th { span.sr-only { "Actions" } } } }
            tbody { @for s in items(&schedules["schedules"]) {
                @let name = text(&s["name"]);
                tr {
                    td { (name) @if s["enabled"].as_bool() == Some(false) { " " span.badge { "paused" } } }
                    td.hash { (when_text(&s["spec"])) }
                    td { (when(&s["next_run"])) }
                    td { (status(&s["last_run"]["backup_status"])) " " (text(&s["last_run"]["outcome"])) }
                    td { (when(&s["last_success"]["finished_at"])) }
                    td { div.actions {
                        @if session.can(Scope::BackupsWrite) {
                            form method="post" action=(format!("/schedules/{}/run", segment(name))) { (csrf(session)) button.secondary type="submit" { "Run now" } }
                        }
                        @if write && s["declared"].as_bool() != Some(true) {
                            form method="post" action=(format!("/schedules/{}/delete", segment(name))) data-confirm=(format!("Delete schedule {name}? Its backups stay.")) {
                                (csrf(session)) button.secondary type="submit" { "Delete" }
                            }
                        }
                    } }
                }
            } }
        } }
        @if write { (schedule_form(session, form)) }
        @if let Some(p) = &preview { (preview_view(p)) }
    };
    page(session, Section::Schedules, "Schedules", body).into_response()
}

fn when_text(spec: &Value) -> String {
    if let Some(c) = spec["cron"].as_str() {
        return format!("cron {c} {}", spec["time_zone"].as_str().unwrap_or("UTC"));
    }
    if let Some(d) = spec["every_days"].as_u64() {
        let hours: Vec<String> = items(&spec["hours_utc"])
            .iter()
            .map(|h| format!("{h}:00"))
            .collect();
        return format!("every {d} day(s) at {} UTC", hours.join(", "));
    }
    spec["every_secs"]
        .as_u64()
        .map(|s| format!("every {s} s"))
        .unwrap_or_default()
}

fn schedule_form(session: &Session, form: Option<&FormData>) -> Markup {
    let value = |k: &str| form.and_then(|f| f.get(k)).unwrap_or("").to_owned();
    html! {
        form.card method="post" action="/schedules" {
            h2 { "Add a schedule" }
            (csrf(session))
            label for="s-name" { "Name" }
            input #s-name type="text" name="name" value=(value("name")) required;
            label for="s-label" { "Backup label" }
            input #s-label type="text" name="label" value=(value("label"));
            label for="s-target" { "Target" }
            input #s-target type="text" name="target" value=(value("target")) placeholder="the default target";
            label for="s-components" { "Components (comma-separated; empty: all)" }
            input #s-components type="text" name="components" value=(value("components"));
            fieldset {
                legend { "When" }
                label for="s-days" { "Every N days" }
                input #s-days type="number" min="1" name="every_days" value=(value("every_days"));
                label for="s-hours" { "At these hours (UTC, comma-separated)" }
                input #s-hours type="text" name="hours_utc" value=(value("hours_utc")) placeholder="3, 15";
                p.hint { "Or a cron expression in a time zone instead:" }
                label for="s-cron" { "Cron" }
                input #s-cron type="text" name="cron" value=(value("cron")) placeholder="0 3 * * *";
                label for="s-tz" { "Time zone" }
                input #s-tz type="text" name="time_zone" value=(value("time_zone")) placeholder="Europe/Paris";
            }
            fieldset {
                legend { "Retention" }
                @for (k, label) in KEEP {
                    label for=(format!("s-{k}")) { (label) }
                    input id=(format!("s-{k}")) type="number" min="1" name=(k) value=(value(k));
                }
            }
            div.actions { button type="submit" { "Add schedule" } }
        }
    }
}

fn preview_view(p: &Value) -> Markup {
    html! {
        h2 { "Retention preview" }
        p.hint { "What each policy keeps, and would delete if it ran now. Nothing is deleted here." }
        @for g in items(&p["policies"]) {
            section.card {
                h3 { @if let Some(s) = g["schedule"].as_str() { "Schedule " (s) } @else { "Label " (text(&g["label"])) } }
                p { "Would delete: " strong { (items(&g["delete"]).len()) } ", keeps " (items(&g["keep"]).len()) }
                div.scroll { table {
                    thead { tr { th { "Backup" } th { "Taken" } th { "Verdict" } th { "Why" } } }
                    tbody {
                        @for b in items(&g["delete"]) { tr { td.hash { (text(&b["id"])) } td { (when(&b["taken_at"])) } td { span.badge.bad { "delete" } } td {} } }
                        @for b in items(&g["keep"]) { tr { td.hash { (text(&b["id"])) } td { (when(&b["taken_at"])) } td { span.badge.ok { "keep" } } td { @for r in items(&b["reasons"]) { (text(r)) " " } } } }
                    }
                } }
            }
        }
    }
}

/// The schedule the form describes, as the API takes it.
fn spec(form: &FormData) -> Value {
    let mut spec = Map::new();
    for k in ["name", "label", "target", "cron", "time_zone"] {
        if let Some(v) = form.text(k) {
            spec.insert(k.into(), json!(v));
        }
    }
    let numbers = |v: &str| -> Value {
        let parts: Vec<Value> = v
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<u64>().map_or_else(|_| json!(s), |n| json!(n)))
            .collect();
        Value::Array(parts)
    };
    if let Some(v) = form.text("components") {
        let names: Vec<&str> = v
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        spec.insert("components".into(), json!(names));
    }
    if let Some(v) = form.text("every_days") {
        spec.insert(
            "every_days".into(),
            v.parse::<u64>().map_or_else(|_| json!(v), |n| json!(n)),
        );
    }
    if let Some(v) = form.text("hours_utc") {
        spec.insert("hours_utc".into(), numbers(&v));
    }
    let mut retention = Map::new();
    for (k, _) in KEEP {
        if let Some(v) = form.text(k) {
            retention.insert(
                k.into(),
                v.parse::<u64>().map_or_else(|_| json!(v), |n| json!(n)),
            );
        }
    }
    if !retention.is_empty() {
        spec.insert("retention".into(), Value::Object(retention));
    }
    Value::Object(spec)
}

/// `GET /schedules`.
pub async fn list(State(console): State<ConsoleState>, session: Session) -> Response {
    list_page(&console, &session, None, None).await
}

/// `POST /schedules`: adds one (the API names a wrong field).
pub async fn create(
    State(console): State<ConsoleState>,
    session: Session,
    form: FormData,
) -> Response {
    if let Err(r) = session.check(&form) {
        return r.into_response();
    }
    match console
        .call(
            session.bearer(),
            Method::POST,
            "/api/v1/schedules",
            Some(&spec(&form)),
        )
        .await
    {
        Ok(_) => Redirect::to("/schedules").into_response(),
        Err(f) if f.status == StatusCode::FORBIDDEN => failure(&session, Section::Schedules, &f),
        Err(f) => {
            let mut res = list_page(&console, &session, Some(&form), Some(&f.message)).await;
            *res.status_mut() = f.status;
            res
        }
    }
}

/// `POST /schedules/{name}/run`: shows the backup it started (a drill,
/// check or prune run goes back to the list).
pub async fn run(
    State(console): State<ConsoleState>,
    session: Session,
    Path(name): Path<String>,
    form: FormData,
) -> Response {
    if let Err(r) = session.check(&form) {
        return r.into_response();
    }
    let path = format!("/api/v1/schedules/{}/run", segment(&name));
    let t = session.bearer();
    match console.call(t, Method::POST, &path, Some(&json!({}))).await {
        Ok(a) => {
            let backup = format!("/api/v1/backups/{}", segment(text(&a["id"])));
            match console.call(t, Method::GET, &backup, None).await {
                Ok(_) => {
                    Redirect::to(&format!("/backups/{}", segment(text(&a["id"])))).into_response()
                }
                Err(_) => Redirect::to("/schedules").into_response(),
            }
        }
        Err(f) => failure(&session, Section::Schedules, &f),
    }
}

/// `POST /schedules/{name}/delete`.
pub async fn delete(
    State(console): State<ConsoleState>,
    session: Session,
    Path(name): Path<String>,
    form: FormData,
) -> Response {
    let call = ApiCall::delete(format!("/api/v1/schedules/{}", segment(&name)));
    act(
        &console,
        &session,
        &form,
        Section::Schedules,
        call,
        "/schedules",
    )
    .await
}
