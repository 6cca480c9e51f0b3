//! Who may do what, end to end against the real server: the authorization
//! matrix generated from `/api/v1/openapi.json` (every route × no token,
//! malformed, unknown, expired, revoked, wrong scope, other component,
//! sensitive without the scope), the restore override rules, component
//! limits on every view, and privilege escalation through `tokens:admin`.
//! The limits of an exposed server are in `server_limits.rs`.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::fixture::{Fixture, when_free};
use common::*;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

/// Every scope there is.
const ALL: &[&str] = &[
    "backups:read",
    "backups:write",
    "backups:delete",
    "restore",
    "restore:redirect",
    "export",
    "targets:read",
    "targets:write",
    "maintenance",
    "schedules:read",
    "schedules:write",
    "notifications:read",
    "notifications:write",
    "tokens:admin",
    "audit:read",
    "sensitive",
    "admin",
];

/// What a route is tried against: one component, and the backup, export
/// and restore that hold it.
struct Subject {
    component: &'static str,
    backup: String,
    export: String,
    export_file: PathBuf,
    restore: String,
    /// A (paused) schedule of the component.
    schedule: String,
    /// A restore drill of the backup.
    drill: String,
}

/// How a request carries its body.
enum Body {
    None,
    Json(Value),
    /// curl arguments of a multipart upload.
    Multipart(Vec<String>),
}

/// The path and body of a call to `method template` about `s`: every
/// route in openapi.json needs one (a new route fails here until it has
/// its row). `n` makes names unique between calls.
fn request(f: &Fixture, method: &str, template: &str, s: &Subject, n: usize) -> (String, Body) {
    let comp = s.component;
    let path = template
        .replace("/backups/{id}", &format!("/backups/{}", s.backup))
        .replace("/exports/{id}", &format!("/exports/{}", s.export))
        .replace("/restores/{id}", &format!("/restores/{}", s.restore))
        .replace("/tokens/{id}", "/tokens/tok-x")
        .replace("/prunes/{id}", "/prunes/prune-x")
        .replace("/checks/{id}", "/checks/check-x")
        .replace("/drills/{id}", &format!("/drills/{}", s.drill))
        .replace("/notifications/{name}", "/notifications/matrix")
        .replace("/schedules/{name}", &format!("/schedules/{}", s.schedule))
        .replace("/users/{id}", "/users/usr-x")
        .replace("/components/{name}", &format!("/components/{comp}"))
        .replace("/backup/{name}", &format!("/backup/{comp}"))
        .replace("/restore/{name}", &format!("/restore/{comp}"))
        .replace(
            "/targets/{name}",
            if method == "delete" {
                "/targets/nope"
            } else {
                "/targets/local"
            },
        );
    let restore_path = f.root().join(format!("{comp}-{n}"));
    let body = match (method, template) {
        ("post", "/api/v1/backups") => {
            Body::Json(json!({ "label": "authz", "components": [comp] }))
        }
        ("post", "/api/v1/backups/{id}/restore") => Body::Json(json!({
            "components": [comp],
            "overrides": { comp: { "path": restore_path } },
        })),
        ("post", "/api/v1/backups/{id}/exports") => Body::Json(json!({
            "password": PASSWORD,
            "sensitive": comp == "keys",
        })),
        ("post", "/_backup/api/v1/backup") => Body::Json(json!({ "password": PASSWORD })),
        ("post", "/api/v1/restores" | "/api/v1/restore" | "/_backup/api/v1/restore") => {
            Body::Multipart(vec![
                "-F".into(),
                format!("snapshot=@{}", s.export_file.display()),
                "--form-string".into(),
                format!(
                    "config={}",
                    json!({ "password": PASSWORD, "overrides": { comp: { "path": restore_path } } })
                ),
            ])
        }
        ("post", "/api/v1/components/{name}/restore" | "/api/v1/restore/{name}") => {
            Body::Json(json!({}))
        }
        ("post", "/api/v1/targets") => Body::Json(json!({
            "name": format!("t{n}"),
            "spec": { "kind": "local", "path": f.tmp.path().join(format!("t{n}")) },
        })),
        ("post", "/api/v1/targets/validate") => Body::Json(json!({
            "name": format!("v{n}"),
            "spec": { "kind": "local", "path": f.tmp.path().join(format!("v{n}")) },
        })),
        ("put", "/api/v1/targets/{name}") => Body::Json(json!({ "default": true })),
        ("post", "/api/v1/targets/{name}/prune") => Body::Json(json!({ "grace_secs": 86400 })),
        ("put", "/api/v1/backups/{id}") => Body::Json(json!({ "pinned": false })),
        ("post", "/api/v1/notifications") => Body::Json(json!({
            "name": format!("n{n}"), "kind": "webhook", "url": "http://127.0.0.1:9/hook",
        })),
        ("put", "/api/v1/notifications/{name}") => Body::Json(json!({
            "kind": "webhook", "url": "http://127.0.0.1:9/hook", "enabled": false,
        })),
        ("post", "/api/v1/schedules") => Body::Json(json!({
            "name": format!("m{n}"), "components": [comp], "every_secs": 3600, "enabled": false,
        })),
        ("put", "/api/v1/schedules/{name}") => Body::Json(json!({
            "components": [comp], "every_secs": 7200, "enabled": false,
        })),
        // What the exact-scope caller (`tokens:admin` alone) may give.
        ("post", "/api/v1/tokens") => {
            Body::Json(json!({ "name": "x", "scopes": ["tokens:admin"] }))
        }
        ("post", "/api/v1/users") => Body::Json(json!({
            "name": format!("u{n}"), "password": "long enough password", "scopes": ["tokens:admin"],
        })),
        ("post", "/api/v1/auth/login") => Body::Json(json!({ "name": "x", "password": "y" })),
        (
            "post",
            "/api/v1/backups/{id}/cancel"
            | "/api/v1/backups/{id}/drills"
            | "/api/v1/schedules/{name}/run"
            | "/api/v1/notifications/{name}/test"
            | "/api/v1/targets/{name}/check"
            | "/api/v1/targets/{name}/validate"
            | "/api/v1/targets/{name}/rebuild"
            | "/api/v1/targets/{name}/state",
        )
        | ("get" | "delete", _) => Body::None,
        other => panic!("no matrix row for {other:?}: add one to access.rs `request`"),
    };
    (path, body)
}

/// Whether `v` names component `name`: as a string value, or as the key of
/// a state (`component_status`). A count that happens to share the name
/// (`"files": 1`) is not a mention.
fn mentions(v: &Value, name: &str) -> bool {
    match v {
        Value::String(s) => s == name,
        Value::Array(a) => a.iter().any(|x| mentions(x, name)),
        Value::Object(o) => o
            .iter()
            .any(|(k, x)| (k == name && x.is_string()) || mentions(x, name)),
        _ => false,
    }
}

/// Sends a request with `auth` as the Authorization header value.
fn send(srv: &Server, method: &str, path: &str, auth: Option<&str>, body: &Body) -> (u16, Value) {
    match body {
        Body::Multipart(args) => {
            let mut all = vec!["-X".to_owned(), method.to_uppercase()];
            all.extend(args.iter().cloned());
            let r = curl_raw(srv, path, auth, &all);
            (r.status, r.json())
        }
        Body::Json(v) => srv.call_raw(&method.to_uppercase(), path, auth, Some(v)),
        Body::None => srv.call_raw(&method.to_uppercase(), path, auth, None),
    }
}

/// curl with an arbitrary (or no) Authorization header.
fn curl_raw(srv: &Server, path: &str, auth: Option<&str>, args: &[String]) -> Curl {
    let out_file = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sS", "-o"])
        .arg(out_file.path())
        .args(["-w", "%{http_code}"]);
    if let Some(a) = auth {
        cmd.arg("-H").arg(format!("Authorization: {a}"));
    }
    let out = cmd
        .args(args)
        .arg(format!("{}{path}", srv.url))
        .output()
        .expect("run curl");
    Curl {
        ok: out.status.success(),
        status: String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0),
        body: std::fs::read(out_file.path()).unwrap_or_default(),
    }
}

/// Every route of openapi.json × {no token, malformed, unknown, expired,
/// revoked, wrong scope, other component, sensitive without the scope}, and
/// with exactly its scope the request gets past authorization.
#[test]
fn the_authorization_matrix_covers_every_route_in_the_openapi_document() {
    let f = Fixture::new("");
    let srv = &f.srv;
    let files_backup = f.backup_of(&["files"]);
    let keys_backup = f.backup_of(&["keys"]);
    let subject = |component: &'static str, backup: &str, sensitive: bool| {
        let e = srv.export(
            backup,
            &json!({ "password": PASSWORD, "sensitive": sensitive }),
        );
        let export = e["id"].as_str().unwrap().to_owned();
        let export_file = f.tmp.path().join(format!("{component}.coffer"));
        let r = srv.curl(&format!("/api/v1/exports/{export}/download"), None, &[]);
        assert!(r.ok && r.status == 200);
        std::fs::write(&export_file, &r.body).unwrap();
        let mut body = json!({ "overrides": { component: { "path": f.root().join(format!("{component}-seed")) } } });
        if sensitive {
            body["age_identity"] = json!(f.identity.secret());
        }
        let (code, v) = srv.admin(
            "POST",
            &format!("/api/v1/backups/{backup}/restore"),
            Some(&body),
        );
        assert_eq!(code, 202, "{v}");
        let r = srv.wait_restore(v["id"].as_str().unwrap());
        assert_eq!(r["status"], "READY", "{r:#}");
        let schedule = format!("s-{component}");
        let (code, v) = srv.admin(
            "POST",
            "/api/v1/schedules",
            Some(&json!({
                "name": schedule, "components": [component], "every_days": 1,
                "hours_utc": [3], "enabled": false,
            })),
        );
        assert_eq!(code, 201, "{v}");
        let (code, v) = srv.admin("POST", &format!("/api/v1/backups/{backup}/drills"), None);
        assert_eq!(code, 202, "{v}");
        let drill = v["id"].as_str().unwrap().to_owned();
        srv.wait_until_done(&format!("/api/v1/drills/{drill}"), "DRILLING", 60);
        Subject {
            component,
            backup: backup.to_owned(),
            export,
            export_file,
            restore: r["id"].as_str().unwrap().to_owned(),
            schedule,
            drill,
        }
    };
    let files = subject("files", &files_backup, false);
    let keys = subject("keys", &keys_backup, true);
    let (code, v) = srv.admin(
        "POST",
        "/api/v1/notifications",
        Some(&json!({ "name": "matrix", "kind": "webhook", "url": "http://127.0.0.1:9/hook" })),
    );
    assert_eq!(code, 201, "{v}");

    let expired = srv.token(ALL, None, Some(0));
    let (code, v) = srv.admin(
        "POST",
        "/api/v1/tokens",
        Some(&json!({ "name": "to revoke", "scopes": ALL })),
    );
    assert_eq!(code, 201, "{v}");
    let revoked = v["secret"].as_str().unwrap().to_owned();
    let (code, _) = srv.admin(
        "DELETE",
        &format!("/api/v1/tokens/{}", v["token"]["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(code, 204);
    let unknown = format!("cft_{}", "0".repeat(64));
    let other_only = srv.token(ALL, Some(&["other"]), None);
    let no_sensitive: Vec<&str> = ALL.iter().copied().filter(|s| *s != "sensitive").collect();
    let no_sensitive = srv.token(&no_sensitive, None, None);

    let (code, doc) = srv.call("GET", "/api/v1/openapi.json", None, None);
    assert_eq!(code, 200);
    let mut n = 0;
    let mut covered = BTreeSet::new();
    for (template, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            n += 1;
            let what = format!("{} {template}", method.to_uppercase());
            let scope = op["security"][0]["bearer"][0].as_str();
            let components = op["x-coffer-components"].as_str();
            let (path, body) = request(&f, method, template, &files, n);
            let Some(scope) = scope else {
                // Public: answered without credentials (login judges its body's).
                let (code, v) = send(srv, method, &path, None, &body);
                let asked = v["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("no credentials"));
                assert!(code != 403 && !asked, "{what} is public: {code} {v}");
                covered.insert(what);
                continue;
            };
            for (auth, expect) in [
                (None, "no credentials"),
                (
                    Some("Basic dXNlcjpwYXNz".to_owned()),
                    "malformed Authorization",
                ),
                (Some("Bearer not-a-token".to_owned()), "malformed token"),
                (Some(format!("Bearer {unknown}")), "unknown token"),
                (Some(format!("Bearer {expired}")), "expired"),
                (Some(format!("Bearer pat:{revoked}")), "revoked"),
            ] {
                let (code, v) = send(srv, method, &path, auth.as_deref(), &body);
                assert_eq!(code, 401, "{what} with {auth:?}: {v}");
                assert_eq!(v["error"], "unauthorized", "{what}: {v}");
                assert!(
                    v["message"].as_str().unwrap().contains(expect),
                    "{what}: {v}"
                );
            }
            // Every scope but the one needed: refused before anything is read.
            let others: Vec<&str> = ALL.iter().copied().filter(|s| *s != scope).collect();
            let t = srv.token(&others, None, None);
            let (code, v) = send(srv, method, &path, Some(&format!("Bearer {t}")), &body);
            assert_eq!(code, 403, "{what} without {scope}: {v}");
            assert!(
                v["message"].as_str().unwrap().contains(scope),
                "{what}: {v}"
            );
            match components {
                // The whole installation (every non-sensitive component):
                // a token limited to components is refused; sensitive ones
                // are never included, so there is no sensitive case.
                Some("all") => {
                    let (code, v) = send(
                        srv,
                        method,
                        &path,
                        Some(&format!("Bearer {other_only}")),
                        &body,
                    );
                    assert_eq!(code, 403, "{what} for a limited token: {v}");
                    assert!(
                        v["message"]
                            .as_str()
                            .unwrap()
                            .contains("limited to components other"),
                        "{what}: {v}"
                    );
                }
                Some("each") => {
                    let (code, v) = send(
                        srv,
                        method,
                        &path,
                        Some(&format!("Bearer {other_only}")),
                        &body,
                    );
                    assert_eq!(code, 403, "{what} for another component: {v}");
                    assert!(
                        v["message"]
                            .as_str()
                            .unwrap()
                            .contains("limited to components other"),
                        "{what}: {v}"
                    );
                    let (kpath, kbody) = request(&f, method, template, &keys, n);
                    let (code, v) = send(
                        srv,
                        method,
                        &kpath,
                        Some(&format!("Bearer {no_sensitive}")),
                        &kbody,
                    );
                    assert_eq!(code, 403, "{what} on a sensitive component: {v}");
                    assert!(
                        v["message"].as_str().unwrap().contains("sensitive"),
                        "{what}: {v}"
                    );
                }
                Some("filter") => {
                    for (token, hidden) in [(&other_only, &files), (&no_sensitive, &keys)] {
                        let (fpath, fbody) = request(&f, method, template, hidden, n);
                        let (code, v) = send(
                            srv,
                            method,
                            &fpath,
                            Some(&format!("Bearer {token}")),
                            &fbody,
                        );
                        assert_eq!(code, 200, "{what}: {v}");
                        let text = v.to_string();
                        assert!(
                            !mentions(&v, hidden.component)
                                && !text.contains(&hidden.backup)
                                && !text.contains(&hidden.export),
                            "{what} shows {} to a token that may not see it: {v}",
                            hidden.component
                        );
                    }
                }
                None => {}
                Some(other) => panic!("{what}: unknown x-coffer-components {other:?}"),
            }
            // With exactly the scope, the request gets past authorization.
            // Destructive routes act on a throwaway of their own.
            let (path, body) = match (method.as_str(), template.as_str()) {
                ("delete", "/api/v1/backups/{id}") => (
                    format!("/api/v1/backups/{}", f.backup_of(&["files"])),
                    Body::None,
                ),
                ("delete", "/api/v1/notifications/{name}") => {
                    let name = format!("throw{n}");
                    let body =
                        json!({ "name": name, "kind": "webhook", "url": "http://127.0.0.1:9/x" });
                    let (code, v) = srv.admin("POST", "/api/v1/notifications", Some(&body));
                    assert_eq!(code, 201, "{v}");
                    (format!("/api/v1/notifications/{name}"), Body::None)
                }
                ("delete", "/api/v1/schedules/{name}") => {
                    let name = format!("throw{n}");
                    let body = json!({ "name": name, "components": ["files"], "every_secs": 3600 });
                    let (code, v) = srv.admin("POST", "/api/v1/schedules", Some(&body));
                    assert_eq!(code, 201, "{v}");
                    (format!("/api/v1/schedules/{name}"), Body::None)
                }
                ("delete", "/api/v1/exports/{id}") => {
                    let body = json!({ "password": PASSWORD });
                    let path = format!("/api/v1/backups/{}/exports", files.backup);
                    let id = when_free(|| srv.admin("POST", &path, Some(&body)));
                    srv.wait_until_done(&format!("/api/v1/exports/{id}"), "EXPORTING", 120);
                    (format!("/api/v1/exports/{id}"), Body::None)
                }
                _ => (path, body),
            };
            let t = srv.token(&[scope], None, None);
            let (code, v) = send(srv, method, &path, Some(&format!("Bearer {t}")), &body);
            assert!(
                code != 401 && code != 403,
                "{what} with {scope}: {code} {v}"
            );
            covered.insert(what);
        }
    }
    assert!(
        covered.len() >= 35,
        "only {} routes in openapi.json?",
        covered.len()
    );
    // Nothing a refused call asked for happened: the subjects are intact.
    for id in [&files.backup, &keys.backup] {
        let (code, _) = srv.admin("GET", &format!("/api/v1/backups/{id}"), None);
        assert_eq!(code, 200, "{id} survived every refused call");
    }
}

/// A token with only `restore` chooses where among the configured places
/// data goes — never what runs, nor a path outside `server.restore_roots`,
/// nor the server's own directories.
#[test]
fn restore_overrides_are_an_allow_list_per_kind() {
    let f = Fixture::new("");
    let srv = &f.srv;
    let files_backup = f.backup_of(&["files"]);
    let other_backup = f.backup_of(&["other"]);
    let restore = srv.token(&["restore", "backups:read"], None, None);
    let marker = f.tmp.path().join("PWNED");
    std::os::unix::fs::symlink(f.tmp.path().join("data"), f.root().join("sneaky")).unwrap();
    let try_restore = |backup: &str, comp: &str, over: Value| {
        srv.call(
            "POST",
            &format!("/api/v1/backups/{backup}/restore"),
            Some(&restore),
            Some(&json!({ "components": [comp], "overrides": { comp: over } })),
        )
    };
    let cases: Vec<(&str, &str, Value, u16, &str)> = vec![
        (
            &other_backup,
            "other",
            json!({ "restore": ["sh", "-c", format!("touch {}", marker.display())] }),
            403,
            "overrides.other.restore cannot be set",
        ),
        (
            &other_backup,
            "other",
            json!({ "env": { "X": "1" } }),
            403,
            "cannot be set",
        ),
        (
            &files_backup,
            "files",
            json!({ "excludes": ["*"] }),
            403,
            "cannot be set",
        ),
        (
            &files_backup,
            "files",
            json!({ "path": f.tmp.path().join("outside") }),
            403,
            "server.restore_roots",
        ),
        (
            &files_backup,
            "files",
            json!({ "path": f.tmp.path().join("data") }),
            403,
            "keeps for itself",
        ),
        (
            &files_backup,
            "files",
            json!({ "path": f.tmp.path().join("data/repository/x") }),
            403,
            "keeps for itself",
        ),
        (
            &files_backup,
            "files",
            json!({ "path": f.root().join("sneaky").join("x") }),
            403,
            "keeps for itself",
        ),
        (
            &files_backup,
            "files",
            json!({ "path": f.root() }),
            403,
            "restore_roots",
        ),
        (
            &files_backup,
            "files",
            json!({ "path": "relative/x" }),
            422,
            "absolute",
        ),
        (
            &files_backup,
            "files",
            json!({ "paht": "/x" }),
            422,
            "unknown field",
        ),
        (
            &files_backup,
            "files",
            json!({ "kind": "sqlite" }),
            422,
            "files destination only",
        ),
    ];
    for (backup, comp, over, status, needle) in cases {
        let (code, v) = try_restore(backup, comp, over.clone());
        assert_eq!(code, status, "{comp} {over}: {v}");
        assert!(
            v["message"].as_str().unwrap().contains(needle),
            "{comp} {over}: {v}"
        );
    }
    assert!(!marker.exists(), "no command of the caller's ran");
    // Nothing was recorded for the refused requests.
    let (code, v) = try_restore(
        &files_backup,
        "files",
        json!({ "path": f.root().join("ok") }),
    );
    assert_eq!(code, 202, "{v}");
    let r = srv.wait_restore(v["id"].as_str().unwrap());
    assert_eq!(r["status"], "READY", "{r:#}");
    assert_eq!(std::fs::read(f.root().join("ok/a")).unwrap(), b"a");
}

/// An upload naming a component this server does not configure needs
/// `admin` and an unlimited token, and even then never a command.
#[test]
fn uploads_into_unconfigured_components_need_admin() {
    let f = Fixture::new("");
    let srv = &f.srv;
    let backup = f.backup_of(&["files"]);
    let e = srv.export(&backup, &json!({ "password": PASSWORD }));
    let file = f.tmp.path().join("x.coffer");
    let r = srv.curl(
        &format!("/api/v1/exports/{}/download", e["id"].as_str().unwrap()),
        None,
        &[],
    );
    std::fs::write(&file, &r.body).unwrap();
    // Server B knows no `files` component.
    let tmp_b = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp_b.path().join("restores")).unwrap();
    let config = write_config_with(
        tmp_b.path(),
        &format!(
            "restore_roots = [\"{}\"]",
            tmp_b.path().join("restores").display()
        ),
        "",
    );
    let b = Server::start(&config);
    let upload = |token: &str, over: Value| {
        let r = b.curl(
            "/api/v1/restores",
            Some(token),
            &[
                "-F".into(),
                format!("snapshot=@{}", file.display()),
                "--form-string".into(),
                format!(
                    "config={}",
                    json!({ "password": PASSWORD, "overrides": { "files": over } })
                ),
            ],
        );
        (r.status, r.json())
    };
    let dest = tmp_b.path().join("restores/files");
    let spec = json!({ "kind": "files", "path": dest });
    let restore_only = b.token(&["restore"], None, None);
    let (code, v) = upload(&restore_only, spec.clone());
    assert_eq!(code, 403, "{v}");
    assert!(v["message"].as_str().unwrap().contains("`admin`"), "{v}");
    let command = json!({ "kind": "command", "backup": ["true"], "restore": ["sh", "-c", "id"] });
    let (code, v) = upload(&b.admin, command);
    assert_eq!(code, 403, "{v}");
    let (code, v) = upload(
        &b.admin,
        json!({ "kind": "files", "path": tmp_b.path().join("elsewhere") }),
    );
    assert_eq!(code, 403, "{v}");
    assert!(!dest.exists());
    let (code, v) = upload(&b.admin, spec);
    assert_eq!(code, 202, "{v}");
    let r = b.wait_restore(v["id"].as_str().unwrap());
    assert_eq!(r["status"], "READY", "{r:#}");
    assert_eq!(std::fs::read(dest.join("a")).unwrap(), b"a");
}

/// A token limited to one component sees a backup only through it, and
/// cannot delete, cancel or read the log of a backup holding others.
#[test]
fn component_limits_hold_on_every_view_and_on_delete() {
    let f = Fixture::new("");
    let srv = &f.srv;
    let both = f.backup_of(&["files", "other"]);
    let files_only = srv.token(
        &["backups:read", "backups:write", "backups:delete"],
        Some(&["files"]),
        None,
    );
    let (code, v) = srv.call(
        "GET",
        &format!("/api/v1/backups/{both}"),
        Some(&files_only),
        None,
    );
    assert_eq!(code, 200, "{v}");
    let names: Vec<&str> = v["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["files"], "{v}");
    for (method, path) in [
        ("DELETE", format!("/api/v1/backups/{both}")),
        ("GET", format!("/api/v1/backups/{both}/log")),
        ("POST", format!("/api/v1/backups/{both}/cancel")),
    ] {
        let (code, v) = srv.call(method, &path, Some(&files_only), None);
        assert_eq!(code, 403, "{method} {path}: {v}");
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains("limited to components files"),
            "{v}"
        );
    }
    let (code, _) = srv.admin("GET", &format!("/api/v1/backups/{both}"), None);
    assert_eq!(code, 200, "the backup is still there");
    // The sensitive component, too: delete needs `sensitive`.
    let keys = f.backup_of(&["keys"]);
    let no_sensitive = srv.token(&["backups:read", "backups:delete"], None, None);
    let (code, v) = srv.call(
        "DELETE",
        &format!("/api/v1/backups/{keys}"),
        Some(&no_sensitive),
        None,
    );
    assert_eq!(code, 403, "{v}");
    let (code, v) = srv.call("GET", "/api/v1/backups", Some(&no_sensitive), None);
    assert_eq!(code, 200);
    assert!(!v.to_string().contains(&keys), "{v}");
}

/// `tokens:admin` grants only what its holder has: a token limited to a
/// component cannot mint an unlimited one, nor a user with more scopes,
/// nor revoke tokens beyond its own powers.
#[test]
fn a_token_admin_cannot_grant_more_than_it_holds() {
    let f = Fixture::new("");
    let srv = &f.srv;
    let limited = srv.token(&["tokens:admin", "backups:read"], Some(&["files"]), None);
    for body in [
        json!({ "name": "x", "scopes": ALL }),
        json!({ "name": "x", "scopes": ["backups:read"] }),
        json!({ "name": "x", "scopes": ["restore"], "components": ["files"] }),
        json!({ "name": "x", "scopes": ["backups:read"], "components": ["other"] }),
    ] {
        let (code, v) = srv.call("POST", "/api/v1/tokens", Some(&limited), Some(&body));
        assert_eq!(code, 403, "{body}: {v}");
        let mut user = body.clone();
        user["name"] = json!("mallory");
        user["password"] = json!("long enough password");
        let (code, v) = srv.call("POST", "/api/v1/users", Some(&limited), Some(&user));
        assert_eq!(code, 403, "{user}: {v}");
    }
    let (code, v) = srv.call(
        "POST",
        "/api/v1/tokens",
        Some(&limited),
        Some(&json!({ "name": "ok", "scopes": ["backups:read"], "components": ["files"] })),
    );
    assert_eq!(code, 201, "{v}");
    let (_, list) = srv.call("GET", "/api/v1/tokens", Some(&limited), None);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        !ids.iter().any(|n| n.contains("first start")),
        "the admin token is not listed: {ids:?}"
    );
    let (_, all) = srv.admin("GET", "/api/v1/tokens", None);
    let root = all
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"].as_str().unwrap().contains("first start"))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, v) = srv.call(
        "DELETE",
        &format!("/api/v1/tokens/{root}"),
        Some(&limited),
        None,
    );
    assert_eq!(code, 403, "{v}");
    // An expiring token mints only tokens that expire no later.
    let brief = srv.token(&["tokens:admin", "backups:read"], None, Some(600));
    let (code, v) = srv.call(
        "POST",
        "/api/v1/tokens",
        Some(&brief),
        Some(&json!({ "name": "forever", "scopes": ["backups:read"] })),
    );
    assert_eq!(code, 403, "{v}");
}
