//! Notifications end to end on a fake clock, to a local webhook receiver:
//! a schedule's backups failing is told once (delivered after the
//! receiver's first answer, a 500, by a retry), failing again is not told
//! again, and working again is told once; a component whose newest READY
//! backup is older than `alerts.backup_max_age_secs` (4 h) is told once, and once
//! more when a new backup arrives; every message carries a valid
//! HMAC-SHA256 signature and no secret; the test call returns the
//! transport's answer; the API's rules for destinations; a target that
//! cannot be reached and a staging area short of space, each told once
//! and their end once.

mod common;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use common::webhook::{Receiver, set_clock};
use common::*;
use serde_json::{Value, json};

const SECRET: &str = "webhook signing secret";

#[test]
fn failures_and_stale_backups_are_told_once_and_their_end_once() {
    let rx = Receiver::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let fail = dir.join("FAIL");
    let clock = dir.join("clock");
    std::fs::write(&clock, "2027-01-01T00:00:00Z").unwrap();
    let config = write_config(
        dir,
        &format!(
            "[[components]]\nname = \"job\"\nkind = \"command\"\n\
             backup = [\"sh\", \"-c\", \"test ! -e {f} && echo data\"]\n\
             restore = [\"sh\", \"-c\", \"cat > /dev/null\"]\n\n\
             [alerts]\nbackup_max_age_secs = 14400\nfree_space_min_mib = 0\n\n\
             [[notifications]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"{url}\"\nsecret = \"{SECRET}\"\n",
            f = fail.display(),
            url = rx.url
        ),
    );
    let srv = Server::start_env(&config, &[("COFFER_FAKE_CLOCK_FILE", clock.as_path())]);
    let (code, v) = srv.admin(
        "POST",
        "/api/v1/schedules",
        Some(&json!({ "name": "hourly", "label": "hourly", "every_secs": 3600, "start": "2027-01-01" })),
    );
    assert_eq!(code, 201, "{v}");
    set_clock(&srv, &clock, "2027-01-01T01:00:00Z");
    std::fs::write(&fail, b"").unwrap();
    set_clock(&srv, &clock, "2027-01-01T02:00:00Z");
    // Told once, delivered by the retry after the receiver's 500.
    let got = rx.exactly(2);
    assert_eq!(
        got[0].header("x-coffer-delivery"),
        got[1].header("x-coffer-delivery")
    );
    let m = got[1].json();
    assert_eq!(m["event"], "backup_failed", "{m:#}");
    assert_eq!(m["state"], "firing");
    assert!(
        m["summary"].as_str().unwrap().contains("schedule hourly"),
        "{m:#}"
    );
    assert_eq!(m["at"], "2027-01-01T02:00:00Z");
    set_clock(&srv, &clock, "2027-01-01T03:00:00Z");
    rx.exactly(2);
    std::fs::remove_file(&fail).unwrap();
    set_clock(&srv, &clock, "2027-01-01T04:00:00Z");
    let got = rx.exactly(3);
    let m = got[2].json();
    assert_eq!(
        (m["event"].as_str(), m["state"].as_str()),
        (Some("backup_failed"), Some("resolved")),
        "{m:#}"
    );

    // Paused: 4 h without a READY backup of `job` is told once.
    let (code, v) = srv.admin(
        "PUT",
        "/api/v1/schedules/hourly",
        Some(&json!({ "label": "hourly", "every_secs": 3600, "start": "2027-01-01", "enabled": false })),
    );
    assert_eq!(code, 200, "{v}");
    set_clock(&srv, &clock, "2027-01-01T08:01:00Z");
    let got = rx.exactly(4);
    let m = got[3].json();
    assert_eq!(
        (m["event"].as_str(), m["state"].as_str()),
        (Some("backup_stale"), Some("firing")),
        "{m:#}"
    );
    assert_eq!(m["details"]["component"], "job");
    set_clock(&srv, &clock, "2027-01-01T09:00:00Z");
    rx.exactly(4);
    let (code, v) = srv.admin("POST", "/api/v1/schedules/hourly/run", None);
    assert_eq!(code, 202, "{v}");
    srv.wait_until_done(
        &format!("/api/v1/backups/{}", v["id"].as_str().unwrap()),
        "BACKING_UP",
        60,
    );
    set_clock(&srv, &clock, "2027-01-01T09:02:00Z");
    let got = rx.exactly(5);
    let m = got[4].json();
    assert_eq!(
        (m["event"].as_str(), m["state"].as_str()),
        (Some("backup_stale"), Some("resolved")),
        "{m:#}"
    );

    // Every message is signed with the secret, which no message contains.
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    for r in &got {
        let sig = r.header("x-coffer-signature-256").expect("signed");
        let mac = hex::decode(sig.strip_prefix("sha256=").unwrap()).unwrap();
        ring::hmac::verify(&key, &r.body, &mac).expect("a valid signature");
        assert!(!String::from_utf8_lossy(&r.body).contains(SECRET));
        assert_eq!(r.header("content-type"), Some("application/json"));
    }

    // The test call answers with the transport's answer.
    let (code, v) = srv.admin("POST", "/api/v1/notifications/ops/test", None);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["delivered"], true, "{v:#}");
    assert_eq!(v["status"], 200);
    assert_eq!(rx.exactly(6)[5].json()["event"], "test");
    let (code, v) = srv.admin(
        "POST",
        "/api/v1/notifications",
        Some(&json!({ "name": "nobody", "kind": "webhook", "url": "http://127.0.0.1:1/x" })),
    );
    assert_eq!(code, 201, "{v}");
    let (_, v) = srv.admin("POST", "/api/v1/notifications/nobody/test", None);
    assert_eq!(v["delivered"], false, "{v:#}");
    assert_eq!(v["attempts"], 4, "{v:#}");
    assert!(
        v["error"].as_str().unwrap().contains("127.0.0.1:1"),
        "{v:#}"
    );
    let metrics = String::from_utf8_lossy(&srv.curl("/metrics", None, &[]).body).into_owned();
    assert!(
        metrics
            .contains("coffer_notifications_total{notification=\"ops\",outcome=\"delivered\"} 4"),
        "{metrics}"
    );

    // The rules: secrets as themselves, hosts allowed, declared read-only,
    // unlimited tokens only.
    for (body, code_wanted, field) in [
        (
            json!({ "name": "e", "kind": "webhook", "url": "http://127.0.0.1:1/x", "secret": { "env": "HOME" } }),
            403,
            "secret",
        ),
        (
            json!({ "name": "u", "kind": "webhook", "url": "ftp://127.0.0.1/x" }),
            422,
            "url",
        ),
        (
            json!({ "name": "m", "kind": "webhook", "url": "http://169.254.169.254/x" }),
            403,
            "url",
        ),
        (
            json!({ "name": "k", "kind": "pager", "url": "http://127.0.0.1:1/x" }),
            422,
            "pager",
        ),
    ] {
        let (code, v) = srv.admin("POST", "/api/v1/notifications", Some(&body));
        assert_eq!(code, code_wanted, "{body}: {v}");
        assert!(
            v["message"].as_str().unwrap().contains(field),
            "{body}: {v}"
        );
    }
    let (code, v) = srv.admin("DELETE", "/api/v1/notifications/ops", None);
    assert_eq!(code, 409, "{v}");
    let limited = srv.token(&["notifications:read"], Some(&["job"]), None);
    let (code, v) = srv.call("GET", "/api/v1/notifications", Some(&limited), None);
    assert_eq!(code, 403, "{v}");
    let (_, v) = srv.admin("GET", "/api/v1/notifications", None);
    let ops = v["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "ops")
        .unwrap();
    assert_eq!(ops["spec"]["secret"], json!({ "literal": "***" }), "{v:#}");
    assert_eq!(ops["declared"], true);
}

/// Bytes free on the file system holding `path`.
fn free_bytes(path: &Path) -> u64 {
    let st = rustix::fs::statvfs(path).unwrap();
    st.f_bavail * st.f_frsize
}

#[test]
fn an_unreachable_target_and_low_free_space_are_told_once_and_their_end_once() {
    let (Some(s3), Some(bucket)) = (
        coffer_testkit::s3::S3::from_env(),
        coffer_testkit::service_setting("COFFER_TEST_S3_BUCKET"),
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // The staging area's threshold sits 150 MiB below what is free now; a
    // 300 MiB file then takes it below.
    let free_mib = free_bytes(dir) >> 20;
    if free_mib < 1024 {
        eprintln!("skipped: {free_mib} MiB free is too little to move the threshold");
        return;
    }
    let rx = Receiver::start();
    let upstream = s3.endpoint.trim_start_matches("http://").parse().unwrap();
    let proxy = coffer_testkit::proxy::FaultProxy::start(upstream);
    let clock = dir.join("clock");
    std::fs::write(&clock, "2027-01-01T00:00:00Z").unwrap();
    let config = write_config(
        dir,
        &format!(
            "[[targets]]\nname = \"offsite\"\nkind = \"s3\"\nendpoint = \"http://{addr}\"\n\
             region = \"{region}\"\nbucket = \"{bucket}\"\nprefix = \"probe-{pid}\"\n\
             access_key = {{ env = \"COFFER_TEST_S3_ACCESS_KEY\" }}\n\
             secret_key = {{ env = \"COFFER_TEST_S3_SECRET_KEY\" }}\ndefault = true\n\n\
             [alerts]\nprobe_every_secs = 60\nfree_space_min_mib = {min}\n\n\
             [[notifications]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"{url}\"\nsecret = \"{SECRET}\"\n",
            addr = proxy.addr(),
            region = s3.region,
            pid = std::process::id(),
            min = free_mib - 150,
            url = rx.url
        ),
    );
    let srv = Server::start_env(&config, &[("COFFER_FAKE_CLOCK_FILE", clock.as_path())]);
    // Reachable, room enough: nothing to tell.
    set_clock(&srv, &clock, "2027-01-01T00:01:00Z");
    rx.exactly(0);

    // The target goes away: told once (after the receiver's first 500),
    // not again at the next probe, and its return once.
    proxy.go_down();
    set_clock(&srv, &clock, "2027-01-01T00:02:00Z");
    let got = rx.exactly(2);
    let m = got[1].json();
    assert_eq!(
        (m["event"].as_str(), m["state"].as_str()),
        (Some("target_unreachable"), Some("firing")),
        "{m:#}"
    );
    assert_eq!(m["details"]["target"], "offsite");
    assert!(m["summary"].as_str().unwrap().contains("offsite"), "{m:#}");
    set_clock(&srv, &clock, "2027-01-01T00:03:00Z");
    proxy.come_back();
    set_clock(&srv, &clock, "2027-01-01T00:04:00Z");
    let got = rx.exactly(3);
    let m = got[2].json();
    assert_eq!(
        (m["event"].as_str(), m["state"].as_str()),
        (Some("target_unreachable"), Some("resolved")),
        "{m:#}"
    );

    // The staging area's file system fills up: told once, and once freed.
    let filler = dir.join("filler");
    {
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..300 {
            f.write_all(&chunk).unwrap();
        }
        f.sync_all().unwrap();
    }
    set_clock(&srv, &clock, "2027-01-01T00:05:00Z");
    let got = rx.exactly(4);
    let m = got[3].json();
    assert_eq!(
        (m["event"].as_str(), m["state"].as_str()),
        (Some("free_space_low"), Some("firing")),
        "{m:#}"
    );
    assert_eq!(m["details"]["place"], "staging");
    set_clock(&srv, &clock, "2027-01-01T00:06:00Z");
    std::fs::remove_file(&filler).unwrap();
    set_clock(&srv, &clock, "2027-01-01T00:07:00Z");
    let got = rx.exactly(5);
    let m = got[4].json();
    assert_eq!(
        (m["event"].as_str(), m["state"].as_str()),
        (Some("free_space_low"), Some("resolved")),
        "{m:#}"
    );
    let metrics = String::from_utf8_lossy(&srv.curl("/metrics", None, &[]).body).into_owned();
    for m in [
        "coffer_target_up{target=\"offsite\"} 1",
        "coffer_repository_size_bytes{target=\"offsite\"}",
        "coffer_free_space_bytes{place=\"staging\"}",
    ] {
        assert!(metrics.contains(m), "{m}: {metrics}");
    }
}

/// The local SMTP sink of scripts/services.sh.
struct Sink {
    host: String,
    port: String,
    user: String,
    password: String,
    dir: std::path::PathBuf,
}

impl Sink {
    fn from_env() -> Option<Self> {
        use coffer_testkit::service_setting as var;
        Some(Self {
            host: var("COFFER_TEST_SMTP_HOST")?,
            port: var("COFFER_TEST_SMTP_PORT")?,
            user: var("COFFER_TEST_SMTP_USER")?,
            password: var("COFFER_TEST_SMTP_PASSWORD")?,
            dir: var("COFFER_TEST_SMTP_DIR")?.into(),
        })
    }

    /// The messages to `to` so far: (envelope, raw message).
    fn mails_to(&self, to: &str) -> Vec<(Value, String)> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.dir).unwrap().filter_map(Result::ok) {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json") {
                let env: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
                if env["to"].as_array().unwrap().iter().any(|t| t == to) {
                    let raw = std::fs::read_to_string(p.with_extension("eml")).unwrap_or_default();
                    out.push((env, raw));
                }
            }
        }
        out
    }
}

#[test]
fn email_is_delivered_through_smtp_and_a_wrong_password_answers_with_the_servers_words() {
    let Some(sink) = Sink::from_env() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let to = format!("ops-{}@example.net", std::process::id());
    let config = write_config(
        dir,
        &format!(
            "[[components]]\nname = \"job\"\nkind = \"command\"\nbackup = [\"false\"]\n\
             restore = [\"sh\", \"-c\", \"cat > /dev/null\"]\n\n\
             [[notifications]]\nname = \"mail\"\nkind = \"email\"\nsmtp_host = \"{h}\"\n\
             smtp_port = {p}\ntls = \"none\"\nuser = \"{u}\"\npassword = {{ env = \"COFFER_TEST_SMTP_PASSWORD\" }}\n\
             from = \"Coffer <coffer@example.net>\"\nto = [\"{to}\"]\n",
            h = sink.host,
            p = sink.port,
            u = sink.user,
        ),
    );
    let srv = Server::start(&config);
    // A failing backup by hand: its label's backups failing is told by email.
    let b = srv.backup(&json!({ "label": "nightly" }));
    assert_eq!(b["status"], "ERROR");
    let deadline = Instant::now() + Duration::from_secs(30);
    while sink.mails_to(&to).is_empty() {
        assert!(Instant::now() < deadline, "no mail to {to}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mails = sink.mails_to(&to);
    assert_eq!(mails.len(), 1);
    let (envelope, raw) = &mails[0];
    assert_eq!(envelope["from"], "coffer@example.net");
    assert!(
        raw.contains("Subject: [coffer] backup_failed firing"),
        "{raw}"
    );
    assert!(raw.contains(b["id"].as_str().unwrap()), "{raw}");
    assert!(!raw.contains(&sink.password), "a secret in the mail: {raw}");
    let (code, v) = srv.admin("POST", "/api/v1/notifications/mail/test", None);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["delivered"], true, "{v:#}");
    assert_eq!(v["status"], 250, "{v:#}");
    // The same server with a wrong password: the server's own answer, no retry.
    let (code, v) = srv.admin(
        "POST",
        "/api/v1/notifications",
        Some(
            &json!({ "name": "wrong", "kind": "email", "smtp_host": sink.host,
                      "smtp_port": sink.port.parse::<u16>().unwrap(), "tls": "none",
                      "user": sink.user, "password": "not the password",
                      "from": "coffer@example.net", "to": [to] }),
        ),
    );
    assert_eq!(code, 201, "{v}");
    let (_, v) = srv.admin("POST", "/api/v1/notifications/wrong/test", None);
    assert_eq!(v["delivered"], false, "{v:#}");
    assert_eq!(v["status"], 535, "{v:#}");
    assert_eq!(v["attempts"], 1, "{v:#}");
    assert!(v["error"].as_str().unwrap().contains("535"), "{v:#}");
    assert_eq!(sink.mails_to(&to).len(), 2);
    // Plain SMTP only to this machine.
    let (code, v) = srv.admin(
        "POST",
        "/api/v1/notifications",
        Some(
            &json!({ "name": "plain", "kind": "email", "smtp_host": "mail.example.net",
                      "tls": "none", "from": "coffer@example.net", "to": [to] }),
        ),
    );
    assert_eq!(code, 422, "{v}");
    assert!(v["message"].as_str().unwrap().contains("tls"), "{v}");
}
