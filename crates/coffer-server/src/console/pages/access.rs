//! `/access`: tokens and users (`tokens:admin`). A new token's secret is
//! shown once, on the page that created it; passwords are never shown.
//! The API grants no more than the caller holds.

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use coffer_model::access::Scope;
use maud::{Markup, html};
use serde_json::{Value, json};

use crate::console::ConsoleState;
use crate::console::actions::{ApiCall, act};
use crate::console::client::segment;
use crate::console::forms::FormData;
use crate::console::layout::{Section, alert, csrf, failure, page};
use crate::console::session::Session;
use crate::console::view::{items, text, when};

/// What the page shows above the lists.
enum Banner<'a> {
    None,
    Error(&'a str),
    Secret(&'a Value),
}

async fn access_page(
    console: &ConsoleState,
    session: &Session,
    banner: Banner<'_>,
    status: StatusCode,
) -> Response {
    let t = session.bearer();
    let (tokens, users) = match (
        console.call(t, Method::GET, "/api/v1/tokens", None).await,
        console.call(t, Method::GET, "/api/v1/users", None).await,
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(f), _) | (_, Err(f)) => return failure(session, Section::Access, &f),
    };
    let body = html! {
        @match banner {
            Banner::Error(e) => (alert(e)),
            Banner::Secret(created) => section.card {
                h2 { "Token " (text(&created["token"]["name"])) " — its secret is shown once" }
                p.secret #new-secret { (text(&created["secret"])) }
                button.secondary type="button" data-copy=(text(&created["secret"])) { "Copy" }
            },
            Banner::None => {},
        }
        section.card {
            h2 { "Tokens" }
            div.scroll { table {
                thead { tr { th { "Name" } th { "Scopes" } th { "Components" } th { "Expires" } th { "State" } th { span.sr-only { "Actions" } } } }
                tbody { @for tk in items(&tokens) { tr {
                    td { (text(&tk["name"])) br; span.hint.mono { (text(&tk["id"])) } }
                    td { (scopes(&tk["scopes"])) }
                    td { (components(&tk["components"])) }
                    td { (when(&tk["expires_at"])) }
                    td { @if tk["revoked_at"].is_string() { span.badge.bad { "revoked" } } @else { span.badge.ok { "active" } } }
                    td { @if !tk["revoked_at"].is_string() {
                        form method="post" action=(format!("/tokens/{}/revoke", segment(text(&tk["id"])))) data-confirm="Revoke this token? Clients using it stop working at once." {
                            (csrf(session)) button.secondary type="submit" { "Revoke" }
                        }
                    } }
                } } }
            } }
            (grant_form(session, "/tokens", "New token", false))
        }
        section.card {
            h2 { "Users" }
            div.scroll { table {
                thead { tr { th { "Name" } th { "Scopes" } th { "Components" } th { "Created" } th { "State" } th { span.sr-only { "Actions" } } } }
                tbody { @for u in items(&users) { tr {
                    td { (text(&u["name"])) }
                    td { (scopes(&u["scopes"])) }
                    td { (components(&u["components"])) }
                    td { (when(&u["created_at"])) }
                    td { @if u["disabled_at"].is_string() { span.badge.bad { "disabled" } } @else { span.badge.ok { "active" } } }
                    td { @if !u["disabled_at"].is_string() {
                        form method="post" action=(format!("/users/{}/disable", segment(text(&u["id"])))) data-confirm="Disable this user? Their sessions end at once." {
                            (csrf(session)) button.secondary type="submit" { "Disable" }
                        }
                    } }
                } } }
            } }
            (grant_form(session, "/users", "New user", true))
        }
    };
    (
        status,
        page(session, Section::Access, "Tokens & users", body),
    )
        .into_response()
}

fn scopes(v: &Value) -> Markup {
    html! { @for s in items(v) { code { (text(s)) } " " } }
}

fn components(v: &Value) -> Markup {
    match v.as_array() {
        Some(c) => html! { @for n in c { (text(n)) " " } },
        None => html! { "all" },
    }
}

/// The form for a token or a user: name, (password), scopes, components.
fn grant_form(session: &Session, action: &str, title: &str, user: bool) -> Markup {
    let prefix = if user { "u" } else { "t" };
    html! {
        form method="post" action=(action) {
            h3 { (title) }
            (csrf(session))
            label for=(format!("{prefix}-name")) { "Name" }
            input id=(format!("{prefix}-name")) type="text" name="name" required;
            @if user {
                label for="u-password" { "Password (12 characters or more)" }
                input #u-password type="password" name="password" autocomplete="new-password" minlength="12" required;
            } @else {
                label for="t-expires" { "Expires after (days; empty: never)" }
                input #t-expires type="number" min="1" name="expires_days";
            }
            fieldset {
                legend { "Scopes (at most yours)" }
                @for s in Scope::ALL.iter().filter(|s| session.can(**s)) {
                    label.check { input type="checkbox" name="scope" value=(s.to_string()); code { (s.to_string()) } }
                }
            }
            label for=(format!("{prefix}-components")) { "Limit to components (comma-separated; empty: all)" }
            input id=(format!("{prefix}-components")) type="text" name="components";
            div.actions { button type="submit" { "Create" } }
        }
    }
}

fn grant(form: &FormData) -> Value {
    let mut body = json!({
        "name": form.text("name").unwrap_or_default(),
        "scopes": form.all("scope"),
    });
    if let Some(c) = form.text("components") {
        let names: Vec<&str> = c
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        body["components"] = json!(names);
    }
    body
}

/// `GET /access`.
pub async fn show(State(console): State<ConsoleState>, session: Session) -> Response {
    access_page(&console, &session, Banner::None, StatusCode::OK).await
}

/// `POST /tokens`: the secret is shown on the answer, once.
pub async fn create_token(
    State(console): State<ConsoleState>,
    session: Session,
    form: FormData,
) -> Response {
    if let Err(r) = session.check(&form) {
        return r.into_response();
    }
    let mut body = grant(&form);
    if let Some(d) = form.text("expires_days") {
        match d.parse::<u64>().ok().and_then(|d| d.checked_mul(86_400)) {
            Some(secs) => body["expires_in_secs"] = json!(secs),
            None => {
                return access_page(
                    &console,
                    &session,
                    Banner::Error("Expires after: a whole number of days."),
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
                .await;
            }
        }
    }
    match console
        .call(
            session.bearer(),
            Method::POST,
            "/api/v1/tokens",
            Some(&body),
        )
        .await
    {
        Ok(created) => {
            access_page(
                &console,
                &session,
                Banner::Secret(&created),
                StatusCode::CREATED,
            )
            .await
        }
        Err(f) => access_page(&console, &session, Banner::Error(&f.message), f.status).await,
    }
}

/// `POST /users`.
pub async fn create_user(
    State(console): State<ConsoleState>,
    session: Session,
    form: FormData,
) -> Response {
    if let Err(r) = session.check(&form) {
        return r.into_response();
    }
    let mut body = grant(&form);
    body["password"] = json!(form.get("password").unwrap_or_default());
    match console
        .call(session.bearer(), Method::POST, "/api/v1/users", Some(&body))
        .await
    {
        Ok(_) => Redirect::to("/access").into_response(),
        Err(f) => access_page(&console, &session, Banner::Error(&f.message), f.status).await,
    }
}

/// `POST /tokens/{id}/revoke`.
pub async fn revoke_token(
    State(console): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
    form: FormData,
) -> Response {
    let call = ApiCall::delete(format!("/api/v1/tokens/{}", segment(&id)));
    act(&console, &session, &form, Section::Access, call, "/access").await
}

/// `POST /users/{id}/disable`.
pub async fn disable_user(
    State(console): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
    form: FormData,
) -> Response {
    let call = ApiCall::delete(format!("/api/v1/users/{}", segment(&id)));
    act(&console, &session, &form, Section::Access, call, "/access").await
}
