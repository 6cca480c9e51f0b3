//! `/`: what is protected and how well — the last backup of each component
//! and its age, the next scheduled runs, the targets and their warnings,
//! and charts of sizes, durations, repository growth and drill times.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::Method;
use axum::response::{IntoResponse, Redirect, Response};
use coffer_model::access::Scope;
use maud::{Markup, html};
use serde_json::Value;

use crate::console::ConsoleState;
use crate::console::charts::{Bar, bars};
use crate::console::client::segment;
use crate::console::layout::{Section, failure, notice, page};
use crate::console::session::Session;
use crate::console::view::{health, items, size, size_of, span, status, text, when};

/// Backups drawn per chart.
const CHART_POINTS: usize = 24;

/// `GET /`.
pub async fn show(State(console): State<ConsoleState>, session: Session) -> Response {
    // A login that may not read backups starts at the first part it may open.
    if !session.can(Scope::BackupsRead) {
        return match first_section(&session) {
            Some(s) => Redirect::to(s.href()).into_response(),
            None => page(
                &session,
                Section::Overview,
                "Overview",
                notice("This user may not see anything in the console: ask an administrator for scopes."),
            )
            .into_response(),
        };
    }
    let t = session.bearer();
    let (components, backups) = match (
        console
            .call(t, Method::GET, "/api/v1/components", None)
            .await,
        console.call(t, Method::GET, "/api/v1/backups", None).await,
    ) {
        (Ok(c), Ok(b)) => (c, b),
        (Err(f), _) | (_, Err(f)) => return failure(&session, Section::Overview, &f),
    };
    let targets = if session.can(Scope::TargetsRead) {
        console
            .call(t, Method::GET, "/api/v1/targets", None)
            .await
            .ok()
    } else {
        None
    };
    let schedules = if session.can(Scope::SchedulesRead) {
        console
            .call(t, Method::GET, "/api/v1/schedules", None)
            .await
            .ok()
    } else {
        None
    };
    let health = console
        .call(None, Method::GET, "/healthz", None)
        .await
        .unwrap_or(Value::Null);
    let backups = items(&backups["backups"]);
    let body = html! {
        @let warnings: std::collections::BTreeSet<&str> = items(&health["warnings"]).iter().map(text)
            .chain(targets.iter().flat_map(items).map(|t| text(&t["warning"])))
            .filter(|w| !w.is_empty()).collect();
        @for w in &warnings { p.warning role="note" { (w) } }
        section.card aria-labelledby="protected" {
            h2 #protected { "Components" }
            (component_table(items(&components), backups))
        }
        @if let Some(s) = &schedules { (schedule_table(items(&s["schedules"]))) }
        @if let Some(t) = &targets { (target_table(items(t))) }
        (charts(items(&components), backups))
    };
    page(&session, Section::Overview, "Overview", body).into_response()
}

/// The first section a user without `backups:read` may open.
fn first_section(session: &Session) -> Option<Section> {
    [
        (Section::Targets, Scope::TargetsRead),
        (Section::Schedules, Scope::SchedulesRead),
        (Section::Access, Scope::TokensAdmin),
    ]
    .into_iter()
    .find(|(_, scope)| session.can(*scope))
    .map(|(s, _)| s)
}

/// The newest backup holding `component` READY, and the newest at all.
fn last_of<'a>(backups: &'a [Value], component: &str) -> (Option<&'a Value>, Option<&'a Value>) {
    let holds = |b: &&Value| {
        items(&b["components"])
            .iter()
            .any(|c| text(&c["name"]) == component)
    };
    let ready = backups.iter().filter(holds).find(|b| {
        items(&b["components"])
            .iter()
            .any(|c| text(&c["name"]) == component && text(&c["status"]) == "READY")
    });
    (ready, backups.iter().find(holds))
}

fn component_table(components: &[Value], backups: &[Value]) -> Markup {
    html! {
        div.scroll { table {
            thead { tr { th { "Component" } th { "Kind" } th { "Last good backup" } th { "Latest" } } }
            tbody {
                @for c in components {
                    @let name = text(&c["name"]);
                    @let (ready, latest) = last_of(backups, name);
                    tr {
                        td { (name) @if c["sensitive"].as_bool() == Some(true) { " " span.badge { "sensitive" } } }
                        td { (text(&c["kind"])) }
                        td {
                            @match ready {
                                Some(b) => { a href=(format!("/backups/{}", segment(text(&b["id"])))) { (when(&b["finished_at"])) } },
                                None => span.badge.bad { "never" },
                            }
                        }
                        td { @if let Some(b) = latest { (status(&b["status"])) } }
                    }
                }
            }
        } }
    }
}

fn schedule_table(schedules: &[Value]) -> Markup {
    html! {
        section.card aria-labelledby="next" {
            h2 #next { "Schedules" }
            @if schedules.is_empty() {
                p.warning { "No schedule: backups run only when someone starts them. " a href="/schedules" { "Add a schedule" } }
            } @else {
                div.scroll { table {
                    thead { tr { th { "Schedule" } th { "Next run" } th { "Last run" } th { "Last success" } } }
                    tbody { @for s in schedules { tr {
                        td { (text(&s["name"])) @if s["enabled"].as_bool() == Some(false) { " " span.badge { "paused" } } }
                        td { (when(&s["next_run"])) }
                        td { (status(&s["last_run"]["backup_status"])) " " (text(&s["last_run"]["outcome"])) }
                        td { (when(&s["last_success"]["finished_at"])) }
                    } } }
                } }
            }
        }
    }
}

fn target_table(targets: &[Value]) -> Markup {
    html! {
        section.card aria-labelledby="where" {
            h2 #where { "Targets" }
            div.scroll { table {
                thead { tr { th { "Target" } th { "Kind" } th { "Mode" } th { "Backups" } th { "Health" } th { "Repository" } th { "Free" } } }
                tbody { @for t in targets { tr {
                    td { (text(&t["name"])) @if t["default"].as_bool() == Some(true) { " " span.badge { "default" } } }
                    td { (text(&t["kind"])) }
                    td { (text(&t["mode"])) }
                    td { (t["backups"].as_u64().unwrap_or(0)) }
                    td { (health(&t["health"])) }
                    td { (size_of(&t["health"]["repository_bytes"])) }
                    td { (size_of(&t["health"]["free_bytes"])) }
                } } }
            } }
        }
    }
}

/// Size and duration per component, repository growth per target, drill times.
fn charts(components: &[Value], backups: &[Value]) -> Markup {
    // Oldest first, the newest CHART_POINTS.
    let recent: Vec<&Value> = backups.iter().take(CHART_POINTS).rev().collect();
    let mut growth: BTreeMap<&str, Vec<Bar>> = BTreeMap::new();
    for b in backups.iter().rev() {
        let series = growth.entry(text(&b["target"])).or_default();
        let before = series.last().map_or(0.0, |l| l.value);
        series.push(Bar {
            label: text(&b["created_at"]).to_owned(),
            value: before + b["bytes_added"].as_u64().unwrap_or(0) as f64,
            failed: false,
        });
    }
    let drills: Vec<Bar> = recent
        .iter()
        .filter_map(|b| {
            let d = &b["last_drill"];
            d["seconds"].as_f64().map(|s| Bar {
                label: text(&d["finished_at"]).to_owned(),
                value: s,
                failed: text(&d["status"]) != "READY",
            })
        })
        .collect();
    html! {
        @if !recent.is_empty() {
            h2 { "Over time" }
            div.grid {
                @for c in components {
                    @let name = text(&c["name"]);
                    @let points: Vec<&Value> = recent.iter().filter_map(|b| items(&b["components"]).iter().find(|x| text(&x["name"]) == name)).collect();
                    @if !points.is_empty() {
                        (bars(&format!("{name}: backup size"), &series(&points, "bytes"), |v| size(v as u64)))
                        (bars(&format!("{name}: backup duration"), &series(&points, "duration_secs"), |v| span(v as i64)))
                    }
                }
                @for (target, series) in &growth {
                    @let tail = &series[series.len().saturating_sub(CHART_POINTS)..];
                    (bars(&format!("{target}: data added to the repository, cumulative"), tail, |v| size(v as u64)))
                }
                @if !drills.is_empty() {
                    (bars("Restore drills: time to restore (RTO)", &drills, |v| format!("{v:.0} s")))
                }
            }
            p.hint { "Newest " (CHART_POINTS) " backups; hover a bar for its time and value." }
        }
    }
}

fn series(points: &[&Value], field: &str) -> Vec<Bar> {
    points
        .iter()
        .map(|c| Bar {
            label: text(&c["finished_at"]).to_owned(),
            value: c[field].as_f64().unwrap_or(0.0),
            failed: text(&c["status"]) == "ERROR",
        })
        .collect()
}
