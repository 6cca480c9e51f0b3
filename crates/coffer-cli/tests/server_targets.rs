//! `coffer server` end to end, targets (Validate, sealed secrets, attach, rebuild), TLS, and users with login tokens.
//! The real binary on a free loopback port, driven over HTTP (and curl),
//! with real servers; repositories judged by plain `restic`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

mod common;

use coffer_testkit::{restic_check, service_setting};
use common::*;
use serde_json::{Value, json};

#[test]
fn targets_are_validated_sealed_and_attached_read_only() {
    let tmp = tempfile::tempdir().unwrap();
    let files = small_dir(tmp.path());
    let huge = tmp.path().join("huge");
    std::fs::create_dir_all(&huge).unwrap();
    // 8 TiB, sparse: the preflight counts apparent sizes.
    std::fs::File::create(huge.join("big"))
        .unwrap()
        .set_len(8 << 40)
        .unwrap();
    let config = write_config(
        tmp.path(),
        &format!(
            "[[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n\n\
             [[components]]\nname = \"huge\"\nkind = \"files\"\npath = \"{}\"\n",
            files.display(),
            huge.display()
        ),
    );
    let srv = Server::start(&config);

    // Preflight: 507 with both numbers, nothing recorded.
    let (code, v) = srv.admin(
        "POST",
        "/api/v1/backups",
        Some(&json!({ "label": "big", "components": ["huge"] })),
    );
    assert_eq!(code, 507, "{v}");
    assert_eq!(v["error"], "insufficient_storage");
    let m = v["message"].as_str().unwrap();
    assert!(m.contains("bytes free") && m.contains("may need"), "{m}");
    let (_, list) = srv.admin("GET", "/api/v1/backups", None);
    assert!(list["backups"].as_array().unwrap().is_empty());

    // A target that fails Validate cannot be saved; the report says why.
    let bad = json!({ "name": "bad", "spec": { "kind": "local", "path": "/dev/null/repo" } });
    let (code, v) = srv.admin("POST", "/api/v1/targets", Some(&bad));
    assert_eq!(code, 422, "{v}");
    assert_eq!(v["error"], "validation_failed");
    assert!(
        v["validation"]["steps"]
            .as_array()
            .is_some_and(|s| !s.is_empty()),
        "{v}"
    );
    let (code, _) = srv.admin("GET", "/api/v1/targets/bad", None);
    assert_eq!(code, 404);
    let (code, v) = srv.admin(
        "POST",
        "/api/v1/targets",
        Some(&json!({ "name": "x", "spec": { "kind": "tape" } })),
    );
    assert_eq!(code, 422, "{v}");

    // A new repository: the generated password is returned once.
    let second = tmp.path().join("second");
    let body = json!({ "name": "second", "spec": { "kind": "local", "path": second } });
    let (code, v) = srv.admin("POST", "/api/v1/targets", Some(&body));
    assert_eq!(code, 201, "{v}");
    let pw2 = v["repository_password"]
        .as_str()
        .expect("generated password")
        .to_owned();
    assert!(v["notice"].as_str().unwrap().contains("offline"), "{v}");
    assert_eq!(v["target"]["mode"], "own");
    assert_eq!(v["validation"]["ok"], true);
    let (_, shown) = srv.admin("GET", "/api/v1/targets/second", None);
    assert!(
        !shown.to_string().contains(&pw2),
        "the password is never returned again: {shown}"
    );
    let (code, v) = srv.admin("POST", "/api/v1/targets", Some(&body));
    assert_eq!(code, 409, "same name: {v}");

    // Backups go where asked.
    let b =
        srv.backup(&json!({ "label": "to-second", "components": ["files"], "target": "second" }));
    assert_eq!(b["status"], "READY", "{b}");
    assert_eq!(b["target"], "second");
    restic_check(&second, &pw2);

    // A repository another installation made: read only unless taken over.
    let repo = tmp.path().join("other-installation");
    let other_pw = tmp.path().join("other.pass");
    std::fs::write(&other_pw, "another installation's password\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["repo", "--repo"])
        .arg(&repo)
        .arg("--password-file")
        .arg(&other_pw)
        .arg("init")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let password = "another installation's password";
    let attach = json!({ "name": "shared", "spec": { "kind": "local", "path": repo } });
    let (code, v) = srv.admin("POST", "/api/v1/targets", Some(&attach));
    assert_eq!(code, 422, "an existing repository needs its password: {v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("repository_password"),
        "{v}"
    );
    let mut with_pw = attach.clone();
    with_pw["repository_password"] = json!("wrong password");
    let (code, v) = srv.admin("POST", "/api/v1/targets", Some(&with_pw));
    assert_eq!(code, 422, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("wrong password"),
        "{v}"
    );
    with_pw["repository_password"] = json!(password);
    let (code, v) = srv.admin("POST", "/api/v1/targets", Some(&with_pw));
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["target"]["mode"], "attach");
    assert!(v["repository_password"].is_null());
    let (code, v) = srv.admin(
        "POST",
        "/api/v1/backups",
        Some(&json!({ "label": "nope", "components": ["files"], "target": "shared" })),
    );
    assert_eq!(code, 409, "{v}");
    assert!(v["message"].as_str().unwrap().contains("read-only"), "{v}");
    let (code, v) = srv.admin(
        "PUT",
        "/api/v1/targets/shared",
        Some(&json!({ "mode": "own" })),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["mode"], "own");

    // New settings must reach the same repository and keep the kind.
    let moved = tmp.path().join("second-moved");
    let (code, v) = srv.admin(
        "PUT",
        "/api/v1/targets/second",
        Some(&json!({ "spec": { "kind": "local", "path": moved } })),
    );
    assert_eq!(
        code, 422,
        "another (empty) place is not this repository: {v}"
    );
    assert!(
        v["message"].as_str().unwrap().contains("do not reach"),
        "{v}"
    );
    // (Validate left its empty probe directories there; move to a fresh path.)
    let moved = tmp.path().join("second-moved-2");
    std::fs::rename(&second, &moved).unwrap();
    let (code, v) = srv.admin(
        "PUT",
        "/api/v1/targets/second",
        Some(&json!({ "spec": { "kind": "local", "path": moved } })),
    );
    assert_eq!(code, 200, "the repository moved there: {v}");
    assert_eq!(v["spec"]["path"], json!(moved));
    let (code, v) = srv.admin(
        "PUT",
        "/api/v1/targets/second",
        Some(&json!({ "spec": { "kind": "local", "path": "/dev/null/x" } })),
    );
    assert_eq!(code, 422, "{v}");
    assert_eq!(v["error"], "validation_failed", "{v}");
    let b =
        srv.backup(&json!({ "label": "after-move", "components": ["files"], "target": "second" }));
    assert_eq!(b["status"], "READY", "{b}");
    restic_check(&moved, &pw2);

    // Default changes (confirmed); a target with backups cannot be removed.
    let (code, v) = srv.admin(
        "PUT",
        "/api/v1/targets/second",
        Some(&json!({ "default": true, "confirm_default": true })),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["default"], true);
    let (code, v) = srv.admin("DELETE", "/api/v1/targets/second", None);
    assert_eq!(code, 409, "{v}");
    let (code, v) = srv.admin("POST", "/api/v1/targets/second/validate", None);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["ok"], true, "{v}");
}

#[test]
fn s3_target_secrets_are_sealed_in_the_catalog_and_never_returned() {
    let (Some(endpoint), Some(bucket), Some(access), Some(secret)) = (
        service_setting("COFFER_TEST_S3_ENDPOINT"),
        service_setting("COFFER_TEST_S3_BUCKET"),
        service_setting("COFFER_TEST_S3_ACCESS_KEY"),
        service_setting("COFFER_TEST_S3_SECRET_KEY"),
    ) else {
        return;
    };
    let region = service_setting("COFFER_TEST_S3_REGION").unwrap_or_else(|| "garage".into());
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "");
    let srv = Server::start(&config);
    let prefix = format!("server-{}", std::process::id());
    let spec = json!({ "kind": "s3", "endpoint": endpoint, "region": region, "bucket": bucket,
        "prefix": prefix, "access_key": access, "secret_key": secret });
    let (code, v) = srv.admin(
        "POST",
        "/api/v1/targets",
        Some(&json!({ "name": "offsite", "spec": spec })),
    );
    assert_eq!(code, 201, "{v}");
    assert!(!v.to_string().contains(&secret), "{v}");
    assert_eq!(v["target"]["spec"]["secret_key"]["literal"], "***", "{v}");
    let (_, all) = srv.admin("GET", "/api/v1/targets", None);
    assert!(!all.to_string().contains(&secret));
    // Only the local target → a same-disk warning; with S3 added, none.
    let (_, health) = srv.call("GET", "/healthz", None, None);
    assert!(
        !health["warnings"].to_string().contains("not disaster-safe"),
        "{health}"
    );
    drop(srv);
    let catalog = std::fs::read(tmp.path().join("data/catalog.sqlite")).unwrap();
    let wal = std::fs::read(tmp.path().join("data/catalog.sqlite-wal")).unwrap_or_default();
    for bytes in [catalog, wal] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the secret key is stored in clear text"
        );
    }
}

#[test]
fn a_fresh_server_rebuilds_its_catalog_from_an_attached_target() {
    let tmp = tempfile::tempdir().unwrap();
    let restored = tmp.path().join("restored.txt");
    let components = format!(
        "[[components]]\nname = \"quick\"\nkind = \"command\"\nbackup = [\"echo\", \"hello\"]\n\
         restore = [\"sh\", \"-c\", \"cat > {}\"]\n\n\
         [[components]]\nname = \"broken\"\nkind = \"command\"\nbackup = [\"sh\", \"-c\", \"echo partial; exit 3\"]\n",
        restored.display()
    );
    let a_dir = tmp.path().join("a");
    std::fs::create_dir_all(&a_dir).unwrap();
    let a = Server::start(&write_config(&a_dir, &components));
    let password = a.repo_password.clone().expect("password");
    // One incomplete backup (a component failed) and one complete.
    let b = a.backup(&json!({ "label": "both" }));
    let both = b["id"].as_str().unwrap().to_owned();
    assert_eq!(b["status"], "ERROR", "{b}");
    let b = a.backup(&json!({ "label": "quick", "components": ["quick"] }));
    let quick = b["id"].as_str().unwrap().to_owned();
    assert_eq!(b["status"], "READY", "{b}");
    drop(a);

    // A new installation: its own data directory, the old target attached.
    let b_dir = tmp.path().join("b");
    std::fs::create_dir_all(&b_dir).unwrap();
    let b_config = write_config(&b_dir, &components);
    let b = Server::start(&b_config);
    let body = json!({ "name": "old", "spec": { "kind": "local", "path": a_dir.join("data/repository") },
        "repository_password": password });
    let (code, v) = b.admin("POST", "/api/v1/targets", Some(&body));
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["target"]["mode"], "attach");
    let r = &v["rebuilt"];
    assert_eq!(
        (r["found"].as_u64(), r["added"].as_u64()),
        (Some(2), Some(2)),
        "{v}"
    );
    assert_eq!(
        (r["complete"].as_u64(), r["incomplete"].as_u64()),
        (Some(1), Some(1)),
        "{v}"
    );

    let (_, shown) = b.admin("GET", &format!("/api/v1/backups/{both}"), None);
    assert_eq!(shown["status"], "ERROR", "{shown}");
    assert!(
        shown["error"].as_str().unwrap().contains("1 of 2"),
        "{shown}"
    );
    let (_, shown) = b.admin("GET", &format!("/api/v1/backups/{quick}"), None);
    assert_eq!(shown["status"], "READY", "{shown}");
    assert_eq!(shown["target"], "old");
    assert_eq!(shown["components"][0]["kind"], "command", "{shown}");

    // Restore from the attached target into this installation.
    let (code, v) = b.admin(
        "POST",
        &format!("/api/v1/backups/{quick}/restore"),
        Some(&json!({})),
    );
    assert_eq!(code, 202, "{v}");
    let rid = v["id"].as_str().unwrap().to_owned();
    let r = b.wait_until_done(&format!("/api/v1/restores/{rid}"), "RESTORING", 60);
    assert_eq!(r["status"], "READY", "{r}");
    assert_eq!(std::fs::read_to_string(&restored).unwrap(), "hello\n");
    // Attached read only: no deletes.
    let (code, v) = b.admin("DELETE", &format!("/api/v1/backups/{quick}"), None);
    assert_eq!(code, 409, "{v}");
    drop(b);

    // Offline, a second rebuild finds nothing new.
    let out = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["catalog", "rebuild", "--json", "--config"])
        .arg(&b_config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports: Value = serde_json::from_slice(&out.stdout).unwrap();
    let old = reports
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["target"] == "old")
        .unwrap();
    assert_eq!(old["already_known"], 2, "{reports}");
    assert_eq!(old["added"], 0, "{reports}");
}

#[test]
fn the_api_is_served_over_tls_when_configured() {
    // The test CA and its 127.0.0.1 certificate from scripts/services.sh (made for FTPS).
    let Some(ca) = service_setting("COFFER_TEST_FTPS_CA") else {
        return;
    };
    let certs = Path::new(&ca).parent().unwrap().to_path_buf();
    let tmp = tempfile::tempdir().unwrap();
    let tls = format!(
        "[server.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        certs.join("cert.pem").display(),
        certs.join("key.pem").display()
    );
    let config = write_config_with(tmp.path(), &tls, "");
    let srv = Server::start(&config);
    assert!(srv.url.starts_with("https://127.0.0.1:"), "{}", srv.url);
    let curl = |args: &[&str]| {
        Command::new("curl")
            .args(["-sS", "--max-time", "10"])
            .args(args)
            .output()
            .unwrap()
    };
    let ok = curl(&["--cacert", &ca, &format!("{}/healthz", srv.url)]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let health: Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(health["status"], "ok");
    let auth = format!("Authorization: Bearer {}", srv.admin);
    let listed = curl(&[
        "-f",
        "--cacert",
        &ca,
        "-H",
        &auth,
        &format!("{}/api/v1/backups", srv.url),
    ]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    // Plain HTTP on the TLS port gets nothing useful; an unknown CA is refused.
    let plain = curl(&["-f", &srv.url.replacen("https", "http", 1)]);
    assert!(!plain.status.success());
    let untrusted = curl(&["-f", &format!("{}/healthz", srv.url)]);
    assert!(!untrusted.status.success());

    // A missing key file stops the server at start with the setting named.
    let bad = write_config_with(
        tmp.path(),
        "[server.tls]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n",
        "",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["server", "--listen", "127.0.0.1:0", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("server.tls") && err.contains("/nonexistent/cert.pem"),
        "{err}"
    );
}

#[test]
fn users_log_in_for_short_lived_tokens_with_their_own_scopes() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config_with(tmp.path(), "login_lifetime_secs = 2\n", "");
    let srv = Server::start(&config);
    // Created through the API…
    let body =
        json!({ "name": "ada", "password": "correct horse battery", "scopes": ["backups:read"] });
    let (code, v) = srv.admin("POST", "/api/v1/users", Some(&body));
    assert_eq!(code, 201, "{v}");
    assert!(!v.to_string().contains("correct horse"), "{v}");
    let ada_id = v["id"].as_str().unwrap().to_owned();
    let (code, v) = srv.admin("POST", "/api/v1/users", Some(&body));
    assert_eq!(code, 409, "{v}");
    let mut short = body.clone();
    short["name"] = json!("bob");
    short["password"] = json!("short");
    let (code, v) = srv.admin("POST", "/api/v1/users", Some(&short));
    assert_eq!(code, 422, "{v}");
    // …and offline with the CLI (password from a file).
    let pw_file = tmp.path().join("grace.pw");
    std::fs::write(&pw_file, "another long password\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["user", "--json", "--config"])
        .arg(&config)
        .args([
            "add",
            "--name",
            "grace",
            "--scope",
            "tokens:admin",
            "--password-file",
        ])
        .arg(&pw_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let login = |name: &str, pw: &str| {
        srv.call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(&json!({ "name": name, "password": pw })),
        )
    };
    for (name, pw) in [
        ("ada", "wrong password here"),
        ("nobody", "correct horse battery"),
    ] {
        let (code, v) = login(name, pw);
        assert_eq!(code, 401, "{v}");
        assert_eq!(v["message"], "wrong user name or password");
    }
    let (code, v) = login("ada", "correct horse battery");
    assert_eq!(code, 200, "{v}");
    let jwt = v["token"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer jwt:{jwt}");
    let (code, v) = srv.call_raw("GET", "/api/v1/backups", Some(&bearer), None);
    assert_eq!(code, 200, "{v}");
    let (code, v) = srv.call_raw(
        "POST",
        "/api/v1/backups",
        Some(&bearer),
        Some(&json!({ "label": "nope" })),
    );
    assert_eq!(code, 403, "ada may only read: {v}");
    let (code, v) = srv.call_raw(
        "GET",
        "/api/v1/backups",
        Some("Bearer jwt:eyJhbGciOiJIUzI1NiJ9.e30.x"),
        None,
    );
    assert_eq!(code, 401, "{v}");
    // grace (tokens:admin, created offline) disables ada: her token stops working at once.
    let (code, v) = login("grace", "another long password");
    assert_eq!(code, 200, "{v}");
    let grace = format!("Bearer jwt:{}", v["token"].as_str().unwrap());
    let (code, users) = srv.call_raw("GET", "/api/v1/users", Some(&grace), None);
    assert_eq!(code, 200, "{users}");
    assert_eq!(users.as_array().unwrap().len(), 2);
    let (code, _) = srv.call_raw(
        "DELETE",
        &format!("/api/v1/users/{ada_id}"),
        Some(&grace),
        None,
    );
    assert_eq!(code, 204);
    let (code, v) = srv.call_raw("GET", "/api/v1/backups", Some(&bearer), None);
    assert_eq!(code, 401, "{v}");
    assert!(v["message"].as_str().unwrap().contains("disabled"), "{v}");
    // Login tokens expire (login_lifetime_secs = 2).
    std::thread::sleep(Duration::from_millis(3100));
    let (code, v) = srv.call_raw("GET", "/api/v1/users", Some(&grace), None);
    assert_eq!(code, 401, "{v}");
    assert!(v["message"].as_str().unwrap().contains("expired"), "{v}");
}
