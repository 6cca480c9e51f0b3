//! `/backups/{id}/components/{name}/tree?path=`: one directory of a files
//! component's backup, with its subdirectories to open and, for a user with
//! `restore`, each entry's way into the restore wizard — the everyday
//! "bring back this file" restore.

use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use coffer_model::access::Scope;
use maud::html;
use serde::Deserialize;

use crate::console::ConsoleState;
use crate::console::client::{query, segment};
use crate::console::layout::{Section, failure, page};
use crate::console::session::Session;
use crate::console::view::{items, size_of, text, when};

/// The directory to show.
#[derive(Debug, Deserialize)]
pub struct TreePath {
    path: Option<String>,
}

/// `GET /backups/{id}/components/{name}/tree`.
pub async fn show(
    State(console): State<ConsoleState>,
    session: Session,
    Path((id, name)): Path<(String, String)>,
    Query(q): Query<TreePath>,
) -> Response {
    let dir = q.path.unwrap_or_default();
    let api = format!(
        "/api/v1/backups/{}/components/{}/tree{}",
        segment(&id),
        segment(&name),
        query(&[("path", Some(&dir))])
    );
    let listing = match console
        .call(session.bearer(), Method::GET, &api, None)
        .await
    {
        Ok(l) => l,
        Err(f) => return failure(&session, Section::Backups, &f),
    };
    let here = |sub: &str| {
        format!(
            "/backups/{}/components/{}/tree{}",
            segment(&id),
            segment(&name),
            query(&[("path", Some(sub))])
        )
    };
    let restore = |rel: &str| {
        format!(
            "/backups/{}/restore{}",
            segment(&id),
            query(&[("component", Some(&name)), ("part", Some(rel))])
        )
    };
    let joined = |entry: &str| {
        if dir.is_empty() {
            entry.to_owned()
        } else {
            format!("{}/{entry}", dir.trim_end_matches('/'))
        }
    };
    let crumbs: Vec<(String, String)> = {
        let mut acc = String::new();
        dir.split('/')
            .filter(|s| !s.is_empty())
            .map(|part| {
                acc = if acc.is_empty() {
                    part.to_owned()
                } else {
                    format!("{acc}/{part}")
                };
                (part.to_owned(), acc.clone())
            })
            .collect()
    };
    let can_restore = session.can(Scope::Restore);
    let body = html! {
        nav aria-label="Path" {
            p {
                a href=(format!("/backups/{}", segment(&id))) { "Backup" } " / "
                a href=(here("")) { (name) }
                @for (part, path) in &crumbs { " / " a href=(here(path)) { (part) } }
            }
        }
        @if can_restore && !dir.is_empty() {
            div.actions { a.button.secondary href=(restore(&dir)) { "Restore this directory…" } }
        }
        div.scroll { table {
            thead { tr { th { "Name" } th { "Kind" } th { "Size" } th { "Modified" } @if can_restore { th { span.sr-only { "Actions" } } } } }
            tbody { @for e in items(&listing["entries"]) {
                @let entry = text(&e["name"]);
                tr {
                    td.hash {
                        @if text(&e["kind"]) == "dir" { a href=(here(&joined(entry))) { (entry) "/" } }
                        @else { (entry) }
                        @if let Some(t) = e["link_target"].as_str() { " → " (t) }
                    }
                    td { (text(&e["kind"])) }
                    td { (size_of(&e["size"])) }
                    td { (when(&e["mtime"])) }
                    @if can_restore { td { a href=(restore(&joined(entry))) aria-label=(format!("Restore {entry}")) { "Restore…" } } }
                }
            } }
        } }
    };
    let title = format!("{name} in backup {id}");
    page(&session, Section::Backups, &title, body).into_response()
}
