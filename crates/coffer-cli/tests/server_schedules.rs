//! Schedules end to end, on a fake clock (`COFFER_FAKE_CLOCK_FILE`): a
//! month of Palette's every-2-days-at-03,15-UTC schedule fires exactly the
//! right backups, including around a downtime (one late catch-up, older
//! due times `MISSED`); overlapping runs and busy components are
//! `SKIPPED` with the reason; retention keeps what its policy says, and
//! the repository then passes `restic check --read-data` after a prune;
//! bad schedules are refused naming the field; the API's rules (declared
//! schedules read-only, component limits, run now, pinning).

mod common;

use std::time::{Duration, Instant};

use common::schedule::*;
use common::*;
use jiff::SignedDuration;
use serde_json::{Value, json};

#[test]
fn a_month_of_palettes_schedule_runs_exactly_its_due_times_around_a_downtime() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let files = small_dir(dir);
    let clock = FakeClock::new(dir, t("2027-03-01T00:00:00Z"));
    let config = write_config(
        dir,
        &format!(
            "[[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n\n\
             [[schedules]]\nname = \"palette\"\nevery_days = 2\nhours_utc = [15, 3]\n\
             start = \"2027-03-01\"\nretention = {{ keep_last = 4 }}\n",
            files.display()
        ),
    );
    let env = [("COFFER_FAKE_CLOCK_FILE", clock.path.as_path())];
    let srv = Server::start_env(&config, &env);
    let admin = srv.admin.clone();
    let password = srv
        .repo_password
        .clone()
        .expect("the repository's password");
    let list = settle(&srv, t("2027-03-01T00:00:00Z"));
    assert_eq!(list["fake_clock"], true);
    let s = &list["schedules"][0];
    assert_eq!(s["declared"], true);
    assert_eq!(s["next_run"], "2027-03-01T03:00:00Z", "{s:#}");
    let step = SignedDuration::from_hours(3);
    walk(
        &srv,
        &clock,
        t("2027-03-01T03:00:00Z"),
        t("2027-03-10T00:00:00Z"),
        step,
    );

    // Down from the 10th to the 13th, 05:00: the 11th's two due times are
    // too old to catch up; the 13th's 03:00 (2 h ago) runs once, late.
    drop(srv);
    clock.set(t("2027-03-13T05:00:00Z"));
    let mut srv = Server::start_env(&config, &env);
    srv.admin = admin;
    settle(&srv, t("2027-03-13T05:00:00Z"));
    walk(
        &srv,
        &clock,
        t("2027-03-13T06:00:00Z"),
        t("2027-03-31T21:00:00Z"),
        step,
    );

    let runs = runs(&srv, "palette");
    let mut expected = Vec::new();
    for day in (1..=31).step_by(2) {
        for hour in [3, 15] {
            expected.push(format!("2027-03-{day:02}T{hour:02}:00:00Z"));
        }
    }
    let started: Vec<&str> = runs
        .iter()
        .filter(|r| r["outcome"] == "STARTED")
        .map(|r| r["due_at"].as_str().unwrap())
        .collect();
    let want: Vec<&str> = expected
        .iter()
        .map(String::as_str)
        .filter(|d| !d.starts_with("2027-03-11"))
        .collect();
    assert_eq!(started, want, "{runs:#?}");
    let missed: Vec<&Value> = runs.iter().filter(|r| r["outcome"] == "MISSED").collect();
    assert_eq!(missed.len(), 1, "{runs:#?}");
    assert_eq!(missed[0]["due_at"], "2027-03-11T03:00:00Z");
    assert_eq!(missed[0]["last_due_at"], "2027-03-11T15:00:00Z");
    assert_eq!(missed[0]["missed_count"], 2);
    assert!(
        missed[0]["reason"]
            .as_str()
            .unwrap()
            .contains("catch_up_window_secs"),
        "{missed:?}"
    );
    let late = runs
        .iter()
        .find(|r| r["due_at"] == "2027-03-13T03:00:00Z")
        .unwrap();
    assert!(
        late["reason"].as_str().unwrap().contains("7200 s after"),
        "{late}"
    );
    assert!(runs.iter().all(|r| r["outcome"] != "SKIPPED"), "{runs:#?}");

    // Every run was an ordinary backup linked to its schedule; retention
    // (keep_last = 4) left the newest four.
    // (Retention runs on the backup's thread once it is READY: wait for it.)
    let deadline = Instant::now() + Duration::from_secs(30);
    let v = loop {
        let (_, v) = srv.admin("GET", "/api/v1/backups?label=palette", None);
        if v["backups"].as_array().unwrap().len() <= 4 || Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut backups = v["backups"].as_array().unwrap().clone();
    // Listed by real start time (the same second here): order by due time.
    backups.sort_by(|a, b| b["due_at"].as_str().cmp(&a["due_at"].as_str()));
    let due: Vec<&str> = backups
        .iter()
        .map(|b| b["due_at"].as_str().unwrap())
        .collect();
    assert_eq!(
        due,
        [
            "2027-03-31T15:00:00Z",
            "2027-03-31T03:00:00Z",
            "2027-03-29T15:00:00Z",
            "2027-03-29T03:00:00Z"
        ],
        "{v:#}"
    );
    assert!(
        backups
            .iter()
            .all(|b| b["status"] == "READY" && b["schedule"] == "palette")
    );
    let (_, list) = srv.admin("GET", "/api/v1/schedules", None);
    let s = &list["schedules"][0];
    assert_eq!(s["next_run"], "2027-04-02T03:00:00Z", "{s:#}");
    assert_eq!(s["last_run"]["outcome"], "STARTED");
    assert_eq!(s["last_run"]["backup_status"], "READY");
    assert_eq!(s["last_success"]["backup_id"], backups[0]["id"]);
    let metrics = String::from_utf8_lossy(&srv.curl("/metrics", None, &[]).body).into_owned();
    assert!(
        metrics.contains(
            "coffer_schedule_next_run_timestamp_seconds{schedule=\"palette\"} 1806634800"
        ),
        "{metrics}"
    );
    // Counters start again with the process: since the restart, 20 runs
    // started (and 20 backups went), one missed range was recorded.
    for line in [
        "coffer_retention_deleted_total 20",
        "coffer_schedule_runs_total{schedule=\"palette\",outcome=\"STARTED\"} 20",
        "coffer_schedule_runs_total{schedule=\"palette\",outcome=\"MISSED\"} 1",
    ] {
        assert!(metrics.contains(line), "{line}: {metrics}");
    }

    // The preview agrees: nothing more to delete, each kept one says why.
    let (code, p) = srv.admin("GET", "/api/v1/retention/preview?schedule=palette", None);
    assert_eq!(code, 200, "{p}");
    let group = &p["policies"][0];
    assert_eq!(group["delete"].as_array().unwrap().len(), 0, "{p:#}");
    assert_eq!(group["keep"].as_array().unwrap().len(), 4, "{p:#}");
    assert!(
        group["keep"][0]["reasons"]
            .as_array()
            .unwrap()
            .contains(&json!("newest_ready"))
    );

    // Space comes back, and plain restic accepts the repository.
    if coffer_testkit::require_tool("restic") {
        let (code, v) = srv.admin(
            "POST",
            "/api/v1/targets/local/prune",
            Some(&json!({ "grace_secs": 0 })),
        );
        assert_eq!(code, 202, "{v}");
        let id = v["id"].as_str().unwrap();
        let done = srv.wait_until_done(&format!("/api/v1/prunes/{id}"), "PRUNING", 120);
        assert_eq!(done["status"], "READY", "{done:#}");
        let out = std::process::Command::new("restic")
            .args(["-r"])
            .arg(dir.join("data/repository"))
            .args(["check", "--read-data", "--no-lock"])
            .env("RESTIC_PASSWORD", &password)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn overlapping_runs_and_busy_components_are_skipped_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let gate = dir.join("gate");
    let clock = FakeClock::new(dir, t("2027-01-01T00:00:00Z"));
    let config = write_config(
        dir,
        &format!(
            "[[components]]\nname = \"slow\"\nkind = \"command\"\n\
             backup = [\"sh\", \"-c\", \"while [ ! -e {g} ]; do sleep 0.05; done; echo data\"]\n\
             restore = [\"sh\", \"-c\", \"cat > /dev/null\"]\n",
            g = gate.display()
        ),
    );
    let env = [("COFFER_FAKE_CLOCK_FILE", clock.path.as_path())];
    let srv = Server::start_env(&config, &env);
    let (code, v) = srv.admin(
        "POST",
        "/api/v1/schedules",
        Some(&json!({ "name": "hourly", "every_secs": 3600, "start": "2027-01-01" })),
    );
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["next_run"], "2027-01-01T01:00:00Z", "{v:#}");

    // 01:00 starts a run that hangs; 02:00 finds it still going.
    clock.set(t("2027-01-01T01:00:00Z"));
    decided(&srv, t("2027-01-01T01:00:00Z"));
    clock.set(t("2027-01-01T02:00:00Z"));
    decided(&srv, t("2027-01-01T02:00:00Z"));
    let r = runs(&srv, "hourly");
    assert_eq!(r.len(), 2, "{r:#?}");
    assert_eq!(r[0]["outcome"], "STARTED");
    let first = r[0]["backup_id"].as_str().unwrap().to_owned();
    assert_eq!(r[1]["outcome"], "SKIPPED");
    assert!(r[1]["reason"].as_str().unwrap().contains(&first), "{r:#?}");
    std::fs::write(&gate, b"").unwrap();
    assert_eq!(wait_backup(&srv, &first)["status"], "READY");

    // A backup started by hand holds the component: 03:00 is skipped, and
    // the next due time runs.
    std::fs::remove_file(&gate).unwrap();
    let (code, v) = srv.admin(
        "POST",
        "/api/v1/backups",
        Some(&json!({ "label": "manual", "components": ["slow"] })),
    );
    assert_eq!(code, 202, "{v}");
    let manual = v["id"].as_str().unwrap().to_owned();
    clock.set(t("2027-01-01T03:00:00Z"));
    decided(&srv, t("2027-01-01T03:00:00Z"));
    let r = runs(&srv, "hourly");
    let skipped = r.last().unwrap();
    assert_eq!(skipped["outcome"], "SKIPPED", "{r:#?}");
    let reason = skipped["reason"].as_str().unwrap();
    assert!(
        reason.contains("component slow is busy")
            && reason.contains("retried at the next due time"),
        "{reason}"
    );
    std::fs::write(&gate, b"").unwrap();
    wait_backup(&srv, &manual);
    clock.set(t("2027-01-01T04:00:00Z"));
    settle(&srv, t("2027-01-01T04:00:00Z"));
    let r = runs(&srv, "hourly");
    assert_eq!(r.last().unwrap()["outcome"], "STARTED", "{r:#?}");

    // Run now: one run at a time.
    std::fs::remove_file(&gate).unwrap();
    let (code, v) = srv.admin("POST", "/api/v1/schedules/hourly/run", None);
    assert_eq!(code, 202, "{v}");
    let by_hand = v["id"].as_str().unwrap().to_owned();
    let (code, v) = srv.admin("POST", "/api/v1/schedules/hourly/run", None);
    assert_eq!(code, 409, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("one run at a time"),
        "{v}"
    );
    std::fs::write(&gate, b"").unwrap();
    let b = wait_backup(&srv, &by_hand);
    assert_eq!(b["status"], "READY");
    assert_eq!(b["schedule"], "hourly");
    let r = runs(&srv, "hourly");
    assert_eq!(r.last().unwrap()["by_hand"], true, "{r:#?}");
}

#[test]
fn schedules_over_the_api_keep_to_the_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let files = small_dir(dir);
    let config = write_config(
        dir,
        &format!(
            "[[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n\n\
             [[components]]\nname = \"quick\"\nkind = \"command\"\nbackup = [\"echo\", \"q\"]\n\
             restore = [\"sh\", \"-c\", \"cat > /dev/null\"]\n\n\
             [[schedules]]\nname = \"declared\"\ncron = \"0 3 * * *\"\ntime_zone = \"Europe/Berlin\"\n\n\
             [retention.labels]\nmanual = {{ keep_last = 1 }}\n",
            files.display()
        ),
    );
    let srv = Server::start(&config);

    // Bad input: refused naming the field, nothing recorded.
    for (body, field) in [
        (
            json!({ "name": "xyz", "every_days": 1, "hours_utc": [24] }),
            "hours_utc",
        ),
        (
            json!({ "name": "xyz", "every_days": 0, "hours_utc": [3] }),
            "every_days",
        ),
        (json!({ "name": "xyz", "cron": "0 0 30 2 *" }), "cron"),
        (
            json!({ "name": "xyz", "every_secs": 3600, "retention": {} }),
            "retention",
        ),
        (
            json!({ "name": "xyz", "every_secs": 3600, "hourly": true }),
            "hourly",
        ),
        (
            json!({ "name": "xyz", "every_secs": 3600, "components": ["nope"] }),
            "components",
        ),
        (
            json!({ "name": "xyz", "every_secs": 3600, "export": { "password": { "env": "HOME" } } }),
            "export.password",
        ),
        (
            json!({ "name": "xyz", "every_secs": 3600, "target": "nowhere" }),
            "target",
        ),
    ] {
        let (code, v) = srv.admin("POST", "/api/v1/schedules", Some(&body));
        assert_eq!(code, 422, "{body}: {v}");
        assert!(
            v["message"].as_str().unwrap().contains(field),
            "{body}: {v}"
        );
    }
    let (_, v) = srv.admin("GET", "/api/v1/schedules", None);
    assert_eq!(v["schedules"].as_array().unwrap().len(), 1, "{v:#}");
    assert_eq!(v["fake_clock"], false);

    // Declared in coffer.toml: read-only.
    let (code, v) = srv.admin(
        "PUT",
        "/api/v1/schedules/declared",
        Some(&json!({ "every_secs": 3600 })),
    );
    assert_eq!(code, 409, "{v}");
    let (code, _) = srv.admin("DELETE", "/api/v1/schedules/declared", None);
    assert_eq!(code, 409);

    // A token limited to `quick` makes schedules of `quick` only, sees only
    // those, and needs `backups:delete` for retention.
    let limited = srv.token(
        &["schedules:read", "schedules:write"],
        Some(&["quick"]),
        None,
    );
    let call = |method: &str, path: &str, body: Option<&Value>| {
        srv.call(method, path, Some(&limited), body)
    };
    let (code, v) = call(
        "POST",
        "/api/v1/schedules",
        Some(&json!({ "name": "all", "every_secs": 3600 })),
    );
    assert_eq!(code, 403, "{v}");
    let (code, v) = call(
        "POST",
        "/api/v1/schedules",
        Some(&json!({ "name": "f", "every_secs": 3600, "components": ["files"] })),
    );
    assert_eq!(code, 403, "{v}");
    let (code, v) = call(
        "POST",
        "/api/v1/schedules",
        Some(
            &json!({ "name": "qqq", "every_secs": 3600, "components": ["quick"],
                      "retention": { "keep_last": 3 } }),
        ),
    );
    assert_eq!(code, 403, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("backups:delete"),
        "{v}"
    );
    let (code, v) = call(
        "POST",
        "/api/v1/schedules",
        Some(&json!({ "name": "qqq", "every_secs": 3600, "components": ["quick"] })),
    );
    assert_eq!(code, 201, "{v}");
    let (_, v) = call("GET", "/api/v1/schedules", None);
    let names: Vec<&str> = v["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["qqq"], "{v:#}");
    let (code, _) = call("GET", "/api/v1/schedules/declared", None);
    assert_eq!(code, 403);
    // Running it needs backups:write, which this token lacks.
    let (code, v) = call("POST", "/api/v1/schedules/qqq/run", None);
    assert_eq!(code, 403, "{v}");
    let (code, v) = srv.admin(
        "PUT",
        "/api/v1/schedules/qqq",
        Some(&json!({ "name": "renamed", "every_secs": 3600 })),
    );
    assert_eq!(code, 422, "{v}");
    assert!(v["message"].as_str().unwrap().contains("name"), "{v}");

    // [retention.labels]: keep the newest `manual` backup — and a pinned one.
    let first = srv.backup(&json!({ "label": "manual", "components": ["quick"] }));
    let id = first["id"].as_str().unwrap();
    let (code, v) = srv.admin(
        "PUT",
        &format!("/api/v1/backups/{id}"),
        Some(&json!({ "pinned": true })),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["pinned"], true);
    let (code, v) = srv.admin(
        "PUT",
        &format!("/api/v1/backups/{id}"),
        Some(&json!({ "pinned": "yes" })),
    );
    assert_eq!(code, 422, "{v}");
    for _ in 0..2 {
        srv.backup(&json!({ "label": "manual", "components": ["quick"] }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let left = loop {
        let (_, v) = srv.admin("GET", "/api/v1/backups?label=manual", None);
        let left = v["backups"].as_array().unwrap().clone();
        if left.len() <= 2 || Instant::now() > deadline {
            break left;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(left.len(), 2, "{left:#?}");
    assert!(left.iter().any(|b| b["id"] == id && b["pinned"] == true));
    let (code, p) = srv.admin("GET", "/api/v1/retention/preview?label=manual", None);
    assert_eq!(code, 200, "{p}");
    let keep = p["policies"][0]["keep"].as_array().unwrap();
    let pinned = keep.iter().find(|b| b["id"] == id).unwrap();
    assert_eq!(pinned["reasons"], json!(["pinned"]), "{p:#}");
    let (code, _) = srv.admin("GET", "/api/v1/retention/preview?label=nope", None);
    assert_eq!(code, 404);

    // The same preview from the command line, offline beside the server.
    let cli = |args: &[&str]| {
        std::process::Command::new(coffer_bin())
            .args(["retention", "preview", "--config"])
            .arg(&config)
            .args(args)
            .output()
            .unwrap()
    };
    let out = cli(&["--label", "manual", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let offline: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(offline, p, "the CLI and the API disagree");
    let out = cli(&["--label", "manual"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("label manual "), "{text}");
    assert!(text.contains(&format!("keep   {id}")), "{text}");
    assert!(text.contains("pinned"), "{text}");
    let out = cli(&["--label", "nope"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no retention policy for label"),
        "{out:?}"
    );
}
