//! Seed operators' own commands against the real server: each product's
//! documented sequence run literally with curl and jq — only host, token,
//! names and passwords substituted — and the restored data checked.
//! docs/migrating-from.md maps every command. Palette's declared targets and
//! Auth0's sensitive backup are in seeds_targets_and_sensitive.rs.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::{Value, json};

/// Every JSON value in `text`, one after the other (curl prints the
/// answers of consecutive commands back to back).
fn json_values(text: &str) -> Vec<Value> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("not JSON: {e}: {text}"))
}

// FlowG's "Database Backup" page, as published (shared/seeds/002_…): the
// PAT and JWT backups, and the restores.
const FLOWG_PAT_BACKUP: &str = r#"
export FLOWG_TOKEN="<your token>"

curl \
  -H "Authorization: Bearer pat:${FLOWG_TOKEN}" \
  http://localhost:5080/api/v1/backup/auth \
  --output auth.db

curl \
  -H "Authorization: Bearer pat:${FLOWG_TOKEN}" \
  http://localhost:5080/api/v1/backup/config \
  --output config.db

curl \
  -H "Authorization: Bearer pat:${FLOWG_TOKEN}" \
  http://localhost:5080/api/v1/backup/logs \
  --output logs.db
"#;

const FLOWG_JWT_BACKUP: &str = r#"
export FLOWG_TOKEN=$(
  curl \
    http://localhost:5080/api/v1/auth/login \
    -H "Content-Type: application/json" \
    -d '{"username": "<your username>", "password": "<your password>"}' \
    2>/dev/null \
  | jq -r .token
)

curl \
  -H "Authorization: Bearer jwt:${FLOWG_TOKEN}" \
  http://localhost:5080/api/v1/backup/auth \
  --output auth.db

curl \
  -H "Authorization: Bearer jwt:${FLOWG_TOKEN}" \
  http://localhost:5080/api/v1/backup/config \
  --output config.db

curl \
  -H "Authorization: Bearer jwt:${FLOWG_TOKEN}" \
  http://localhost:5080/api/v1/backup/logs \
  --output logs.db
"#;

const FLOWG_PAT_RESTORE: &str = r#"
export FLOWG_TOKEN="<your token>"

curl \
  -H "Authorization: Bearer pat:${FLOWG_TOKEN}" \
  http://localhost:5080/api/v1/restore/auth \
  -X POST --form backup=auth.db

curl \
  -H "Authorization: Bearer pat:${FLOWG_TOKEN}" \
  http://localhost:5080/api/v1/restore/config \
  -X POST --form backup=config.db

curl \
  -H "Authorization: Bearer pat:${FLOWG_TOKEN}" \
  http://localhost:5080/api/v1/restore/logs \
  -X POST --form backup=logs.db
"#;

const FLOWG_JWT_RESTORE: &str = r#"
export FLOWG_TOKEN=$(
  curl \
    http://localhost:5080/api/v1/auth/login \
    -H "Content-Type: application/json" \
    -d '{"username": "<your username>", "password": "<your password>"}' \
    2>/dev/null \
  | jq -r .token
)

curl \
  -H "Authorization: Bearer jwt:${FLOWG_TOKEN}" \
  http://localhost:5080/api/v1/restore/auth \
  -X POST --form backup=auth.db

curl \
  -H "Authorization: Bearer jwt:${FLOWG_TOKEN}" \
  http://localhost:5080/api/v1/restore/config \
  -X POST --form backup=config.db

curl \
  -H "Authorization: Bearer jwt:${FLOWG_TOKEN}" \
  http://localhost:5080/api/v1/restore/logs \
  -X POST --form backup=logs.db
"#;

const FLOWG_DBS: [&str; 3] = ["auth", "config", "logs"];

/// Deletes all but the first `keep` rows of the live database `name`.
fn truncate(dir: &Path, name: &str, keep: i64) {
    rusqlite::Connection::open(dir.join(format!("{name}.sqlite")))
        .unwrap()
        .execute("DELETE FROM t WHERE id > ?1", [keep])
        .unwrap();
}

fn live_rows(dir: &Path, name: &str) -> usize {
    sqlite_rows(&dir.join(format!("{name}.sqlite"))).len()
}

/// Waits for every restore curl reported, and expects each `READY`.
fn restores_ready(srv: &Server, answers: &[Value]) {
    for a in answers {
        let id = a["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no restore id: {a}"));
        let done = srv.wait_restore(id);
        assert_eq!(done["status"], "READY", "{done:#}");
    }
}

#[test]
fn flowg_documented_backup_and_restore_commands_work() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut components = String::new();
    for (i, name) in FLOWG_DBS.iter().enumerate() {
        sqlite_db(&dir.join(format!("{name}.sqlite")), 100 + i * 50);
        components += &format!(
            "[[components]]\nname = \"{name}\"\nkind = \"sqlite\"\npath = \"{}\"\n\n",
            dir.join(format!("{name}.sqlite")).display()
        );
    }
    let srv = Server::start(&write_config(dir, &components));
    // FlowG's permissions map to scopes: backups need `export`, restores `restore`.
    let token = srv.token(&["export", "restore"], None, None);
    let (code, v) = srv.admin(
        "POST",
        "/api/v1/users",
        Some(&json!({
            "name": "operator", "password": "correct horse battery",
            "scopes": ["export", "restore"],
        })),
    );
    assert_eq!(code, 201, "{v}");
    let literal = |script: &str| {
        script
            .replace("http://localhost:5080", &srv.url)
            .replace("<your token>", &token)
            .replace("<your username>", "operator")
            .replace("<your password>", "correct horse battery")
    };
    let work = dir.join("work");
    std::fs::create_dir(&work).unwrap();
    let check_downloads = || {
        for (i, name) in FLOWG_DBS.iter().enumerate() {
            let got = work.join(format!("{name}.db"));
            assert_eq!(sqlite_rows(&got).len(), 100 + i * 50, "{name}.db");
        }
    };

    // Backups with a personal access token, then with a login token.
    sh(&work, &literal(FLOWG_PAT_BACKUP));
    check_downloads();
    for name in FLOWG_DBS {
        std::fs::remove_file(work.join(format!("{name}.db"))).unwrap();
    }
    sh(&work, &literal(FLOWG_JWT_BACKUP));
    check_downloads();

    // The restore exactly as published: `--form backup=auth.db` has no `@`,
    // so curl sends the text "auth.db". Refused, naming the fix; nothing
    // touched.
    for name in FLOWG_DBS {
        truncate(dir, name, 5);
    }
    let answers = json_values(&sh(&work, &literal(FLOWG_PAT_RESTORE)));
    assert_eq!(answers.len(), 3, "{answers:?}");
    for (a, name) in answers.iter().zip(FLOWG_DBS) {
        let msg = a["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains(&format!("--form backup=@{name}.db")),
            "{name}: {a}"
        );
        assert_eq!(live_rows(dir, name), 5, "{name} was touched");
    }

    // With the `@` docs/migrating-from.md adds: every database comes back,
    // replacing the live one (FlowG's restore sends no options).
    let with_at = |s: &str| s.replace("--form backup=", "--form backup=@");
    let answers = json_values(&sh(&work, &literal(&with_at(FLOWG_PAT_RESTORE))));
    assert_eq!(answers.len(), 3, "{answers:?}");
    restores_ready(&srv, &answers);
    for (i, name) in FLOWG_DBS.iter().enumerate() {
        assert_eq!(live_rows(dir, name), 100 + i * 50, "{name}");
    }
    for name in FLOWG_DBS {
        truncate(dir, name, 7);
    }
    let answers = json_values(&sh(&work, &literal(&with_at(FLOWG_JWT_RESTORE))));
    restores_ready(&srv, &answers);
    for (i, name) in FLOWG_DBS.iter().enumerate() {
        assert_eq!(live_rows(dir, name), 100 + i * 50, "{name}");
    }

    // FlowG's per-database permissions: a token for `logs` alone.
    let logs_only = srv.token(&["export", "restore"], Some(&["logs"]), None);
    let r = srv.curl(
        "/api/v1/backup/logs",
        Some(&format!("pat:{logs_only}")),
        &[],
    );
    assert_eq!(r.status, 200);
    let r = srv.curl(
        "/api/v1/backup/auth",
        Some(&format!("pat:{logs_only}")),
        &[],
    );
    assert_eq!(r.status, 403);
    let r = srv.curl(
        "/api/v1/restore/auth",
        Some(&logs_only),
        &[
            "-F".into(),
            format!("backup=@{}", work.join("auth.db").display()),
        ],
    );
    assert_eq!(r.status, 403, "{}", r.json());
}

#[test]
fn dcos_backup_show_follows_a_restore_by_component() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = dir.join("marathon.sqlite");
    sqlite_db(&db, 40);
    let files = small_dir(dir);
    let config = write_config(
        dir,
        &format!(
            "[[components]]\nname = \"marathon\"\nkind = \"sqlite\"\npath = \"{}\"\n\n\
             [[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n",
            db.display(),
            files.display()
        ),
    );
    let srv = Server::start(&config);

    // dcos backup create --label=<label>; dcos backup list [label]
    let b = srv.backup(&json!({ "label": "dcos-nightly" }));
    assert_eq!(b["status"], "READY", "{b:#}");
    let id = b["id"].as_str().unwrap().to_owned();
    let (code, list) = srv.admin("GET", "/api/v1/backups?label=dcos-nightly", None);
    assert_eq!(code, 200);
    assert_eq!(list["backups"][0]["id"], id.as_str());
    assert!(list["backups"][0].get("restores").is_none(), "{list}");

    // dcos backup show <id>: DC/OS's states.
    let show = |view: &str| {
        sh(
            dir,
            &format!(
                "curl -fsS -H 'Authorization: Bearer {}' '{}/api/v1/backups/{id}{view}'",
                srv.admin, srv.url
            ),
        )
    };
    let v: Value = serde_json::from_str(&show("?view=dcos")).unwrap();
    assert_eq!(v["status"], "STATUS_READY", "{v:#}");
    assert_eq!(v["component_status"]["marathon"], "STATUS_READY");
    assert_eq!(v["restores"], Value::Null);

    // dcos backup restore <id>, then watch
    // `restores.component_status.marathon` go to STATUS_READY.
    truncate(dir, "marathon", 3);
    let (code, r) = srv.admin(
        "POST",
        &format!("/api/v1/backups/{id}/restore"),
        Some(&json!({ "components": ["marathon"], "options": { "mode": "overwrite" } })),
    );
    assert_eq!(code, 202, "{r}");
    let restore = r["id"].as_str().unwrap().to_owned();
    let watch = format!(
        "curl -fsS -H 'Authorization: Bearer {}' '{}/api/v1/backups/{id}?view=dcos' \
         | jq -r .restores.component_status.marathon",
        srv.admin, srv.url
    );
    let mut seen = Vec::new();
    for _ in 0..600 {
        let s = sh(dir, &watch).trim().to_owned();
        if seen.last() != Some(&s) {
            seen.push(s.clone());
        }
        if s != "STATUS_RESTORING" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        seen.last().map(String::as_str),
        Some("STATUS_READY"),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .all(|s| s == "STATUS_RESTORING" || s == "STATUS_READY"),
        "{seen:?}"
    );
    assert_eq!(live_rows(dir, "marathon"), 40);

    // Coffer's own view lists every restore with component_status, and so
    // does GET /api/v1/restores?backup=.
    let v: Value = serde_json::from_str(&show("")).unwrap();
    assert_eq!(v["restores"][0]["id"], restore.as_str(), "{v:#}");
    assert_eq!(v["restores"][0]["component_status"]["marathon"], "READY");
    let (code, l) = srv.admin("GET", &format!("/api/v1/restores?backup={id}"), None);
    assert_eq!(code, 200);
    assert_eq!(l["restores"].as_array().map(Vec::len), Some(1), "{l}");
    assert_eq!(l["restores"][0]["backup_id"], id.as_str());
    let (_, all) = srv.admin("GET", "/api/v1/restores", None);
    assert_eq!(all["restores"][0]["id"], restore.as_str());
    let (code, none) = srv.admin("GET", "/api/v1/restores?backup=other-1", None);
    assert_eq!(
        (code, none["restores"].as_array().map(Vec::len)),
        (200, Some(0))
    );

    // A token limited to `files` sees the backup through `files` only, and
    // no restore of `marathon`.
    let files_only = srv.token(&["backups:read"], Some(&["files"]), None);
    let (code, v) = srv.call(
        "GET",
        &format!("/api/v1/backups/{id}"),
        Some(&files_only),
        None,
    );
    assert_eq!(code, 200);
    assert_eq!(v["components"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["restores"], json!([]), "{v}");
    let (_, l) = srv.call("GET", "/api/v1/restores", Some(&files_only), None);
    assert_eq!(l["restores"], json!([]), "{l}");

    // Any other view is refused, naming the parameter.
    let (code, e) = srv.admin("GET", &format!("/api/v1/backups/{id}?view=xml"), None);
    assert_eq!(code, 422, "{e}");
    assert!(
        e["message"].as_str().unwrap_or_default().contains("view"),
        "{e}"
    );

    // dcos backup delete <id>
    let (code, _) = srv.admin("DELETE", &format!("/api/v1/backups/{id}"), None);
    assert_eq!(code, 200);
}

// Terraform Enterprise's "Backups and Restores" page (shared/seeds/000_…):
// the backup call with its output kept (`> backup.blob`), and the restore
// into a new installation, with the page's own request.json.
const TFE_REQUEST: &str = r#"{ "password": "foo" }"#;
const TFE_BACKUP: &str = r#"curl -XPOST -H "Authorization: Bearer <TOKEN>" https://<tfe-hostname>/_backup/api/v1/backup -d @request.json > backup.blob"#;
const TFE_RESTORE: &str = r#"curl -XPOST -F config=@request.json -F snapshot=@backup.blob -H "Authorization: Bearer <TOKEN>" https://<tfe-hostname>/_backup/api/v1/restore"#;

/// A Terraform-Enterprise-like installation in `dir`: a SQLite database
/// and a directory, plus `extra` components and `[server]` settings.
fn tfe_installation(dir: &Path, server: &str, extra: &str) -> Server {
    std::fs::create_dir_all(dir).unwrap();
    let config = write_config_with(
        dir,
        server,
        &format!(
            "[[components]]\nname = \"db\"\nkind = \"sqlite\"\npath = \"{}\"\n\n\
             [[components]]\nname = \"blobs\"\nkind = \"files\"\npath = \"{}\"\n\n{extra}",
            dir.join("tfe.sqlite").display(),
            dir.join("blobs").display()
        ),
    );
    Server::start(&config)
}

#[test]
fn terraform_enterprise_backup_and_restore_into_a_new_installation_work_as_written() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    sqlite_db(&a.join("tfe.sqlite"), 321);
    coffer_testkit::tree::build_rich_tree(&a.join("blobs"));
    // The page's password is "foo": installation A lowers the minimum to run
    // it as written; B keeps the default and has a component that fails.
    let old = tfe_installation(&a, "min_export_password_len = 3\n", "");
    let new = tfe_installation(
        &b,
        "",
        "[[components]]\nname = \"broken\"\nkind = \"command\"\nbackup = [\"false\"]\n",
    );
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    std::fs::write(work.join("request.json"), TFE_REQUEST).unwrap();
    let literal = |script: &str, srv: &Server, token: &str| {
        script
            .replace("https://<tfe-hostname>", &srv.url)
            .replace("<TOKEN>", token)
    };

    // Backup on A: the export comes back as the answer's body.
    let token_a = old.token(&["export"], None, None);
    sh(&work, &literal(TFE_BACKUP, &old, &token_a));
    let blob = std::fs::read(work.join("backup.blob")).unwrap();
    assert!(blob.starts_with(b"age-encryption.org/v1"), "not an export");
    // The same file the server keeps, under the usual expiry.
    let (_, list) = old.admin("GET", "/api/v1/backups?label=api-backup", None);
    let backup = &list["backups"][0];
    assert_eq!(backup["status"], "READY", "{list:#}");
    let export = &backup["exports"][0];
    assert_eq!(export["status"], "READY", "{export}");
    let sha = sh(&work, "sha256sum backup.blob");
    assert_eq!(
        export["sha256"].as_str().unwrap_or_default(),
        sha.split_whitespace().next().unwrap_or_default(),
        "the answer is the stored export"
    );

    // Restore into the new installation B, with the same request.json.
    let token_b = new.token(&["restore", "backups:read"], None, None);
    let out = sh(&work, &literal(TFE_RESTORE, &new, &token_b));
    let answer: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let done = new.wait_restore(answer["id"].as_str().expect("a restore id"));
    assert_eq!(done["status"], "READY", "{done:#}");
    assert_eq!(sqlite_rows(&b.join("tfe.sqlite")).len(), 321);
    coffer_testkit::tree::assert_same_tree_from_upload(&a.join("blobs"), &b.join("blobs"));

    // B keeps the default minimum: "foo" is refused, naming the setting.
    let token = new.token(&["export"], None, None);
    let r = new.curl(
        "/_backup/api/v1/backup",
        Some(&token),
        &[
            "-d".into(),
            format!("@{}", work.join("request.json").display()),
        ],
    );
    assert_eq!(r.status, 422, "{}", r.json());
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap_or_default()
            .contains("server.min_export_password_len"),
        "{}",
        r.json()
    );
    // A backup that fails (B's `broken` component) cuts the answer: curl
    // fails, so `set -e` stops the script instead of keeping the blob.
    std::fs::write(
        work.join("request.json"),
        r#"{ "password": "a long export passphrase" }"#,
    )
    .unwrap();
    let out = Command::new("bash")
        .args(["-eu", "-o", "pipefail", "-c"])
        .arg(literal(TFE_BACKUP, &new, &token))
        .current_dir(&work)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a failed backup must not end like a whole file: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.status.code(),
        Some(18),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A token limited to some components cannot take the whole installation.
    let limited = old.token(&["export"], Some(&["db"]), None);
    let r = old.curl(
        "/_backup/api/v1/backup",
        Some(&limited),
        &["-d".into(), TFE_REQUEST.into()],
    );
    assert_eq!(r.status, 403, "{}", r.json());
}
