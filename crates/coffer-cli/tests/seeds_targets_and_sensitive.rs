//! Seed operators' flows set up in `coffer.toml` or made of one call:
//! Palette's backup locations declared as `[[targets]]` (validated at
//! start, read-only over the API, refused when moved to an empty place) and
//! the Auth0 Appliance's sensitive backup with a password alone (an export
//! that restores into a new installation). The HTTP flows of the other
//! seeds are in seeds.rs.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::{Value, json};

/// Runs `coffer server` with `config` expecting it to refuse to start;
/// returns what it printed.
fn refused_start(config: &Path) -> String {
    let out = Command::new(coffer_bin())
        .args(["server", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .env_remove("COFFER_SERVER_KEY")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run coffer server");
    assert!(!out.status.success(), "the server started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

// Palette's backup location form: an FTP server given as one URL, with a
// user and password, validated before it is saved; backups then go there.
#[test]
fn palette_targets_declared_in_the_configuration_are_validated_and_used() {
    let Some(host) = coffer_testkit::service_setting("COFFER_TEST_FTP_HOST") else {
        return;
    };
    let port = coffer_testkit::service_setting("COFFER_TEST_FTP_PORT").unwrap_or_default();
    let user = coffer_testkit::service_setting("COFFER_TEST_FTP_USER").unwrap_or_default();
    let password = coffer_testkit::service_setting("COFFER_TEST_FTP_PASSWORD").unwrap_or_default();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let secret = dir.join("ftp-password");
    std::fs::write(&secret, &password).unwrap();
    let wrong = dir.join("wrong-password");
    std::fs::write(&wrong, "not the password").unwrap();
    let files = small_dir(dir);
    let remote = format!("palette-{}", std::process::id());
    let _cleanup = RemoveOnDrop(std::path::PathBuf::from(format!("/home/{user}/{remote}")));
    let target = |secret: &Path| {
        format!(
            "[[targets]]\nname = \"palette\"\nkind = \"ftp\"\nurl = \"ftp://{host}:{port}/{remote}\"\n\
             user = \"{user}\"\npassword = {{ file = \"{}\" }}\ndefault = true\n\n\
             [[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n",
            secret.display(),
            files.display()
        )
    };

    // A location that fails Validate is never saved: the server does not
    // start, and says which target and which step.
    let config = write_config(dir, &target(&wrong));
    let said = refused_start(&config);
    assert!(said.contains("[[targets]] palette"), "{said}");
    assert!(said.contains("validation failed"), "{said}");
    // A misspelt section is refused by name, not ignored.
    let misspelt = write_config(dir, "[[target]]\nname = \"palette\"\n");
    let said = refused_start(&misspelt);
    assert!(said.contains("unknown field `target`"), "{said}");

    let config = write_config(dir, &target(&secret));
    let srv = Server::start(&config);
    let (code, list) = srv.admin("GET", "/api/v1/targets", None);
    assert_eq!(code, 200);
    let targets = list.as_array().expect("a list");
    assert_eq!(
        targets.len(),
        1,
        "no local default beside a declared target: {list:#}"
    );
    assert_eq!(targets[0]["name"], "palette");
    assert_eq!(targets[0]["declared"], true);
    assert_eq!(targets[0]["default"], true);
    assert_eq!(targets[0]["spec"]["directory"], format!("/{remote}"));
    let b = srv.backup(&json!({ "label": "palette" }));
    assert_eq!(b["status"], "READY", "{b:#}");
    assert_eq!(b["target"], "palette");

    // Read-only over the API, and its name is taken.
    for (method, body) in [("PUT", Some(json!({ "mode": "attach" }))), ("DELETE", None)] {
        let (code, e) = srv.admin(method, "/api/v1/targets/palette", body.as_ref());
        assert_eq!(code, 409, "{method}: {e}");
        assert!(
            e["message"]
                .as_str()
                .unwrap_or_default()
                .contains("coffer.toml"),
            "{e}"
        );
    }
    let (code, e) = srv.admin(
        "POST",
        "/api/v1/targets",
        Some(&json!({ "name": "palette", "spec": { "kind": "local", "path": dir.join("x") } })),
    );
    assert_eq!(code, 409, "{e}");
    // Nor does the API move the default coffer.toml decides.
    let (code, e) = srv.admin(
        "POST",
        "/api/v1/targets",
        Some(
            &json!({ "name": "other", "spec": { "kind": "local", "path": dir.join("other") },
                      "default": true, "confirm_default": true }),
        ),
    );
    assert_eq!(code, 409, "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("the default"),
        "{e}"
    );
    assert!(!dir.join("other").exists());

    // A restart finds the same repository (nothing asked, nothing lost).
    let admin = srv.admin.clone();
    drop(srv);
    let mut srv = Server::start(&config);
    srv.admin = admin; // printed at the first start only
    let (_, list) = srv.admin("GET", "/api/v1/backups?label=palette", None);
    assert_eq!(list["backups"][0]["id"], b["id"], "{list:#}");
    let b2 = srv.backup(&json!({ "label": "palette" }));
    assert_eq!(b2["status"], "READY", "{b2:#}");

    // Moved in coffer.toml to an empty place: refused, not a new repository
    // that would replace the stored password of the one holding the backups.
    let admin = srv.admin.clone();
    drop(srv);
    let moved = format!("{remote}-moved");
    let _cleanup_moved = RemoveOnDrop(std::path::PathBuf::from(format!("/home/{user}/{moved}")));
    let elsewhere = target(&secret).replace(&format!("/{remote}\""), &format!("/{moved}\""));
    assert_ne!(elsewhere, target(&secret));
    let said = refused_start(&write_config(dir, &elsewhere));
    assert!(said.contains("holds no repository"), "{said}");
    let mut srv = Server::start(&write_config(dir, &target(&secret)));
    srv.admin = admin;
    let (_, list) = srv.admin("GET", "/api/v1/backups?label=palette", None);
    assert_eq!(
        list["backups"].as_array().map(Vec::len),
        Some(2),
        "{list:#}"
    );
}

/// Removes a directory when dropped.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// The Auth0 Appliance's sensitive backup (shared/seeds/001_…): requested
// with a password alone, its status checked (with an MD5), retrieved,
// deleted — and restored into a new installation.
#[test]
fn auth0_sensitive_backup_with_a_password_alone_is_an_export_that_restores() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for d in [&a, &b] {
        std::fs::create_dir_all(d).unwrap();
    }
    coffer_testkit::tree::build_rich_tree(&a.join("keys"));
    let config_dir = small_dir(&a);
    let installation = |dir: &Path, server: &str| {
        Server::start(&write_config_with(
            dir,
            server,
            &format!(
                "[[components]]\nname = \"config\"\nkind = \"files\"\npath = \"{}\"\n\n\
                 [[components]]\nname = \"keys\"\nkind = \"files\"\npath = \"{}\"\nsensitive = true\n",
                dir.join("files").display(),
                dir.join("keys").display()
            ),
        ))
    };
    // No [sensitive] recipients: no age key pair anywhere.
    let node = installation(&a, "");
    assert!(config_dir.exists());

    // Repository backups leave the sensitive component out, and refuse it
    // by name: it never reaches a repository unsealed.
    let b1 = node.backup(&json!({ "label": "nightly" }));
    assert_eq!(b1["status"], "READY", "{b1:#}");
    let names: Vec<&str> = b1["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["config"], "{b1:#}");
    let (code, e) = node.admin(
        "POST",
        "/api/v1/backups",
        Some(&json!({ "label": "nightly", "components": ["keys"] })),
    );
    assert_eq!(code, 422, "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("\"sensitive\": true"),
        "{e}"
    );

    // backup-sensitive --password …: one call.
    let ops = node.token(&["backups:write", "export", "sensitive"], None, None);
    let without = node.token(&["backups:write", "export"], None, None);
    let request = json!({ "sensitive": true, "password": "0therPassw0rd!", "keep": true });
    let (code, e) = node.call("POST", "/api/v1/backups", Some(&without), Some(&request));
    assert_eq!(code, 403, "{e}");
    let (code, v) = node.call("POST", "/api/v1/backups", Some(&ops), Some(&request));
    assert_eq!(code, 202, "{v}");
    assert_eq!(v["status"], "EXPORTING");
    let export = v["export_id"]
        .as_str()
        .expect("the export to follow")
        .to_owned();

    // backup-sensitive-status: READY with its MD5; kept until deleted.
    let e = node.wait_until_done(&format!("/api/v1/exports/{export}"), "EXPORTING", 120);
    assert_eq!(e["status"], "READY", "{e:#}");
    assert_eq!(e["sensitive"], true);
    assert_eq!(e["expires_at"], Value::Null, "{e}");
    // backup-sensitive-retrieve, checked against the MD5 as Auth0 advises.
    let r = node.curl(
        &format!("/api/v1/exports/{export}/download"),
        Some(&ops),
        &[],
    );
    assert_eq!(r.status, 200);
    let file = tmp.path().join("backup-sensitive.coffer");
    std::fs::write(&file, &r.body).unwrap();
    let md5 = sh(tmp.path(), "md5sum backup-sensitive.coffer");
    assert_eq!(
        e["md5"].as_str().unwrap(),
        md5.split_whitespace().next().unwrap()
    );
    // No staging copy of the keys was left behind.
    let staging = a.join("data/staging");
    let left: Vec<_> = std::fs::read_dir(&staging)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.iter()
            .all(|n| !n.to_string_lossy().starts_with("sensitive-")),
        "{left:?}"
    );
    // backup-sensitive-delete.
    let (code, _) = node.call(
        "DELETE",
        &format!("/api/v1/exports/{export}"),
        Some(&ops),
        None,
    );
    assert_eq!(code, 200);

    // The export says it is sensitive: even where `keys` is not configured
    // sensitive, restoring it needs the `sensitive` scope.
    let lax_dir = tmp.path().join("lax");
    std::fs::create_dir_all(&lax_dir).unwrap();
    let lax = Server::start(&write_config_with(
        &lax_dir,
        "",
        &format!(
            "[[components]]\nname = \"keys\"\nkind = \"files\"\npath = \"{}\"\n",
            lax_dir.join("keys").display()
        ),
    ));
    let plain = lax.token(&["restore", "backups:read"], None, None);
    let r = lax.curl(
        "/api/v1/restores",
        Some(&plain),
        &[
            "-F".into(),
            format!("snapshot=@{}", file.display()),
            "--form-string".into(),
            r#"config={"password": "0therPassw0rd!"}"#.into(),
        ],
    );
    assert_eq!(r.status, 403, "{}", r.json());
    assert!(r.json()["message"].as_str().unwrap().contains("sensitive"));
    assert!(!lax_dir.join("keys").exists());
    drop(lax);

    // A spool a crash left behind is removed when the server starts.
    let leftover = b.join("data/staging/sensitive-export-crashed");
    std::fs::create_dir_all(&leftover).unwrap();
    std::fs::set_permissions(
        b.join("data"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    std::fs::write(leftover.join("keys.age"), b"sealed").unwrap();

    // Restored into a new installation with the password alone.
    let new = installation(&b, "");
    // (Removed before the server answers its first request.)
    assert_eq!(new.call("GET", "/healthz", None, None).0, 200);
    assert!(!leftover.exists(), "the leftover spool is still there");
    let restorer = new.token(&["restore", "sensitive", "backups:read"], None, None);
    let r = new.curl(
        "/api/v1/restores",
        Some(&restorer),
        &[
            "-F".into(),
            format!("snapshot=@{}", file.display()),
            "--form-string".into(),
            r#"config={"password": "0therPassw0rd!"}"#.into(),
        ],
    );
    assert_eq!(r.status, 202, "{}", r.json());
    let done = new.wait_restore(r.json()["id"].as_str().unwrap());
    assert_eq!(done["status"], "READY", "{done:#}");
    coffer_testkit::tree::assert_same_tree_from_upload(&a.join("keys"), &b.join("keys"));
}
