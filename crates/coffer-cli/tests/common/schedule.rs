//! The fake clock schedule tests walk, and waiting for the scheduler.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use super::Server;

/// A fake clock the server reads (`COFFER_FAKE_CLOCK_FILE`).
pub struct FakeClock {
    pub path: PathBuf,
}

impl FakeClock {
    pub fn new(dir: &Path, at: Timestamp) -> Self {
        let c = Self {
            path: dir.join("clock"),
        };
        c.set(at);
        c
    }

    /// Moves the clock (atomically: the server never reads half a time).
    pub fn set(&self, at: Timestamp) {
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, at.to_string()).unwrap();
        std::fs::rename(&tmp, &self.path).unwrap();
    }
}

/// Waits until the scheduler has decided everything up to `at` and no
/// scheduled backup is running; returns the schedule list.
pub fn settle(srv: &Server, at: Timestamp) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    let want = at.to_string();
    loop {
        let (code, v) = srv.admin("GET", "/api/v1/schedules", None);
        assert_eq!(code, 200, "{v}");
        let caught_up = v["scheduler_clock"].as_str() == Some(want.as_str());
        let running = v["schedules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["last_run"]["backup_status"] == "BACKING_UP");
        if caught_up && !running {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "scheduler stuck before {want}: {v:#}"
        );
        std::thread::sleep(Duration::from_millis(if caught_up { 50 } else { 5 }));
    }
}

pub fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

pub fn runs(srv: &Server, name: &str) -> Vec<Value> {
    let (code, v) = srv.admin("GET", &format!("/api/v1/schedules/{name}"), None);
    assert_eq!(code, 200, "{v}");
    let mut r = v["runs"].as_array().unwrap().clone();
    r.reverse();
    r
}

/// Walks the clock from `from` to `to` (inclusive) in `step`s.
pub fn walk(srv: &Server, clock: &FakeClock, from: Timestamp, to: Timestamp, step: SignedDuration) {
    let mut at = from;
    while at <= to {
        clock.set(at);
        settle(srv, at);
        at += step;
    }
}

/// Waits until the scheduler has decided everything up to `at` (runs may
/// still be going).
pub fn decided(srv: &Server, at: Timestamp) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let want = at.to_string();
    loop {
        let (_, v) = srv.admin("GET", "/api/v1/schedules", None);
        if v["scheduler_clock"].as_str() == Some(want.as_str()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "scheduler stuck before {want}: {v:#}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn wait_backup(srv: &Server, id: &str) -> Value {
    srv.wait_until_done(&format!("/api/v1/backups/{id}"), "BACKING_UP", 60)
}

/// Waits until the scheduler has decided everything up to `at` and no
/// scheduled job (backup, drill, check, prune) is running.
pub fn settle_all(srv: &Server, at: Timestamp) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let want = at.to_string();
    loop {
        let (code, v) = srv.admin("GET", "/api/v1/schedules", None);
        assert_eq!(code, 200, "{v}");
        let caught_up = v["scheduler_clock"].as_str() == Some(want.as_str());
        let running = v["schedules"].as_array().unwrap().iter().any(|s| {
            matches!(
                s["last_run"]["backup_status"].as_str(),
                Some("BACKING_UP" | "DRILLING" | "CHECKING" | "PRUNING")
            )
        });
        if caught_up && !running {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "scheduler stuck before {want}: {v:#}"
        );
        std::thread::sleep(Duration::from_millis(if caught_up { 20 } else { 3 }));
    }
}
