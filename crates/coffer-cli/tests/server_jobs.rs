//! `coffer server` end to end, backups and restores over HTTP: the DC/OS flow, refusals, conflicts, cancel and restart, hooks and timeouts, sealed sensitive components.
//! The real binary on a free loopback port, driven over HTTP (and curl),
//! with real servers; repositories judged by plain `restic`.

use std::time::{Duration, Instant};

mod common;

use coffer_testkit::restic_check;
use coffer_testkit::tree::{assert_same_tree, build_rich_tree};
use common::*;
use serde_json::{Value, json};

#[test]
fn the_dcos_flow_over_http_backs_up_and_restores_into_a_new_place() {
    let Some(pg) = Pg::from_env() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let files = dir.join("files");
    build_rich_tree(&files);
    let db = dir.join("app.sqlite");
    sqlite_db(&db, 500);
    let src = format!("coffer_srv_src_{}", std::process::id());
    let dst = format!("coffer_srv_dst_{}", std::process::id());
    pg.psql("postgres", &format!("DROP DATABASE IF EXISTS {src}"));
    pg.psql("postgres", &format!("DROP DATABASE IF EXISTS {dst}"));
    pg.psql("postgres", &format!("CREATE DATABASE {src}"));
    pg.psql(
        &src,
        "CREATE TABLE accounts (id int PRIMARY KEY, name text); \
         INSERT INTO accounts SELECT i, 'name ' || i FROM generate_series(1, 1000) i;",
    );
    let marker = dir.join("hooks.log");
    let config = write_config(
        dir,
        &format!(
            r#"[hooks]
pre_backup = ["echo pre-backup $COFFER_BACKUP_ID >> {m}"]
post_backup = ["echo post-backup >> {m}"]
pre_restore = ["echo pre-restore $COFFER_COMPONENTS >> {m}; echo stopping app"]
post_restore = ["echo post-restore >> {m}"]

[[components]]
name = "files"
kind = "files"
path = "{files}"

[[components]]
name = "appdb"
kind = "sqlite"
path = "{db}"

[[components]]
name = "pg"
kind = "postgres"
host = "{host}"
port = {port}
user = "{user}"
password = {{ env = "COFFER_TEST_PG_PASSWORD" }}
database = "{src}"
"#,
            m = marker.display(),
            files = files.display(),
            db = db.display(),
            host = pg.host,
            port = pg.port,
            user = pg.user,
        ),
    );
    let srv = Server::start(&config);
    assert!(
        srv.admin.starts_with("cft_"),
        "admin token: {:?}",
        srv.admin
    );
    let repo_password = srv
        .repo_password
        .clone()
        .expect("repository password shown once");

    // Health says the local target is not disaster-safe.
    let (code, health) = srv.call("GET", "/healthz", None, None);
    assert_eq!(code, 200);
    assert!(
        health["warnings"][0]
            .as_str()
            .unwrap()
            .contains("not disaster-safe"),
        "{health}"
    );
    let (code, targets) = srv.admin("GET", "/api/v1/targets", None);
    assert_eq!(code, 200);
    assert_eq!(targets[0]["name"], "local");
    assert!(targets[0]["warning"].is_string());

    // Create with a label.
    let (code, v) = srv.admin(
        "POST",
        "/api/v1/backups",
        Some(&json!({ "label": "nightly" })),
    );
    assert_eq!(code, 202, "{v}");
    assert_eq!(v["status"], "BACKING_UP");
    let id = v["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("nightly-"), "{id}");

    // Watch the states.
    let b = srv.wait_until_done(&format!("/api/v1/backups/{id}"), "BACKING_UP", 180);
    assert_eq!(b["status"], "READY", "{b:#}");
    let comps = b["components"].as_array().unwrap();
    assert_eq!(comps.len(), 3);
    for c in comps {
        assert_eq!(c["status"], "READY", "{c}");
        assert!(c["snapshot_id"].as_str().unwrap().len() == 64, "{c}");
    }
    assert!(b["bytes"].as_u64().unwrap() > 0);
    let hooks = std::fs::read_to_string(&marker).unwrap();
    assert!(hooks.contains(&format!("pre-backup {id}")), "{hooks}");
    assert!(hooks.contains("post-backup"), "{hooks}");

    // The log has the hooks and every component.
    let (code, log) = srv.admin("GET", &format!("/api/v1/backups/{id}/log"), None);
    assert_eq!(code, 200);
    let text = log["lines"].to_string();
    for needle in [
        "pre-backup hook",
        "component pg",
        "component files",
        "READY",
    ] {
        assert!(text.contains(needle), "{needle} not in {text}");
    }

    // List by label.
    let (_, list) = srv.admin("GET", "/api/v1/backups?label=nightly", None);
    assert_eq!(list["backups"].as_array().unwrap().len(), 1);
    let (_, list) = srv.admin("GET", "/api/v1/backups?label=weekly", None);
    assert!(list["backups"].as_array().unwrap().is_empty());
    let (code, v) = srv.admin("GET", "/api/v1/backups?status=DONE", None);
    assert_eq!(code, 422, "{v}");

    // Restore every component somewhere else: another database, path and file.
    let files_dst = dir.join("restored-files");
    let db_dst = dir.join("restored.sqlite");
    let body = json!({
        "overrides": {
            "files": { "path": files_dst },
            "appdb": { "path": db_dst },
            "pg": { "database": dst },
        }
    });
    let (code, v) = srv.admin(
        "POST",
        &format!("/api/v1/backups/{id}/restore"),
        Some(&body),
    );
    assert_eq!(code, 202, "{v}");
    let rid = v["id"].as_str().unwrap().to_owned();
    let r = srv.wait_until_done(&format!("/api/v1/restores/{rid}"), "RESTORING", 180);
    assert_eq!(r["status"], "READY", "{r:#}");
    assert_eq!(r["components"].as_array().unwrap().len(), 3);
    assert!(
        r["components"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "READY"),
        "{r}"
    );
    assert_same_tree(&files, &files_dst);
    assert_eq!(sqlite_rows(&db_dst), sqlite_rows(&db));
    assert_eq!(
        pg.psql(&dst, "SELECT count(*), sum(id) FROM accounts"),
        "1000|500500"
    );
    let hooks = std::fs::read_to_string(&marker).unwrap();
    assert!(hooks.contains("pre-restore "), "{hooks}");
    assert!(hooks.contains("post-restore"), "{hooks}");
    let (_, log) = srv.admin("GET", &format!("/api/v1/restores/{rid}/log"), None);
    assert!(log["lines"].to_string().contains("stopping app"), "{log}");

    // A bad override is refused before anything runs.
    let (code, v) = srv.admin(
        "POST",
        &format!("/api/v1/backups/{id}/restore"),
        Some(&json!({ "components": ["pg"], "overrides": { "pg": { "kind": "mysql" } } })),
    );
    assert_eq!(code, 422, "{v}");

    // The repository is a valid restic repository holding the three snapshots.
    let repo = dir.join("data/repository");
    restic_check(&repo, &repo_password);

    // Delete, then it is gone.
    let (code, v) = srv.admin("DELETE", &format!("/api/v1/backups/{id}"), None);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["snapshots_removed"], 3);
    assert!(v["space"].as_str().unwrap().contains("prune"), "{v}");
    let (code, v) = srv.admin("GET", &format!("/api/v1/backups/{id}"), None);
    assert_eq!(code, 404, "{v}");
    assert_eq!(v["error"], "not_found");
    restic_check(&repo, &repo_password);

    // Metrics count the finished jobs.
    let (code, m) = srv.call("GET", "/metrics", None, None);
    assert_eq!(code, 200);
    let m = m.as_str().unwrap_or_default().to_owned();
    assert!(
        m.contains(r#"coffer_jobs_total{kind="backup",status="READY"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"coffer_last_success_timestamp_seconds{component="pg"}"#),
        "{m}"
    );

    drop(srv);
    pg.psql("postgres", &format!("DROP DATABASE IF EXISTS {src}"));
    pg.psql("postgres", &format!("DROP DATABASE IF EXISTS {dst}"));
}

#[test]
fn bad_requests_are_refused_with_the_rule_and_nothing_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let files = small_dir(tmp.path());
    let config = write_config(
        tmp.path(),
        &format!(
            "[[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n",
            files.display(),
        ),
    );
    let srv = Server::start(&config);
    for (body, needle) in [
        (json!({ "label": "ab" }), "3 to 25"),
        (json!({ "label": "..hidden" }), "must not start with '..'"),
        (json!({ "label": "a b c" }), "3 to 25"),
        (
            json!({ "label": "okay", "components": ["nope"] }),
            "unknown component \"nope\"",
        ),
        (
            json!({ "label": "okay", "components": ["files"], "target": "nope" }),
            "no target named",
        ),
        (json!({ "label": "okay", "extra": 1 }), "unknown field"),
    ] {
        let (code, v) = srv.admin("POST", "/api/v1/backups", Some(&body));
        assert_eq!(code, 422, "{body}: {v}");
        assert_eq!(v["error"], "invalid", "{v}");
        assert!(
            v["message"].as_str().unwrap().contains(needle),
            "{body}: {v}"
        );
    }
    let (code, v) = srv.call_raw(
        "POST",
        "/api/v1/backups",
        Some(&format!("Bearer {}", srv.admin)),
        None,
    );
    assert_eq!(code, 422, "empty object lacks the label: {v}");
    let (_, list) = srv.admin("GET", "/api/v1/backups", None);
    assert!(
        list["backups"].as_array().unwrap().is_empty(),
        "nothing was recorded: {list}"
    );
    let (code, v) = srv.admin("GET", "/api/v1/nothing-here", None);
    assert_eq!(code, 404);
    assert_eq!(v["error"], "not_found");
    let (code, v) = srv.admin("GET", "/api/v1/backups/no-such-id", None);
    assert_eq!(code, 404, "{v}");
    // The OpenAPI document describes the endpoints.
    let (code, doc) = srv.call("GET", "/api/v1/openapi.json", None, None);
    assert_eq!(code, 200);
    assert!(doc["paths"]["/api/v1/backups"]["post"].is_object(), "{doc}");
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[test]
fn conflicts_cancel_and_restart_leave_clear_states_and_a_valid_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        "[[components]]\nname = \"slow\"\nkind = \"command\"\nbackup = [\"sh\", \"-c\", \"head -c 20000000 /dev/urandom; sleep 60; echo end\"]\n\
         restore = [\"sh\", \"-c\", \"cat > /dev/null\"]\n",
    );
    let srv = Server::start(&config);
    let password = srv.repo_password.clone().expect("password");
    let repo = tmp.path().join("data/repository");

    let (code, v) = srv.admin(
        "POST",
        "/api/v1/backups",
        Some(&json!({ "label": "first" })),
    );
    assert_eq!(code, 202, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    // The same component twice at once, and deleting a running backup: 409.
    let (code, v) = srv.admin(
        "POST",
        "/api/v1/backups",
        Some(&json!({ "label": "second" })),
    );
    assert_eq!(code, 409, "{v}");
    assert!(v["message"].as_str().unwrap().contains(&id), "{v}");
    let (code, v) = srv.admin("DELETE", &format!("/api/v1/backups/{id}"), None);
    assert_eq!(code, 409, "{v}");

    // While it runs, show says how far it has got.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, b) = srv.admin("GET", &format!("/api/v1/backups/{id}"), None);
        let done = b["components"][0]["progress"]["bytes_done"]
            .as_u64()
            .unwrap_or(0);
        if done > 0 {
            assert!(done <= 20_000_000, "{b}");
            break;
        }
        assert!(Instant::now() < deadline, "no progress shown: {b}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Cancel: ERROR "cancelled", promptly, nothing kept.
    let (code, v) = srv.admin("POST", &format!("/api/v1/backups/{id}/cancel"), None);
    assert_eq!(code, 202, "{v}");
    let b = srv.wait_until_done(&format!("/api/v1/backups/{id}"), "BACKING_UP", 20);
    assert_eq!(b["status"], "ERROR", "{b}");
    assert_eq!(b["error"], "cancelled", "{b}");
    assert_eq!(b["components"][0]["error"], "cancelled", "{b}");
    let (code, v) = srv.admin("POST", &format!("/api/v1/backups/{id}/cancel"), None);
    assert_eq!(code, 409, "not running any more: {v}");
    let snaps =
        coffer_testkit::restic(&repo, &password, &["snapshots", "--json"]).unwrap_or_default();
    assert_eq!(snaps.trim(), "[]", "a cancelled backup keeps nothing");
    let (code, v) = srv.admin(
        "POST",
        &format!("/api/v1/backups/{id}/restore"),
        Some(&json!({})),
    );
    assert_eq!(code, 409, "an ERROR backup is not restored: {v}");

    // A crash in the middle of a backup: after restart it is ERROR, never READY.
    let (code, v) = srv.admin(
        "POST",
        "/api/v1/backups",
        Some(&json!({ "label": "crash" })),
    );
    assert_eq!(code, 202, "{v}");
    let crashed = v["id"].as_str().unwrap().to_owned();
    std::thread::sleep(Duration::from_millis(800));
    let admin = srv.admin.clone();
    srv.kill9();
    let mut srv = Server::start(&config);
    assert!(
        srv.repo_password.is_none(),
        "the password is shown only at first start"
    );
    srv.admin = admin;
    let (code, b) = srv.admin("GET", &format!("/api/v1/backups/{crashed}"), None);
    assert_eq!(code, 200, "{b}");
    assert_eq!(b["status"], "ERROR", "{b}");
    assert_eq!(b["error"], "interrupted by restart", "{b}");
    assert_eq!(b["components"][0]["status"], "ERROR", "{b}");
    restic_check(&repo, &password);
}

#[test]
fn hooks_and_timeouts_fail_jobs_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let stop = tmp.path().join("refuse");
    let resumed = tmp.path().join("resumed");
    let config = write_config_with(
        tmp.path(),
        "component_timeout_secs = 2\n",
        &format!(
            "[hooks]\npre_backup = [\"test ! -e {stop}\"]\npost_backup = [\"touch {resumed}\"]\n\
             pre_restore = [\"echo no; exit 4\"]\n\n\
             [[components]]\nname = \"quick\"\nkind = \"command\"\nbackup = [\"echo\", \"quick\"]\n\
             restore = [\"sh\", \"-c\", \"cat > /dev/null\"]\n\n\
             [[components]]\nname = \"stuck\"\nkind = \"command\"\nbackup = [\"sleep\", \"60\"]\n",
            stop = stop.display(),
            resumed = resumed.display()
        ),
    );
    let srv = Server::start(&config);

    // A component over its time limit is stopped and fails; the other is READY.
    let b = srv.backup(&json!({ "label": "limits" }));
    assert_eq!(b["status"], "ERROR", "{b}");
    let comps = b["components"].as_array().unwrap();
    let stuck = comps.iter().find(|c| c["name"] == "stuck").unwrap();
    assert!(
        stuck["error"]
            .as_str()
            .unwrap()
            .contains("timed out after 2 s"),
        "{b}"
    );
    let quick = comps.iter().find(|c| c["name"] == "quick").unwrap();
    assert_eq!(quick["status"], "READY", "{b}");
    assert!(b["error"].as_str().unwrap().contains("stuck"), "{b}");
    assert!(resumed.exists(), "the post-backup hook ran");

    // A failing pre-backup hook: nothing runs, the post hook still resumes.
    std::fs::remove_file(&resumed).unwrap();
    std::fs::write(&stop, b"").unwrap();
    let b = srv.backup(&json!({ "label": "refused", "components": ["quick"] }));
    assert_eq!(b["status"], "ERROR", "{b}");
    assert!(
        b["error"].as_str().unwrap().contains("pre-backup hook"),
        "{b}"
    );
    assert!(b["components"][0]["snapshot_id"].is_null(), "{b}");
    assert!(
        resumed.exists(),
        "the post-backup hook ran after the failed pre-hook"
    );

    // A failing pre-restore hook: nothing restored, ERROR, output in the log.
    std::fs::remove_file(&stop).unwrap();
    let b = srv.backup(&json!({ "label": "okay", "components": ["quick"] }));
    let ok = b["id"].as_str().unwrap().to_owned();
    assert_eq!(b["status"], "READY", "{b}");
    let (code, v) = srv.admin(
        "POST",
        &format!("/api/v1/backups/{ok}/restore"),
        Some(&json!({})),
    );
    assert_eq!(code, 202, "{v}");
    let rid = v["id"].as_str().unwrap().to_owned();
    let r = srv.wait_until_done(&format!("/api/v1/restores/{rid}"), "RESTORING", 30);
    assert_eq!(r["status"], "ERROR", "{r}");
    assert!(
        r["error"].as_str().unwrap().contains("pre-restore hook"),
        "{r}"
    );
    let (_, log) = srv.admin("GET", &format!("/api/v1/restores/{rid}/log"), None);
    assert!(log["lines"].to_string().contains("stdout: no"), "{log}");
}

#[test]
fn sensitive_components_are_sealed_and_restore_only_with_their_identity() {
    let tmp = tempfile::tempdir().unwrap();
    let files = small_dir(tmp.path());
    let keys = tmp.path().join("keys");
    build_rich_tree(&keys);
    let db = tmp.path().join("vault.sqlite");
    sqlite_db(&db, 50);
    let identity = coffer_engine::AgeIdentity::generate();
    let key_file = format!(
        "# created: by the test\n# public key: {}\n{}\n",
        identity.recipient(),
        identity.secret()
    );
    let config = write_config(
        tmp.path(),
        &format!(
            "[sensitive]\nrecipients = [\"{}\"]\n\n\
             [[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n\n\
             [[components]]\nname = \"keys\"\nkind = \"files\"\nsensitive = true\npath = \"{}\"\n\n\
             [[components]]\nname = \"vault\"\nkind = \"sqlite\"\nsensitive = true\npath = \"{}\"\n",
            identity.recipient(),
            files.display(),
            keys.display(),
            db.display()
        ),
    );
    let srv = Server::start(&config);

    // Without the `sensitive` scope a token cannot back them up.
    let plain = srv.token(&["backups:write", "backups:read", "restore"], None, None);
    let (code, v) = srv.call(
        "POST",
        "/api/v1/backups",
        Some(&plain),
        Some(&json!({ "label": "nope", "components": ["keys"] })),
    );
    assert_eq!(code, 403, "{v}");

    let b = srv.backup(&json!({ "label": "sealed" }));
    assert_eq!(b["status"], "READY", "{b:#}");
    let id = b["id"].as_str().unwrap().to_owned();

    // In the repository: age files, no plaintext; restic checks it.
    let repo = tmp.path().join("data/repository");
    let pw = srv.repo_password.clone().expect("repository password");
    restic_check(&repo, &pw);
    if let Some(out) = coffer_testkit::restic(&repo, &pw, &["snapshots", "--json"]) {
        assert!(
            out.contains("keys.tar.age") && out.contains("vault.sqlite.age"),
            "{out}"
        );
        assert!(out.contains("coffer-sealed=age"), "{out}");
    }
    if let Some(bytes) = coffer_testkit::restic_bytes(
        &repo,
        &pw,
        &[
            "dump",
            "latest",
            "/keys.tar.age",
            "--tag",
            "coffer-component=keys",
        ],
    ) {
        assert!(bytes.starts_with(b"age-encryption.org/v1"));
        assert!(!bytes.windows(12).any(|w| w == b"hello coffer"));
    }

    let keys_to = tmp.path().join("keys-restored");
    let db_to = tmp.path().join("vault-restored.sqlite");
    let overrides = json!({ "keys": { "path": keys_to }, "vault": { "path": db_to } });
    let restore = |token: &str, body: Value| {
        srv.call(
            "POST",
            &format!("/api/v1/backups/{id}/restore"),
            Some(token),
            Some(&body),
        )
    };
    // No identity, a wrong one, a malformed one: 422, nothing restored.
    let (code, v) = restore(&srv.admin, json!({ "overrides": overrides }));
    assert_eq!(code, 422, "{v}");
    let msg = v["message"].as_str().unwrap();
    assert!(
        msg.contains("keys") && msg.contains("vault") && msg.contains("age_identity"),
        "{v}"
    );
    let wrong = coffer_engine::AgeIdentity::generate();
    let (code, v) = restore(
        &srv.admin,
        json!({ "overrides": overrides, "age_identity": wrong.secret() }),
    );
    assert_eq!(code, 422, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("is not one this component was sealed to"),
        "{v}"
    );
    let (code, v) = restore(
        &srv.admin,
        json!({ "overrides": overrides, "age_identity": "AGE-SECRET-KEY-1NOPE" }),
    );
    assert_eq!(code, 422, "{v}");
    assert!(
        !v.to_string().contains("NOPE"),
        "the identity is not echoed: {v}"
    );
    // The right identity but a token without `sensitive`: 403.
    let (code, v) = restore(
        &plain,
        json!({ "overrides": { "keys": { "path": keys_to } }, "age_identity": key_file,
            "components": ["keys"] }),
    );
    assert_eq!(code, 403, "{v}");
    assert!(!keys_to.exists() && !db_to.exists(), "nothing was restored");

    // The identity file's text opens both.
    let (code, v) = restore(
        &srv.admin,
        json!({ "overrides": overrides, "age_identity": key_file, "components": ["keys", "vault"] }),
    );
    assert_eq!(code, 202, "{v}");
    let r = srv.wait_until_done(
        &format!("/api/v1/restores/{}", v["id"].as_str().unwrap()),
        "RESTORING",
        120,
    );
    assert_eq!(r["status"], "READY", "{r:#}");
    assert_same_tree(&keys, &keys_to);
    assert_eq!(sqlite_rows(&db_to), sqlite_rows(&db));

    // The secret key is in neither the catalog nor the job logs.
    drop(srv);
    let secret = identity.secret();
    for f in ["catalog.sqlite", "catalog.sqlite-wal"] {
        let bytes = std::fs::read(tmp.path().join("data").join(f)).unwrap_or_default();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the age identity was stored in {f}"
        );
    }
}
