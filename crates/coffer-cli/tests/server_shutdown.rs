//! A graceful stop (SIGTERM): running backups are cancelled, and jobs that
//! cannot stop half-way (a restore) and outlast `server.shutdown_grace_secs`
//! end `ERROR` "cancelled: the server was stopped…" — not "interrupted by
//! restart", which is for crashes.

mod common;

use std::time::{Duration, Instant};

use common::{Server, write_config_with};
use serde_json::json;

#[test]
fn sigterm_ends_running_jobs_as_cancelled() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config_with(
        tmp.path(),
        "shutdown_grace_secs = 1\n",
        "[[components]]\nname = \"slow\"\nkind = \"command\"\n\
         backup = [\"sh\", \"-c\", \"echo data; sleep 30\"]\n\
         restore = [\"sh\", \"-c\", \"sleep 30; cat > /dev/null\"]\n\n\
         [[components]]\nname = \"quick\"\nkind = \"command\"\n\
         backup = [\"echo\", \"quick\"]\n\
         restore = [\"sh\", \"-c\", \"sleep 30; cat > /dev/null\"]\n",
    );
    let mut srv = Server::start(&config);
    let done = srv.backup(&json!({ "label": "quick", "components": ["quick"] }));
    assert_eq!(done["status"], "READY", "{done}");
    let ready = done["id"].as_str().unwrap().to_owned();

    let (code, r) = srv.admin(
        "POST",
        &format!("/api/v1/backups/{ready}/restore"),
        Some(&json!({ "components": ["quick"] })),
    );
    assert_eq!(code, 202, "{r}");
    let restore = r["id"].as_str().unwrap().to_owned();
    let (code, b) = srv.admin(
        "POST",
        "/api/v1/backups",
        Some(&json!({ "label": "slow", "components": ["slow"] })),
    );
    assert_eq!(code, 202, "{b}");
    let backup = b["id"].as_str().unwrap().to_owned();
    std::thread::sleep(Duration::from_millis(800));

    let pid = rustix::process::Pid::from_child(&srv.child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = srv.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the server did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");

    let admin = srv.admin.clone();
    drop(srv);
    let mut srv = Server::start(&config);
    srv.admin = admin;
    let (_, b) = srv.admin("GET", &format!("/api/v1/backups/{backup}"), None);
    assert_eq!(b["status"], "ERROR", "{b}");
    assert!(b["error"].as_str().unwrap().contains("cancelled"), "{b}");
    let (_, r) = srv.admin("GET", &format!("/api/v1/restores/{restore}"), None);
    assert_eq!(r["status"], "ERROR", "{r}");
    let why = r["error"].as_str().unwrap();
    assert!(
        why.starts_with("cancelled: the server was stopped") && why.contains("(1 s)"),
        "{r}"
    );
    // The audit log tells the same.
    let (_, log) = srv.admin("GET", "/api/v1/audit?limit=1000", None);
    assert!(
        log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "job backup"
                && e["subject"] == backup.as_str()
                && e["outcome"].as_str().unwrap().contains("cancelled")),
        "{log:#}"
    );
}
