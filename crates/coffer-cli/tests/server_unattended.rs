//! Unattended protection over time, end to end on a fake clock: copies of
//! scheduled backups to extra targets (a failed copy keeps its backup), and
//! a quarter left alone — backups kept by GFS, Sunday drills, checks
//! rotating through the packs, weekly prunes — exactly as configured, and a
//! repository plain restic accepts at the end.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::schedule::*;
use common::*;
use jiff::SignedDuration;
use serde_json::json;

#[test]
fn scheduled_backups_are_copied_to_extra_targets_and_a_failed_copy_keeps_its_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let files = small_dir(dir);
    std::fs::write(
        files.join("more"),
        coffer_testkit::tree::random_bytes(3, 1 << 20),
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
    let mut passwords = Vec::new();
    for name in ["second", "third"] {
        let body = json!({ "name": name, "spec": { "kind": "local", "path": dir.join(name) } });
        let (code, v) = srv.admin("POST", "/api/v1/targets", Some(&body));
        assert_eq!(code, 201, "{v}");
        passwords.push(v["repository_password"].as_str().unwrap().to_owned());
    }
    let (code, v) = srv.admin(
        "POST",
        "/api/v1/schedules",
        Some(
            &json!({ "name": "offsite", "every_days": 1, "hours_utc": [3], "enabled": false,
                      "copy_to": ["second", "third"], "retention": { "keep_last": 1 } }),
        ),
    );
    assert_eq!(code, 201, "{v}");
    for (body, field) in [
        (
            json!({ "name": "bad-copy", "every_secs": 3600, "copy_to": ["nowhere"] }),
            "copy_to",
        ),
        (
            json!({ "name": "bad-copy", "every_secs": 3600, "target": "second", "copy_to": ["second"] }),
            "copy_to",
        ),
    ] {
        let (code, v) = srv.admin("POST", "/api/v1/schedules", Some(&body));
        assert_eq!(code, 422, "{body}: {v}");
        assert!(v["message"].as_str().unwrap().contains(field), "{v}");
    }
    let run = |srv: &Server| {
        let (code, v) = srv.admin("POST", "/api/v1/schedules/offsite/run", None);
        assert_eq!(code, 202, "{v}");
        let id = v["id"].as_str().unwrap().to_owned();
        srv.wait_until_done(&format!("/api/v1/backups/{id}"), "BACKING_UP", 60);
        // Copies and retention follow on the backup's thread.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, b) = srv.admin("GET", &format!("/api/v1/backups/{id}"), None);
            let copies = b["copies"].as_array().unwrap();
            if copies.len() == 2 && copies.iter().all(|c| c["status"] != "COPYING") {
                return b;
            }
            assert!(Instant::now() < deadline, "{b:#}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let first = run(&srv);
    assert!(
        first["copies"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "READY"),
        "{first:#}"
    );
    let restic = |repo: &Path, pw: &str, args: &[&str]| {
        let out = std::process::Command::new("restic")
            .arg("-r")
            .arg(repo)
            .args(args)
            .args(["--no-lock"])
            .env("RESTIC_PASSWORD", pw)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let id = first["id"].as_str().unwrap().to_owned();
    let has_restic = coffer_testkit::require_tool("restic");
    if has_restic {
        let listed = restic(&dir.join("second"), &passwords[0], &["snapshots", "--json"]);
        assert!(listed.contains(&id), "{listed}");
        restic(
            &dir.join("second"),
            &passwords[0],
            &["--no-lock", "check", "--read-data"],
        );
    }

    // `third` disappears: its copy fails, and the backup is kept although
    // keep_last = 1 would delete it.
    std::fs::remove_dir_all(dir.join("third")).unwrap();
    let second = run(&srv);
    let third_copy = second["copies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["target"] == "third")
        .unwrap()
        .clone();
    assert_eq!(third_copy["status"], "ERROR", "{second:#}");
    // The first backup goes (keep_last = 1) and its copy with it.
    let (code, _) = srv.admin("GET", &format!("/api/v1/backups/{id}"), None);
    assert_eq!(code, 404);
    if has_restic {
        let listed = restic(&dir.join("second"), &passwords[0], &["snapshots", "--json"]);
        assert!(!listed.contains(&id), "{listed}");
    }
    let third = run(&srv);
    assert_eq!(third["status"], "READY");
    let (_, v) = srv.admin("GET", "/api/v1/backups?label=offsite", None);
    let kept: Vec<&str> = v["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert!(
        kept.contains(&second["id"].as_str().unwrap()),
        "the only copy stays: {v:#}"
    );
    let (_, p) = srv.admin("GET", "/api/v1/retention/preview?schedule=offsite", None);
    let sole = p["policies"][0]["keep"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["id"] == second["id"])
        .unwrap()
        .clone();
    assert_eq!(sole["reasons"], json!(["sole_copy"]), "{p:#}");
}

/// A quarter left alone: daily backups kept by GFS, weekly drills, daily
/// checks rotating through the packs, weekly prunes — exactly what the
/// configuration says, visible in the API, and a repository plain restic
/// accepts at the end.
#[test]
fn a_quarter_left_alone_takes_keeps_verifies_and_prunes_what_its_configuration_says() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let files = small_dir(dir);
    let clock = FakeClock::new(dir, t("2027-01-01T00:00:00Z"));
    let config = write_config(
        dir,
        &format!(
            "[[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n\n\
             [[schedules]]\nname = \"nightly\"\ncron = \"0 3 * * *\"\n\
             retention = {{ keep_daily = 7, keep_weekly = 4, keep_monthly = 3 }}\n\n\
             [[schedules]]\nname = \"sunday-drill\"\ntask = \"drill\"\nlabel = \"nightly\"\ncron = \"0 5 * * 0\"\n\n\
             [[schedules]]\nname = \"verify\"\ntask = \"check\"\ncron = \"0 9 * * *\"\nread_all_every_days = 7\n\n\
             [[schedules]]\nname = \"sunday-prune\"\ntask = \"prune\"\ncron = \"0 12 * * 0\"\n\n\
             [alerts]\nbackup_max_age_secs = 172800\n",
            files.display()
        ),
    );
    let env = [("COFFER_FAKE_CLOCK_FILE", clock.path.as_path())];
    let srv = Server::start_env(&config, &env);
    let password = srv.repo_password.clone().unwrap();
    let mut at = t("2027-01-01T01:00:00Z");
    let end = t("2027-03-31T23:00:00Z");
    let mut day = 0u32;
    while at <= end {
        clock.set(at);
        settle_all(&srv, at);
        // A little new data each day, so packs and prunes have work.
        let h = at.to_zoned(jiff::tz::TimeZone::UTC).hour();
        if h == 1 {
            day += 1;
            std::fs::write(files.join(format!("day-{day}")), format!("day {day}\n")).unwrap();
        }
        at += SignedDuration::from_hours(1);
    }

    // Kept: the last 7 days, the newest of the last 4 ISO weeks and of the
    // last 3 months — 11 backups — and nothing else.
    let (_, v) = srv.admin("GET", "/api/v1/backups?label=nightly", None);
    let mut kept: Vec<String> = v["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            assert_eq!(b["status"], "READY", "{b:#}");
            b["due_at"].as_str().unwrap()[..10].to_owned()
        })
        .collect();
    kept.sort();
    assert_eq!(
        kept,
        [
            "2027-01-31",
            "2027-02-28",
            "2027-03-14",
            "2027-03-21",
            "2027-03-25",
            "2027-03-26",
            "2027-03-27",
            "2027-03-28",
            "2027-03-29",
            "2027-03-30",
            "2027-03-31"
        ],
        "{v:#}"
    );
    // Every Sunday's backup was drilled and stays verified where kept.
    let drills: Vec<String> = runs(&srv, "sunday-drill")
        .iter()
        .map(|r| {
            let id = r["backup_id"].as_str().unwrap_or("-");
            let (_, d) = srv.admin("GET", &format!("/api/v1/drills/{id}"), None);
            format!(
                "{} {} {} {} {}",
                r["due_at"], id, d["status"], d["backup_id"], d["error"]
            )
        })
        .collect();
    for b in v["backups"].as_array().unwrap() {
        let d = &b["due_at"].as_str().unwrap()[..10];
        let sunday = [
            "2027-01-31",
            "2027-02-28",
            "2027-03-14",
            "2027-03-21",
            "2027-03-28",
        ]
        .contains(&d);
        assert_eq!(b["verified_at"].is_string(), sunday, "{d}: {drills:#?}");
        if sunday {
            assert_eq!(b["last_drill"]["status"], "READY", "{b:#}");
        }
    }
    // 90 backups, 13 drills, 90 checks rotating 1/7 … 7/7, 13 prunes: all started, none missed.
    for (name, n) in [
        ("nightly", 90),
        ("sunday-drill", 13),
        ("verify", 90),
        ("sunday-prune", 13),
    ] {
        let r = runs(&srv, name);
        assert_eq!(r.len(), n, "{name}: {r:#?}");
        assert!(
            r.iter().all(|x| x["outcome"] == "STARTED"),
            "{name}: {r:#?}"
        );
    }
    let checks = runs(&srv, "verify");
    for (i, r) in checks.iter().enumerate() {
        let id = r["backup_id"].as_str().unwrap();
        let (_, c) = srv.admin("GET", &format!("/api/v1/checks/{id}"), None);
        assert_eq!(c["status"], "READY", "{c:#}");
        assert_eq!(c["read_data"], format!("{}/7", i % 7 + 1), "{c:#}");
    }
    for r in runs(&srv, "sunday-prune") {
        let (_, p) = srv.admin(
            "GET",
            &format!("/api/v1/prunes/{}", r["backup_id"].as_str().unwrap()),
            None,
        );
        assert_eq!(p["status"], "READY", "{p:#}");
    }
    let (_, list) = srv.admin("GET", "/api/v1/schedules", None);
    let next: Vec<(&str, &str)> = list["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["next_run"].as_str().unwrap()))
        .collect();
    assert_eq!(
        next,
        [
            ("nightly", "2027-04-01T03:00:00Z"),
            ("sunday-drill", "2027-04-04T05:00:00Z"),
            ("sunday-prune", "2027-04-04T12:00:00Z"),
            ("verify", "2027-04-01T09:00:00Z")
        ]
    );
    let metrics = String::from_utf8_lossy(&srv.curl("/metrics", None, &[]).body).into_owned();
    assert!(
        metrics.contains("coffer_retention_deleted_total 79"),
        "{metrics}"
    );
    if coffer_testkit::require_tool("restic") {
        let out = std::process::Command::new("restic")
            .arg("-r")
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
