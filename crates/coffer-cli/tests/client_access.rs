//! `coffer token … --remote` and `coffer user … --remote`: tokens and users
//! over the API of a logged-in server, with that login's rights (never more),
//! secrets shown once and passwords never printed.

mod common;

use common::client::{coffer, expect, login_with_token};
use common::fixture::Fixture;

#[test]
fn tokens_and_users_are_managed_over_the_api_within_the_logins_rights() {
    let f = Fixture::new("");
    let config = f.tmp.path().join("config");
    let admin = f.srv.admin.clone();
    login_with_token(&f, &config, &admin);

    // A token limited to one component: its secret printed once, and it works.
    let created = expect(
        &config,
        &[
            "token",
            "create",
            "--remote",
            "--name",
            "ci",
            "--scope",
            "backups:read",
            "--component",
            "files",
            "--json",
        ],
        0,
        &admin,
    )
    .json();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let id = created["token"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["token"]["components"], serde_json::json!(["files"]));
    let (code, _) = f.srv.call("GET", "/api/v1/backups", Some(&secret), None);
    assert_eq!(code, 200);
    let list = expect(&config, &["token", "list", "--remote"], 0, &secret).stdout;
    assert!(
        list.lines().any(|l| l.starts_with(&id)
            && l.contains("backups:read")
            && l.contains("components=files")),
        "{list}"
    );
    let revoked = expect(&config, &["token", "revoke", "--remote", &id], 0, &secret).stdout;
    assert!(revoked.contains("revoked"), "{revoked}");
    assert_eq!(
        f.srv.call("GET", "/api/v1/backups", Some(&secret), None).0,
        401
    );
    let list = expect(&config, &["token", "list", "--remote"], 0, &secret).stdout;
    assert!(
        list.lines()
            .any(|l| l.starts_with(&id) && l.ends_with("REVOKED")),
        "{list}"
    );

    // A user: the password from a file, sent and never printed; then disabled.
    let pw = f.tmp.path().join("pw");
    std::fs::write(&pw, "a long user password\n").unwrap();
    let added = expect(
        &config,
        &[
            "user",
            "add",
            "--remote",
            "--name",
            "operator",
            "--scope",
            "backups:read",
            "--password-file",
            pw.to_str().unwrap(),
            "--json",
        ],
        0,
        "a long user password",
    )
    .json();
    let uid = added["id"].as_str().unwrap().to_owned();
    let login = serde_json::json!({ "name": "operator", "password": "a long user password" });
    assert_eq!(
        f.srv
            .call("POST", "/api/v1/auth/login", None, Some(&login))
            .0,
        200
    );
    let users = expect(&config, &["user", "list", "--remote"], 0, &admin).stdout;
    assert!(users.contains("operator"), "{users}");
    expect(&config, &["user", "disable", "--remote", &uid], 0, &admin);
    assert_eq!(
        f.srv
            .call("POST", "/api/v1/auth/login", None, Some(&login))
            .0,
        401
    );

    // A login with `tokens:admin` but not `restore` cannot mint `restore` (403, exit 9).
    let (_, limited) = f.srv.admin(
        "POST",
        "/api/v1/tokens",
        Some(&serde_json::json!({ "name": "admin-lite", "scopes": ["tokens:admin", "backups:read"] })),
    );
    let limited = limited["secret"].as_str().unwrap().to_owned();
    let other = f.tmp.path().join("other-config");
    login_with_token(&f, &other, &limited);
    let run = expect(
        &other,
        &[
            "token", "create", "--remote", "--name", "x", "--scope", "restore",
        ],
        9,
        &limited,
    );
    assert!(run.stderr.contains("restore"), "{}", run.stderr);
    // Unknown ids are 404 (exit 10); --remote with a data directory is a usage error.
    expect(
        &config,
        &["token", "revoke", "--remote", "tok-nope"],
        10,
        &admin,
    );
    let run = coffer(
        &config,
        &["token", "list", "--remote", "--config", "/nonexistent"],
        "",
        &[],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    // Offline still works as before, on the data directory.
    let data = f.tmp.path().join("data");
    let offline = coffer(
        &config,
        &["token", "list", "--data-dir", data.to_str().unwrap()],
        "",
        &[],
    );
    assert_eq!(offline.code, 0, "{}", offline.stderr);
    assert!(offline.stdout.contains(&id), "{}", offline.stdout);
}
