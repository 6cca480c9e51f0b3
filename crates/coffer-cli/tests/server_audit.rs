//! The audit log: every state-changing request (who, from where, what, on
//! what, the status) and every job's end, hash-chained in the catalog and
//! copied into the repository; `GET /api/v1/audit/verify` and
//! `coffer repo audit` catch an altered, removed or cut-off entry.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::coffer_bin;
use common::fixture::Fixture;
use serde_json::{Value, json};

fn entries(f: &Fixture) -> Vec<Value> {
    let (code, v) = f.srv.admin("GET", "/api/v1/audit?limit=1000", None);
    assert_eq!(code, 200, "{v}");
    v["entries"].as_array().unwrap().clone()
}

fn verify(f: &Fixture) -> Value {
    let (code, v) = f.srv.admin("GET", "/api/v1/audit/verify", None);
    assert_eq!(code, 200, "{v}");
    v
}

/// Waits until the repository's copy holds every entry.
fn copied(f: &Fixture) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = verify(f);
        if v["targets"][0]["pending"] == 0 {
            return v;
        }
        assert!(Instant::now() < deadline, "never copied: {v:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn problems(v: &Value) -> String {
    v.to_string()
}

fn sql(f: &Fixture, statement: &str) {
    let db = rusqlite::Connection::open(f.tmp.path().join("data/catalog.sqlite")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.execute_batch(statement).unwrap();
}

fn offline_audit(f: &Fixture) -> (i32, String) {
    let pw = f.tmp.path().join("repo-pw");
    std::fs::write(&pw, f.srv.repo_password.as_deref().unwrap()).unwrap();
    let out = Command::new(coffer_bin())
        .args(["repo", "-r"])
        .arg(f.tmp.path().join("data/repository"))
        .arg("--password-file")
        .arg(&pw)
        .arg("audit")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn requests_and_jobs_are_recorded_copied_and_tampering_is_caught() {
    let f = Fixture::new("trusted_proxies = [\"127.0.0.1\"]\n");

    // A token created by the admin, from a client behind the trusted proxy
    // that prepended a lie to X-Forwarded-For.
    let created = f.srv.curl(
        "/api/v1/tokens",
        None,
        &[
            "-X".into(),
            "POST".into(),
            "-H".into(),
            "Content-Type: application/json".into(),
            "-H".into(),
            "X-Forwarded-For: 192.0.2.66, 198.51.100.7".into(),
            "--data".into(),
            json!({"name": "reader", "scopes": ["backups:read"]}).to_string(),
        ],
    );
    assert_eq!(created.status, 201);
    let reader = created.json()["secret"].as_str().unwrap().to_owned();
    // Refused: no credentials, and the wrong scope.
    assert_eq!(
        f.srv
            .call("POST", "/api/v1/backups", None, Some(&json!({})))
            .0,
        401
    );
    assert_eq!(
        f.srv
            .call("POST", "/api/v1/backups", Some(&reader), Some(&json!({})))
            .0,
        403
    );
    // Reading is not recorded (downloads are: below); reading the log needs
    // audit:read, unlimited.
    assert_eq!(
        f.srv.call("GET", "/api/v1/audit", Some(&reader), None).0,
        403
    );
    let limited = f.srv.token(&["audit:read"], Some(&["files"]), None);
    assert_eq!(
        f.srv.call("GET", "/api/v1/audit", Some(&limited), None).0,
        403
    );
    let backup = f.backup_of(&["files"]);
    // A native download takes data out: recorded with who and the status.
    let dl = f.srv.curl("/api/v1/components/files/backup", None, &[]);
    assert_eq!(dl.status, 200);

    let log = entries(&f);
    let admin_id = log[0]["actor"].as_str().unwrap().to_owned();
    assert!(admin_id.starts_with("tok-"), "{log:#?}");
    assert_eq!(log[0]["action"], "POST /api/v1/tokens");
    assert_eq!(log[0]["outcome"], "201");
    assert_eq!(
        log[0]["address"], "198.51.100.7",
        "the proxy's word, not the client's"
    );
    assert_eq!(log[1]["actor"], "anonymous");
    assert_eq!(log[1]["outcome"], "401");
    assert_eq!(log[1]["address"], "127.0.0.1");
    assert!(log[2]["actor"].as_str().unwrap().starts_with("tok-"));
    assert_ne!(log[2]["actor"], admin_id.as_str());
    assert_eq!(log[2]["outcome"], "403");
    let gets: Vec<&str> = log
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.starts_with("GET"))
        .collect();
    assert_eq!(gets, ["GET /api/v1/components/{name}/backup"], "{log:#?}");
    let download = log
        .iter()
        .find(|e| e["action"] == "GET /api/v1/components/{name}/backup")
        .unwrap();
    assert_eq!(download["subject"], "/api/v1/components/files/backup");
    assert_eq!(download["outcome"], "200");
    let started = log
        .iter()
        .find(|e| e["action"] == "POST /api/v1/backups" && e["outcome"] == "202")
        .unwrap_or_else(|| panic!("{log:#?}"));
    assert_eq!(started["actor"], admin_id.as_str());
    let ended = log
        .iter()
        .find(|e| e["action"] == "job backup" && e["subject"] == backup.as_str())
        .unwrap_or_else(|| panic!("{log:#?}"));
    assert_eq!(ended["outcome"], "READY");
    assert_eq!(ended["actor"], "system");
    for w in log.windows(2) {
        assert_eq!(w[1]["prev"], w[0]["hash"]);
        assert_eq!(w[1]["seq"], w[0]["seq"].as_u64().unwrap() + 1);
    }

    // Sound, and copied into the repository.
    let v = copied(&f);
    assert_eq!(v["ok"], true, "{v:#}");
    let n = v["head_seq"].as_u64().unwrap();
    assert_eq!(n as usize, log.len());
    let (code, out) = offline_audit(&f);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("intact: {n} entries")), "{out}");
    assert!(out.contains("198.51.100.7"), "{out}");

    // An entry altered in the catalog.
    sql(&f, "UPDATE audit SET outcome = '200' WHERE seq = 3");
    let v = verify(&f);
    assert_eq!(v["ok"], false);
    assert!(problems(&v).contains("entry 3 was altered"), "{v:#}");
    assert!(
        problems(&v).contains("entry 3 differs between the catalog"),
        "{v:#}"
    );
    sql(&f, "UPDATE audit SET outcome = '403' WHERE seq = 3");
    assert_eq!(verify(&f)["ok"], true);

    // An entry removed from the catalog.
    let saved: (i64, String, String, String, String, String, String, String) = {
        let db = rusqlite::Connection::open(f.tmp.path().join("data/catalog.sqlite")).unwrap();
        db.query_row(
            "SELECT time, actor, IFNULL(address, ''), action, subject, outcome, prev, hash FROM audit WHERE seq = 2",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?)),
        )
        .unwrap()
    };
    sql(&f, "DELETE FROM audit WHERE seq = 2");
    let v = verify(&f);
    assert!(problems(&v).contains("entries 2–2 are missing"), "{v:#}");
    sql(
        &f,
        &format!(
            "INSERT INTO audit VALUES (2, {}, '{}', '{}', '{}', '{}', '{}', '{}', '{}')",
            saved.0, saved.1, saved.2, saved.3, saved.4, saved.5, saved.6, saved.7
        ),
    );
    assert_eq!(verify(&f)["ok"], true, "restored");

    // The catalog's tail cut off: the repository's copy still holds it.
    let tail = n - 1;
    let db = rusqlite::Connection::open(f.tmp.path().join("data/catalog.sqlite")).unwrap();
    let rows: Vec<String> = {
        let mut st = db
            .prepare(&format!("SELECT quote(seq) || ',' || quote(time) || ',' || quote(actor) || ',' || quote(address) || ',' || quote(action) || ',' || quote(subject) || ',' || quote(outcome) || ',' || quote(prev) || ',' || quote(hash) FROM audit WHERE seq >= {tail}"))
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    sql(&f, &format!("DELETE FROM audit WHERE seq >= {tail}"));
    let v = verify(&f);
    assert_eq!(v["ok"], false);
    assert!(problems(&v).contains("were cut off"), "{v:#}");
    for r in &rows {
        sql(&f, &format!("INSERT INTO audit VALUES ({r})"));
    }
    assert_eq!(verify(&f)["ok"], true, "restored");

    // The repository copy's tail cut off: its head still says n.
    let dir = f.tmp.path().join("data/repository/coffer/audit");
    let mut objects: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    objects.sort();
    let last = objects.last().unwrap().clone();
    std::fs::remove_file(&last).unwrap();
    let v = verify(&f);
    assert_eq!(v["ok"], false);
    assert!(problems(&v).contains("cut off"), "{v:#}");
    let (code, out) = offline_audit(&f);
    assert_eq!(code, 7, "{out}");
    assert!(out.contains("cut off") && out.contains("tampered"), "{out}");
}
