//! Space comes back through the server: deleting backups, then pruning a
//! target (`POST /api/v1/targets/{name}/prune`), two-phase, refused while
//! plain restic holds a lock — and the repository stays one that
//! `restic check --read-data` accepts.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// Starts a prune of the default target and waits for its end.
fn prune(srv: &Server, body: &Value) -> Value {
    let (code, v) = srv.admin("POST", "/api/v1/targets/local/prune", Some(body));
    assert_eq!(code, 202, "{v}");
    assert_eq!(v["status"], "PRUNING");
    let id = v["id"].as_str().unwrap();
    srv.wait_until_done(&format!("/api/v1/prunes/{id}"), "PRUNING", 120)
}

#[test]
fn deleted_backups_give_their_space_back_through_a_two_phase_prune() {
    if !coffer_testkit::require_tool("restic") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let files = dir.join("files");
    std::fs::create_dir(&files).unwrap();
    std::fs::write(
        files.join("old"),
        coffer_testkit::tree::random_bytes(1, 3 << 20),
    )
    .unwrap();
    let config = write_config(
        dir,
        &format!(
            "[[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n",
            files.display()
        ),
    );
    let srv = Server::start(&config);
    let password = srv
        .repo_password
        .clone()
        .expect("the default repository's password");
    let repo = dir.join("data/repository");

    let old = srv.backup(&json!({ "label": "before" }));
    assert_eq!(old["status"], "READY", "{old:#}");
    std::fs::remove_file(files.join("old")).unwrap();
    std::fs::write(
        files.join("new"),
        coffer_testkit::tree::random_bytes(2, 1 << 20),
    )
    .unwrap();
    let new = srv.backup(&json!({ "label": "after" }));
    assert_eq!(new["status"], "READY", "{new:#}");
    let (code, d) = srv.admin(
        "DELETE",
        &format!("/api/v1/backups/{}", old["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(code, 200, "{d}");
    assert!(d["space"].as_str().unwrap().contains("/prune"), "{d}");

    // A grace no jiff span can hold (or longer than a year) is refused by
    // name before anything runs.
    for g in [u64::MAX, 10_000_000_000_000, 400 * 24 * 3600] {
        let (code, e) = srv.admin(
            "POST",
            "/api/v1/targets/local/prune",
            Some(&json!({ "grace_secs": g })),
        );
        assert_eq!(code, 422, "{e}");
        assert!(
            e["message"].as_str().unwrap().starts_with("grace_secs"),
            "{e}"
        );
    }

    // Phase one marks what no backup uses; nothing is deleted yet.
    let first = prune(&srv, &json!({}));
    assert_eq!(first["status"], "READY", "{first:#}");
    let report = &first["report"];
    assert!(report["packs_marked"].as_u64().unwrap() > 0, "{first:#}");
    assert!(
        report["bytes_pending"].as_u64().unwrap() >= 3 << 20,
        "{first:#}"
    );
    assert_eq!(report["packs_removed"], 0, "{first:#}");
    // Planned beside backups, then the exclusive phase: both timed.
    assert!(report["planning_secs"].as_f64().unwrap() > 0.0, "{first:#}");
    assert!(
        report["exclusive_secs"].as_f64().unwrap() > 0.0,
        "{first:#}"
    );
    assert_eq!(report["replanned"], false, "{first:#}");
    assert_eq!(first["grace_secs"], Value::Null);
    coffer_testkit::restic_check(&repo, &password);

    // Phase two, with no grace left: the marked packs go.
    let second = prune(&srv, &json!({ "grace_secs": 0 }));
    assert_eq!(second["status"], "READY", "{second:#}");
    assert!(
        second["report"]["packs_removed"].as_u64().unwrap() > 0,
        "{second:#}"
    );
    assert_eq!(second["grace_secs"], 0);
    coffer_testkit::restic_check(&repo, &password);

    // What is left restores whole.
    let (code, r) = srv.admin(
        "POST",
        &format!("/api/v1/backups/{}/restore", new["id"].as_str().unwrap()),
        Some(&json!({ "overrides": { "files": { "path": dir.join("restored") } } })),
    );
    assert_eq!(code, 202, "{r}");
    let done = srv.wait_restore(r["id"].as_str().unwrap());
    assert_eq!(done["status"], "READY", "{done:#}");
    coffer_testkit::tree::assert_same_tree(&files, &dir.join("restored"));

    // Plain restic at work on the repository: no prune under it.
    let mut restic = Command::new("restic")
        .arg("-r")
        .arg(&repo)
        .args(["backup", "--stdin", "--stdin-filename", "from-restic", "-q"])
        .env("RESTIC_PASSWORD", &password)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let refused = loop {
        let (code, v) = srv.admin("POST", "/api/v1/targets/local/prune", Some(&json!({})));
        if code == 409 {
            break v;
        }
        assert_eq!(code, 202, "{v}");
        // restic had not taken its lock yet: let that prune end, try again.
        srv.wait_until_done(
            &format!("/api/v1/prunes/{}", v["id"].as_str().unwrap()),
            "PRUNING",
            120,
        );
        assert!(Instant::now() < deadline, "restic never took its lock");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("plain restic"),
        "{refused}"
    );
    let mut stdin = restic.stdin.take().unwrap();
    stdin.write_all(b"written by restic").unwrap();
    drop(stdin);
    let out = restic.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(prune(&srv, &json!({}))["status"], "READY");

    // Mistakes are named.
    let (code, e) = srv.admin(
        "POST",
        "/api/v1/targets/local/prune",
        Some(&json!({ "grace": 1 })),
    );
    assert_eq!(code, 422, "{e}");
    let (code, _) = srv.admin("GET", "/api/v1/prunes/prune-nope", None);
    assert_eq!(code, 404);
    let (code, _) = srv.admin("POST", "/api/v1/targets/nope/prune", Some(&json!({})));
    assert_eq!(code, 404);
    coffer_testkit::restic_check(&repo, &password);
}
