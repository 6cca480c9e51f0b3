//! The rest of the notification events end to end, on a fake clock, to a
//! local webhook receiver — each told exactly once, and a condition's end
//! once: `backup_succeeded` (opted in) for every READY backup,
//! `schedule_skipped` (the previous run still going), `schedule_failed`
//! (no backup to drill), `schedule_missed` (the server down past the
//! catch-up window), `copy_failed` (the extra target gone), `drill_failed`
//! and `check_failed` with damaged packs and their end once the packs are
//! put back.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::schedule::{FakeClock, decided, t};
use common::webhook::Receiver;
use common::*;
use serde_json::{Value, json};

/// Moves the fake clock to `at` and waits until the scheduler decided up
/// to it (a run may still be going).
fn advance(srv: &Server, clock: &FakeClock, at: &str) {
    clock.set(t(at));
    decided(srv, t(at));
}

/// The `(event, state)` of messages `from..` once `n` arrived in all.
fn told(rx: &Receiver, n: usize, from: usize) -> Vec<(String, String)> {
    let mut got: Vec<(String, String)> = rx.exactly(n)[from..]
        .iter()
        .map(|r| {
            let m = r.json();
            (
                m["event"].as_str().unwrap().to_owned(),
                m["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    got
}

fn pair(event: &str, state: &str) -> (String, String) {
    (event.to_owned(), state.to_owned())
}

/// The newest run of schedule `name` once it has one with `outcome`.
fn run_with(srv: &Server, name: &str, outcome: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, s) = srv.admin("GET", &format!("/api/v1/schedules/{name}"), None);
        if let Some(r) = s["runs"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["outcome"] == outcome))
        {
            return r.clone();
        }
        assert!(Instant::now() < deadline, "{s:#}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn schedule(srv: &Server, body: Value) {
    let (code, v) = srv.admin("POST", "/api/v1/schedules", Some(&body));
    assert_eq!(code, 201, "{v}");
}

fn unschedule(srv: &Server, name: &str) {
    let (code, v) = srv.admin("DELETE", &format!("/api/v1/schedules/{name}"), None);
    assert_eq!(code, 204, "{v}");
}

fn job(srv: &Server, path: &str, body: Option<Value>, running: &str) -> Value {
    let (code, v) = srv.admin("POST", path, body.as_ref());
    assert_eq!(code, 202, "{v}");
    let id = v["id"].as_str().unwrap();
    let kind = if id.starts_with("drill-") {
        "drills"
    } else {
        "checks"
    };
    srv.wait_until_done(&format!("/api/v1/{kind}/{id}"), running, 120)
}

#[test]
fn every_other_event_is_told_once_and_a_condition_s_end_once() {
    let rx = Receiver::start_ok();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let files = dir.join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(
        files.join("big"),
        coffer_testkit::tree::random_bytes(8, 3 << 20),
    )
    .unwrap();
    let gate = dir.join("GATE");
    let clock = FakeClock::new(dir, t("2027-01-01T00:00:00Z"));
    let config = write_config(
        dir,
        &format!(
            "[[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{files}\"\n\n\
             [[components]]\nname = \"slow\"\nkind = \"command\"\n\
             backup = [\"sh\", \"-c\", \"while [ ! -e {gate} ]; do sleep 0.05; done; echo slow\"]\n\
             restore = [\"sh\", \"-c\", \"cat > /dev/null\"]\n\n\
             [alerts]\nfree_space_min_mib = 0\n\n\
             [[notifications]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"{url}\"\n\
             events = [\"backup_succeeded\", \"schedule_skipped\", \"schedule_failed\", \
             \"schedule_missed\", \"copy_failed\", \"drill_failed\", \"check_failed\"]\n",
            files = files.display(),
            gate = gate.display(),
            url = rx.url
        ),
    );
    let env = [("COFFER_FAKE_CLOCK_FILE", clock.path.as_path())];
    let mut srv = Server::start_env(&config, &env);

    // A READY backup, opted in: told.
    let b = srv.backup(&json!({ "label": "manual", "components": ["files"] }));
    assert_eq!(b["status"], "READY", "{b:#}");
    let backup = b["id"].as_str().unwrap().to_owned();
    assert_eq!(told(&rx, 1, 0), [pair("backup_succeeded", "occurred")]);

    // A run still going when the next is due: that due time is skipped.
    schedule(
        &srv,
        json!({ "name": "slowly", "every_secs": 3600, "start": "2027-01-01",
                "components": ["slow"] }),
    );
    advance(&srv, &clock, "2027-01-01T01:00:00Z");
    run_with(&srv, "slowly", "STARTED");
    advance(&srv, &clock, "2027-01-01T02:00:00Z");
    run_with(&srv, "slowly", "SKIPPED");
    unschedule(&srv, "slowly");
    std::fs::write(&gate, b"").unwrap();
    assert_eq!(
        told(&rx, 3, 1),
        [
            pair("backup_succeeded", "occurred"),
            pair("schedule_skipped", "occurred")
        ]
    );

    // A drill schedule with nothing to drill: the due run fails to start.
    schedule(
        &srv,
        json!({ "name": "drill-none", "task": "drill", "label": "none",
                "every_secs": 3600, "start": "2027-01-01" }),
    );
    advance(&srv, &clock, "2027-01-01T03:00:00Z");
    run_with(&srv, "drill-none", "FAILED");
    unschedule(&srv, "drill-none");
    assert_eq!(told(&rx, 4, 3), [pair("schedule_failed", "occurred")]);

    // Down for ten hours: the due times older than the catch-up window are
    // told missed once (one range), and one late run catches up.
    schedule(
        &srv,
        json!({ "name": "hourly", "every_secs": 3600, "start": "2027-01-01",
                "components": ["files"] }),
    );
    advance(&srv, &clock, "2027-01-01T04:00:00Z");
    run_with(&srv, "hourly", "STARTED");
    assert_eq!(told(&rx, 5, 4), [pair("backup_succeeded", "occurred")]);
    let admin = srv.admin.clone();
    drop(srv);
    clock.set(t("2027-01-01T14:30:00Z"));
    srv = Server::start_env(&config, &env);
    srv.admin = admin;
    run_with(&srv, "hourly", "MISSED");
    unschedule(&srv, "hourly");
    assert_eq!(
        told(&rx, 7, 5),
        [
            pair("backup_succeeded", "occurred"),
            pair("schedule_missed", "occurred")
        ]
    );

    // The extra target's directory is gone: the copy fails, once.
    let body = json!({ "name": "second", "spec": { "kind": "local", "path": dir.join("second") } });
    let (code, v) = srv.admin("POST", "/api/v1/targets", Some(&body));
    assert_eq!(code, 201, "{v}");
    std::fs::remove_dir_all(dir.join("second")).unwrap();
    schedule(
        &srv,
        json!({ "name": "copied", "every_secs": 3600, "start": "2027-01-01",
                "components": ["files"], "copy_to": ["second"] }),
    );
    advance(&srv, &clock, "2027-01-01T15:00:00Z");
    let run = run_with(&srv, "copied", "STARTED");
    // Its copy is the schedule's: wait for it before the schedule goes.
    let copied = run["backup_id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, b) = srv.admin("GET", &format!("/api/v1/backups/{copied}"), None);
        if b["copies"][0]["status"] == "ERROR" {
            break;
        }
        assert!(Instant::now() < deadline, "{b:#}");
        std::thread::sleep(Duration::from_millis(20));
    }
    unschedule(&srv, "copied");
    assert_eq!(
        told(&rx, 9, 7),
        [
            pair("backup_succeeded", "occurred"),
            pair("copy_failed", "occurred")
        ]
    );

    // Damaged packs: the drill and the check fail, told once each (not
    // again at the next failure), and their end once the packs are back.
    let data = dir.join("data");
    let originals: Vec<(PathBuf, Vec<u8>)> = packs(&data)
        .into_iter()
        .map(|p| {
            let bytes = damage_pack(&p);
            (p, bytes)
        })
        .collect();
    assert!(!originals.is_empty());
    let drills = format!("/api/v1/backups/{backup}/drills");
    let check = "/api/v1/targets/local/check";
    for _ in 0..2 {
        assert_eq!(job(&srv, &drills, None, "DRILLING")["status"], "ERROR");
        let c = job(&srv, check, Some(json!({ "read_data": "all" })), "CHECKING");
        assert_eq!(c["status"], "ERROR", "{c:#}");
    }
    assert_eq!(
        told(&rx, 11, 9),
        [
            pair("check_failed", "firing"),
            pair("drill_failed", "firing")
        ]
    );
    for (path, bytes) in &originals {
        std::fs::write(path, bytes).unwrap();
    }
    assert_eq!(job(&srv, &drills, None, "DRILLING")["status"], "READY");
    let c = job(&srv, check, Some(json!({ "read_data": "all" })), "CHECKING");
    assert_eq!(c["status"], "READY", "{c:#}");
    assert_eq!(
        told(&rx, 13, 11),
        [
            pair("check_failed", "resolved"),
            pair("drill_failed", "resolved")
        ]
    );
}
