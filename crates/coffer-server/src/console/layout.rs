//! The frame of every page: head, navigation by the user's scopes, the
//! sign-out form, and the error page an API refusal becomes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use coffer_model::access::Scope;
use maud::{DOCTYPE, Markup, html};

use super::client::Failure;
use super::session::{CSRF_FIELD, Forged, Session};

/// The navigation's sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// `/`.
    Overview,
    /// `/backups`.
    Backups,
    /// `/targets`.
    Targets,
    /// `/schedules`.
    Schedules,
    /// `/access`.
    Access,
}

impl Section {
    /// The section's page.
    pub fn href(self) -> &'static str {
        match self {
            Section::Overview => "/",
            Section::Backups => "/backups",
            Section::Targets => "/targets",
            Section::Schedules => "/schedules",
            Section::Access => "/access",
        }
    }
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " — Coffer" }
            link rel="stylesheet" href="/assets/console.css";
            script src="/assets/console.js" defer {}
        }
    }
}

/// A page of the signed-in console.
pub fn page(session: &Session, section: Section, title: &str, body: Markup) -> Markup {
    let links = [
        (Section::Overview, "Overview", Scope::BackupsRead),
        (Section::Backups, "Backups", Scope::BackupsRead),
        (Section::Targets, "Targets", Scope::TargetsRead),
        (Section::Schedules, "Schedules", Scope::SchedulesRead),
        (Section::Access, "Tokens & users", Scope::TokensAdmin),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.top {
                    a.brand href="/" { "Coffer" }
                    nav aria-label="Main" {
                        ul {
                            @for (s, label, scope) in links {
                                @if session.can(scope) {
                                    li {
                                        a href=(s.href()) aria-current=[(s == section).then_some("page")] { (label) }
                                    }
                                }
                            }
                        }
                    }
                    form.signout method="post" action="/logout" {
                        input type="hidden" name=(CSRF_FIELD) value=(session.csrf);
                        span.who { (session.principal.name) }
                        button type="submit" { "Sign out" }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page outside a session (sign-in, a refused form).
pub fn bare_page(title: &str, message: &str) -> Markup {
    bare(
        title,
        html! {
            p { (message) }
            p { a href="/" { "Back to the console" } }
        },
    )
}

/// A page outside a session with its own body.
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.bare {
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// An error message box (the API's words).
pub fn alert(message: &str) -> Markup {
    html! { p.alert role="alert" { (message) } }
}

/// A notice box.
pub fn notice(message: &str) -> Markup {
    html! { p.notice role="status" { (message) } }
}

/// The page an API refusal becomes, with the API's status and message.
pub fn failure(session: &Session, section: Section, f: &Failure) -> Response {
    // The login ended between the page's check and the API's (expired, disabled).
    if f.status == StatusCode::UNAUTHORIZED {
        return axum::response::Redirect::to("/login?expired").into_response();
    }
    let status = if f.status.is_client_error() || f.status.is_server_error() {
        f.status
    } else {
        StatusCode::BAD_GATEWAY
    };
    let title = match status {
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::CONFLICT => "Conflict",
        StatusCode::UNPROCESSABLE_ENTITY => "Not accepted",
        _ => "Something went wrong",
    };
    (
        status,
        page(
            session,
            section,
            title,
            html! {
                (alert(&f.message))
                p { a href=(section.href()) { "Back" } }
            },
        ),
    )
        .into_response()
}

/// The hidden CSRF field of a form.
pub fn csrf(session: &Session) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(session.csrf); }
}

impl IntoResponse for Forged {
    fn into_response(self) -> Response {
        (
            StatusCode::FORBIDDEN,
            bare_page(
                "Form refused",
                "This form's security token is missing or belongs to another session. Go back, \
                 reload the page and send it again.",
            ),
        )
            .into_response()
    }
}
