//! `/targets`: the list, and Palette's form — fill in, **Validate** shows
//! each probe step, **Save** is enabled only after a successful Validate of
//! the same values. The server holds the form to that, not only the page's
//! script: Save carries a proof of the validated values (an HMAC bound to
//! the session), and settings that differ from what passed are sent back to
//! Validate. The API validates again when it saves.

use axum::extract::{Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use coffer_model::access::Scope;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::console::client::Failure;
use crate::console::forms::FormData;
use crate::console::layout::{Section, alert, csrf, failure, notice, page};
use crate::console::session::Session;
use crate::console::view::{health, items, size_of, status, text};
use crate::console::{Console, ConsoleState};

/// A field of a kind's form: (name, label, input type, hint).
type Field = (&'static str, &'static str, &'static str, &'static str);

const KINDS: [(&str, &str); 4] = [
    ("s3", "S3 (AWS, MinIO, Garage, …)"),
    ("sftp", "SFTP"),
    ("ftp", "FTP / FTPS"),
    ("local", "Local disk"),
];

fn fields(kind: &str) -> &'static [Field] {
    match kind {
        "local" => &[(
            "path",
            "Directory",
            "text",
            "An absolute path on this server.",
        )],
        "s3" => &[
            (
                "endpoint",
                "Endpoint",
                "url",
                "e.g. https://s3.eu-west-1.amazonaws.com",
            ),
            ("region", "Region", "text", ""),
            ("bucket", "Bucket", "text", ""),
            (
                "prefix",
                "Prefix",
                "text",
                "Optional: a folder inside the bucket.",
            ),
            ("access_key", "Access key", "text", ""),
            ("secret_key", "Secret key", "password", ""),
            (
                "path_style",
                "Path-style addressing",
                "checkbox",
                "MinIO, Garage and most servers other than AWS.",
            ),
        ],
        "sftp" => &[
            ("host", "Host", "text", ""),
            ("port", "Port", "number", "Default 22."),
            ("user", "User", "text", ""),
            ("password", "Password", "password", ""),
            (
                "host_key",
                "Host key",
                "text",
                "SHA256:… fingerprint or public key line: any other key is refused.",
            ),
            ("directory", "Directory", "text", ""),
        ],
        "ftp" => &[
            (
                "url",
                "Server URL",
                "url",
                "ftp://host[:port]/dir, or ftps://… for explicit TLS.",
            ),
            ("user", "User", "text", ""),
            ("password", "Password", "password", ""),
        ],
        _ => &[],
    }
}

/// The settings the form describes, as the API takes them.
fn spec(kind: &str, form: &FormData) -> Value {
    let mut spec = Map::new();
    spec.insert("kind".into(), json!(kind));
    for (name, _, input, _) in fields(kind) {
        let value = match (*input, form.text(name)) {
            ("checkbox", _) => json!(form.checked(name)),
            ("number", Some(v)) => v.parse::<u64>().map_or_else(|_| json!(v), |n| json!(n)),
            (_, Some(v)) => json!(v),
            (_, None) => continue,
        };
        spec.insert((*name).into(), value);
    }
    Value::Object(spec)
}

/// How long a passed Validate may be saved.
const PROOF_SECS: i64 = 15 * 60;

/// The proof that `name` + `spec` passed Validate in this session at
/// `at` (seconds since the epoch): `<at>.<HMAC>`.
fn proof(console: &Console, session: &Session, at: i64, name: &str, spec: &Value) -> String {
    let msg = format!("validated\0{}\0{at}\0{name}\0{spec}", session.csrf);
    let tag = ring::hmac::sign(&console.forms_key, msg.as_bytes());
    format!("{at}.{}", hex::encode(tag.as_ref()))
}

/// Whether `given` proves that these settings passed Validate here, lately.
fn proven(
    console: &Console,
    session: &Session,
    given: Option<&str>,
    name: &str,
    spec: &Value,
) -> bool {
    let Some((at, _)) = given.and_then(|g| g.split_once('.')) else {
        return false;
    };
    let Ok(at) = at.parse::<i64>() else {
        return false;
    };
    let age = crate::catalog::now() - at;
    (0..=PROOF_SECS).contains(&age)
        && given == Some(proof(console, session, at, name, spec).as_str())
}

/// `GET /targets`.
pub async fn list(State(console): State<ConsoleState>, session: Session) -> Response {
    let targets = match console
        .call(session.bearer(), Method::GET, "/api/v1/targets", None)
        .await
    {
        Ok(t) => t,
        Err(f) => return failure(&session, Section::Targets, &f),
    };
    let body = html! {
        @if session.can(Scope::TargetsWrite) { div.actions { a.button href="/targets/new" { "Add a target" } } }
        div.scroll { table {
            thead { tr { th { "Target" } th { "Kind" } th { "Mode" } th { "Backups" } th { "Where" } th { "Health" } th { "Repository" } th { "Free" } } }
            tbody { @for t in items(&targets) { tr {
                td { (text(&t["name"])) @if t["default"].as_bool() == Some(true) { " " span.badge { "default" } } @if t["declared"].as_bool() == Some(true) { " " span.badge { "coffer.toml" } } }
                td { (text(&t["kind"])) }
                td { (text(&t["mode"])) }
                td { (t["backups"].as_u64().unwrap_or(0)) }
                td.hash { (where_of(&t["spec"])) }
                td { (health(&t["health"])) }
                td { (size_of(&t["health"]["repository_bytes"])) }
                td { (size_of(&t["health"]["free_bytes"])) }
            } } }
        } }
        @for t in items(&targets) { @if let Some(w) = t["warning"].as_str() { p.warning { strong { (text(&t["name"])) ": " } (w) } } }
    };
    page(&session, Section::Targets, "Targets", body).into_response()
}

fn where_of(spec: &Value) -> String {
    [
        "endpoint",
        "bucket",
        "prefix",
        "host",
        "directory",
        "path",
        "url",
    ]
    .iter()
    .filter_map(|k| spec[*k].as_str())
    .collect::<Vec<_>>()
    .join(" ")
}

/// Which kind the form is for.
#[derive(Debug, Deserialize)]
pub struct KindQuery {
    kind: Option<String>,
}

/// What the form shows under the fields.
enum Outcome<'a> {
    Nothing,
    Report(&'a Value, Option<String>),
    Refused(&'a str),
}

fn target_form(
    session: &Session,
    kind: &str,
    form: Option<&FormData>,
    outcome: Outcome<'_>,
) -> Markup {
    let value = |k: &str| form.and_then(|f| f.get(k)).unwrap_or("").to_owned();
    let validated = match &outcome {
        Outcome::Report(_, Some(p)) => Some(p.clone()),
        _ => None,
    };
    html! {
        form.card method="get" action="/targets/new" {
            label for="kind" { "Kind" }
            select #kind name="kind" {
                @for (k, label) in KINDS { option value=(k) selected[k == kind] { (label) } }
            }
            div.actions { button.secondary type="submit" { "Choose" } }
        }
        form.card method="post" action="/targets/new" data-validated[validated.is_some()] {
            (csrf(session))
            input type="hidden" name="kind" value=(kind);
            label for="name" { "Name" }
            input #name type="text" name="name" value=(value("name")) required pattern="[A-Za-z0-9][A-Za-z0-9_.-]*";
            @for (name, label, input, hint) in fields(kind) {
                @if *input == "checkbox" {
                    label.check { input type="checkbox" name=(name) value="true" checked[form.map_or(true, |f| f.checked(name))]; (label) }
                } @else {
                    label for=(format!("f-{name}")) { (label) }
                    input id=(format!("f-{name}")) type=(input) name=(name) value=(value(name)) autocomplete="off";
                }
                @if !hint.is_empty() { p.hint { (hint) } }
            }
            label for="repository_password" { "Repository password" }
            input #repository_password type="password" name="repository_password" value=(value("repository_password")) autocomplete="new-password";
            p.hint { "For a new repository, leave empty to have one generated and shown once. For an existing repository, its password." }
            label.check { input type="checkbox" name="default" value="1" checked[form.is_some_and(|f| f.checked("default"))]; "Make it the default target (backups naming no target go here)" }
            @if let Some(p) = &validated { input type="hidden" name="validated" value=(p); }
            div.actions {
                button.secondary type="submit" name="action" value="validate" { "Validate" }
                button type="submit" name="action" value="save" disabled[validated.is_none()] { "Save" }
                span.hint.save-hint aria-live="polite" { @if validated.is_none() { "Save is enabled once Validate passes with these values." } }
            }
            @match outcome {
                Outcome::Report(report, _) => (report_list(report)),
                Outcome::Refused(m) => (alert(m)),
                Outcome::Nothing => {},
            }
        }
    }
}

fn report_list(report: &Value) -> Markup {
    html! {
        section aria-labelledby="report" {
            h2 #report { "Validate: " @if report["ok"] == json!(true) { span.badge.ok { "passed" } } @else { span.badge.bad { "failed" } } }
            ul.steps {
                @for s in items(&report["steps"]) {
                    li { (status(&s["status"])) strong { (text(&s["name"])) } " — " (text(&s["message"])) }
                }
            }
        }
    }
}

fn kind_of(k: Option<&str>) -> &'static str {
    KINDS
        .iter()
        .map(|(k, _)| *k)
        .find(|x| Some(*x) == k)
        .unwrap_or("s3")
}

/// `GET /targets/new`.
pub async fn form(session: Session, Query(q): Query<KindQuery>) -> Response {
    let kind = kind_of(q.kind.as_deref());
    page(
        &session,
        Section::Targets,
        "Add a target",
        target_form(&session, kind, None, Outcome::Nothing),
    )
    .into_response()
}

/// `POST /targets/new`: Validate, or Save what passed Validate.
pub async fn submit(
    State(console): State<ConsoleState>,
    session: Session,
    form: FormData,
) -> Response {
    if let Err(r) = session.check(&form) {
        return r.into_response();
    }
    let kind = kind_of(form.get("kind"));
    let name = form.text("name").unwrap_or_default();
    let spec = spec(kind, &form);
    let show = |status: StatusCode, outcome: Outcome<'_>| {
        (
            status,
            page(
                &session,
                Section::Targets,
                "Add a target",
                target_form(&session, kind, Some(&form), outcome),
            ),
        )
            .into_response()
    };
    if form.get("action") == Some("save") {
        if !proven(&console, &session, form.get("validated"), &name, &spec) {
            return show(
                StatusCode::UNPROCESSABLE_ENTITY,
                Outcome::Refused(
                    "These settings have not passed Validate (or it was over 15 minutes ago): validate them, then save.",
                ),
            );
        }
        let mut body = json!({"name": name, "spec": spec, "default": form.checked("default"), "confirm_default": form.checked("default")});
        if let Some(pw) = form.get("repository_password").filter(|p| !p.is_empty()) {
            body["repository_password"] = json!(pw);
        }
        return match console
            .call(
                session.bearer(),
                Method::POST,
                "/api/v1/targets",
                Some(&body),
            )
            .await
        {
            Ok(created) => saved(&session, &created),
            Err(f) => refused(&session, kind, &form, &f),
        };
    }
    let body = json!({"name": name, "spec": spec});
    match console
        .call(
            session.bearer(),
            Method::POST,
            "/api/v1/targets/validate",
            Some(&body),
        )
        .await
    {
        Ok(report) => {
            let ok = report["ok"] == json!(true);
            let proof = proof(&console, &session, crate::catalog::now(), &name, &spec);
            show(
                StatusCode::OK,
                Outcome::Report(&report, ok.then_some(proof)),
            )
        }
        Err(f) if f.status == StatusCode::FORBIDDEN => failure(&session, Section::Targets, &f),
        Err(f) => show(f.status, Outcome::Refused(&f.message)),
    }
}

fn refused(session: &Session, kind: &str, form: &FormData, f: &Failure) -> Response {
    let outcome = if f.body["validation"].is_object() {
        Outcome::Report(&f.body["validation"], None)
    } else {
        Outcome::Refused(&f.message)
    };
    let body = html! { (alert(&f.message)) (target_form(session, kind, Some(form), outcome)) };
    (
        f.status,
        page(session, Section::Targets, "Add a target", body),
    )
        .into_response()
}

fn saved(session: &Session, created: &Value) -> Response {
    let t = &created["target"];
    let body = html! {
        (notice(&format!("Target {} added ({}, mode {}).", text(&t["name"]), text(&t["kind"]), text(&t["mode"]))))
        @if let Some(pw) = created["repository_password"].as_str() {
            section.card {
                h2 { "Repository password — shown once" }
                p.secret { (pw) }
                button.secondary type="button" data-copy=(pw) { "Copy" }
                p { (text(&created["notice"])) }
            }
        }
        @if let Some(r) = created["rebuilt"].as_object() {
            p.notice { "Backups found in the repository: " (r.get("found").and_then(Value::as_u64).unwrap_or(0)) }
        }
        (report_list(&created["validation"]))
        div.actions { a.button href="/targets" { "Back to targets" } }
    };
    page(session, Section::Targets, "Target added", body).into_response()
}
