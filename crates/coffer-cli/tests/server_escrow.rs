//! "Rebuild from nothing": installation A's own state — a target added over
//! the API with its credentials, a schedule, a notification destination, a
//! user and a token — is escrowed in its repository; A is lost but for the
//! repository and its password; a new installation B attaches it, restores
//! the state (`admin`) and the backups, and A's user and token work on B.

mod common;

use std::time::{Duration, Instant};

use common::{Server, small_dir, write_config_with};
use serde_json::json;

#[test]
fn a_new_installation_restores_the_lost_ones_state_from_its_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let a_dir = tmp.path().join("a");
    let files = small_dir(&a_dir);
    let body = format!(
        "[[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n",
        files.display()
    );
    let config_a = write_config_with(&a_dir, "", &body);
    let a = Server::start(&config_a);
    let repo_password = a.repo_password.clone().unwrap();
    let second = tmp.path().join("second-repo");
    let (code, v) = a.admin(
        "POST",
        "/api/v1/targets",
        Some(&json!({ "name": "second", "spec": { "kind": "local", "path": second } })),
    );
    assert_eq!(code, 201, "{v}");
    let second_password = v["repository_password"].as_str().unwrap().to_owned();
    for (path, body) in [
        (
            "/api/v1/schedules",
            json!({ "name": "hourly", "every_secs": 3600, "start": "2027-01-01" }),
        ),
        (
            "/api/v1/notifications",
            json!({ "name": "ops", "kind": "webhook", "url": "http://127.0.0.1:1/x" }),
        ),
        (
            "/api/v1/users",
            json!({ "name": "ada", "password": "ada's long password", "scopes": ["backups:read"] }),
        ),
    ] {
        let (code, v) = a.admin("POST", path, Some(&body));
        assert_eq!(code, 201, "{path}: {v}");
    }
    let token = a.token(&["backups:read"], None, None);
    let b1 = a.backup(&json!({ "label": "before", "components": ["files"] }));
    assert_eq!(b1["status"], "READY");
    // The escrow follows every change within seconds.
    let escrow = a_dir.join("data/repository/coffer/escrow/state");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !escrow.exists() {
        assert!(Instant::now() < deadline, "no escrowed state");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Let the last change (the backup's end) reach it.
    std::thread::sleep(Duration::from_secs(3));
    drop(a);
    // A is lost: only its repository (and its password) remain.
    let repository = tmp.path().join("a-repository");
    std::fs::rename(a_dir.join("data/repository"), &repository).unwrap();
    std::fs::remove_dir_all(a_dir.join("data")).unwrap();

    let b_dir = tmp.path().join("b");
    std::fs::create_dir_all(&b_dir).unwrap();
    let b = Server::start(&write_config_with(&b_dir, "", &body));
    let (code, v) = b.admin(
        "POST",
        "/api/v1/targets",
        Some(
            &json!({ "name": "recovered", "spec": { "kind": "local", "path": repository },
            "repository_password": repo_password }),
        ),
    );
    assert_eq!(code, 201, "{v}");
    // Restoring state gives tokens of any scope: `admin` only.
    let writer = b.token(&["targets:write"], None, None);
    let (code, v) = b.call(
        "POST",
        "/api/v1/targets/recovered/state",
        Some(&writer),
        None,
    );
    assert_eq!(code, 403, "{v}");
    let (code, report) = b.admin("POST", "/api/v1/targets/recovered/state", None);
    assert_eq!(code, 200, "{report}");
    assert_eq!(report["targets"], json!(["second"]), "{report:#}");
    assert_eq!(report["schedules"], json!(["hourly"]), "{report:#}");
    assert_eq!(report["notifications"], json!(["ops"]), "{report:#}");
    assert_eq!(report["users"], json!(["ada"]), "{report:#}");
    assert!(
        report["tokens"].as_array().unwrap().len() >= 2,
        "{report:#}"
    );
    assert!(report["audit_head_seq"].as_u64().unwrap() > 5, "{report:#}");
    // Done again, it adds nothing and replaces nothing.
    let (_, again) = b.admin("POST", "/api/v1/targets/recovered/state", None);
    assert_eq!(again["users"], json!([]), "{again:#}");

    // A's token and A's user work on B.
    assert_eq!(b.call("GET", "/api/v1/backups", Some(&token), None).0, 200);
    let (code, v) = b.call(
        "POST",
        "/api/v1/auth/login",
        None,
        Some(&json!({ "name": "ada", "password": "ada's long password" })),
    );
    assert_eq!(code, 200, "{v}");
    let (code, s) = b.admin("GET", "/api/v1/schedules/hourly", None);
    assert_eq!(code, 200, "{s}");
    let (code, n) = b.admin("GET", "/api/v1/notifications/ops", None);
    assert_eq!(code, 200, "{n}");
    // The second target opens with its escrowed password.
    let (code, t) = b.admin("POST", "/api/v1/targets/second/validate", None);
    assert_eq!(code, 200, "{t}");
    assert!(!second_password.is_empty());
    // The backups came back when the target was attached, and restore.
    let (code, r) = b.admin("POST", "/api/v1/targets/recovered/rebuild", None);
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["found"], 1, "{r:#}");
    let (code, listed) = b.admin(
        "GET",
        &format!("/api/v1/backups/{}", b1["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(code, 200, "{listed}");
    assert_eq!(listed["status"], "READY", "{listed:#}");
    let restored = tmp.path().join("b/restored");
    let (code, v) = b.admin(
        "POST",
        &format!("/api/v1/backups/{}/restore", b1["id"].as_str().unwrap()),
        Some(&json!({ "components": ["files"], "overrides": { "files": { "path": restored } } })),
    );
    assert_eq!(code, 202, "{v}");
    let done = b.wait_restore(v["id"].as_str().unwrap());
    assert_eq!(done["status"], "READY", "{done:#}");
    assert_eq!(std::fs::read(restored.join("a")).unwrap(), b"a");
}
