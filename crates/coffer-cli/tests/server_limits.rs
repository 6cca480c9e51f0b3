//! The limits an exposed server needs, end to end: target policy over the
//! API, login limits, header timeouts and the connection limit, and the
//! privacy of the data directory and catalog.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::fixture::Fixture;
use common::*;
use serde_json::{Value, json};

/// Targets over the API: literal secrets only, no key file of the server's,
/// hosts within `server.target_allow` (metadata addresses never), no
/// repository in the server's own directories, and a new default only with
/// a confirmation.
#[test]
fn targets_over_the_api_follow_the_target_policy() {
    let f = Fixture::new("target_allow = [\"127.0.0.0/8\", \"localhost\"]");
    let srv = &f.srv;
    let target = |spec: Value| {
        srv.admin(
            "POST",
            "/api/v1/targets",
            Some(&json!({ "name": "t", "spec": spec })),
        )
    };
    let s3 = |endpoint: &str, secret: Value| json!({ "kind": "s3", "endpoint": endpoint, "bucket": "bkt", "access_key": "k", "secret_key": secret });
    for (spec, status, needle) in [
        (
            s3(
                "http://127.0.0.1:9",
                json!({ "file": f.tmp.path().join("data/server.key") }),
            ),
            403,
            "spec.secret_key",
        ),
        (
            s3("http://127.0.0.1:9", json!({ "env": "HOME" })),
            403,
            "literal",
        ),
        (s3("http://169.254.169.254", json!("s")), 403, "metadata"),
        (s3("http://10.1.2.3", json!("s")), 403, "target_allow"),
        (
            json!({ "kind": "sftp", "host": "127.0.0.1", "user": "u", "host_key": "SHA256:x",
                    "directory": "/d", "private_key": f.tmp.path().join("data/server.key") }),
            403,
            "spec.private_key",
        ),
        (
            json!({ "kind": "local", "path": f.tmp.path().join("data/elsewhere") }),
            403,
            "overlaps",
        ),
    ] {
        let (code, v) = target(spec.clone());
        assert_eq!(code, status, "{spec}: {v}");
        assert!(
            v["message"].as_str().unwrap().contains(needle),
            "{spec}: {v}"
        );
    }
    let (code, v) = srv.admin(
        "POST",
        "/api/v1/targets",
        Some(&json!({ "name": "second", "spec": { "kind": "local", "path": f.tmp.path().join("second") } })),
    );
    assert_eq!(code, 201, "{v}");
    let (code, v) = srv.admin(
        "PUT",
        "/api/v1/targets/second",
        Some(&json!({ "default": true })),
    );
    assert_eq!(code, 422, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("confirm_default"),
        "{v}"
    );
    let (_, v) = srv.admin("GET", "/api/v1/targets/local", None);
    assert_eq!(v["default"], true, "unchanged: {v}");
    let (code, v) = srv.admin(
        "PUT",
        "/api/v1/targets/second",
        Some(&json!({ "default": true, "confirm_default": true })),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["default"], true);
}

/// Login is rate limited for the whole server as well as per name, and the
/// attempt is counted before the password is checked.
#[test]
fn logins_beyond_the_limits_get_429() {
    let f = Fixture::new("login_rate_per_minute = 6\nlogin_concurrency = 1");
    let srv = &f.srv;
    let (code, v) = srv.admin(
        "POST",
        "/api/v1/users",
        Some(&json!({ "name": "ada", "password": "long enough password", "scopes": ["backups:read"] })),
    );
    assert_eq!(code, 201, "{v}");
    let login = |name: &str, pw: &str| {
        srv.call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(&json!({ "name": name, "password": pw })),
        )
    };
    // Several at once: one verification runs at a time, the rest wait their turn.
    let answers: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|i| s.spawn(move || login(&format!("nobody{i}"), "wrong password").0))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(answers, [401, 401, 401, 401], "queued, then answered");
    for _ in 0..2 {
        let (code, v) = login("ada", "long enough password");
        assert_eq!(code, 200, "{v}");
    }
    let (code, v) = login("ada", "long enough password");
    assert_eq!(code, 429, "the seventh attempt in a minute: {v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("login_rate_per_minute"),
        "{v}"
    );
}

/// A client that connects and sends nothing is dropped after
/// `server.header_read_timeout_secs`; past `server.max_connections`,
/// clients wait until a connection is free.
#[test]
fn idle_clients_are_dropped_and_connections_are_bounded() {
    let f = Fixture::new("header_read_timeout_secs = 2\nmax_connections = 2");
    let srv = &f.srv;
    let addr = srv.url.trim_start_matches("http://").to_owned();
    let started = Instant::now();
    let mut idle = TcpStream::connect(&addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 512];
    let n = idle.read(&mut buf).unwrap_or(0);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(8),
        "closed after {waited:?} ({n} bytes)"
    );
    // Two idle connections hold both slots: a third client waits...
    let a = TcpStream::connect(&addr).unwrap();
    let b = TcpStream::connect(&addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let mut c = TcpStream::connect(&addr).unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    c.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut answer = String::new();
    let _ = c.read_to_string(&mut answer);
    // ... until the idle ones are dropped by the header timeout.
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "served only once a slot was free: {:?}",
        started.elapsed()
    );
    drop((a, b));
}

/// A body that stops arriving is answered 408 after
/// `server.idle_timeout_secs`, on routes that read JSON and on those that
/// read the body whole (optional bodies, updates named by their path).
#[test]
fn a_stalled_body_is_answered_408() {
    let f = Fixture::new("idle_timeout_secs = 2");
    let srv = &f.srv;
    let addr = srv.url.trim_start_matches("http://").to_owned();
    for path in [
        "/api/v1/targets/local/prune",
        "/api/v1/targets/local/check",
        "/api/v1/schedules",
        "/api/v1/schedules/nightly",
        "/api/v1/notifications/ops",
        "/api/v1/backups",
        "/_backup/api/v1/backup",
    ] {
        let method = if path.ends_with("nightly") || path.ends_with("ops") {
            "PUT"
        } else {
            "POST"
        };
        let mut c = TcpStream::connect(&addr).unwrap();
        write!(
            c,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: 64\r\nConnection: close\r\n\r\n{{",
            srv.admin
        )
        .unwrap();
        let started = Instant::now();
        c.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut answer = String::new();
        let _ = c.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
        assert!(answer.contains("idle_timeout_secs"), "{path}: {answer}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{path}: {:?}",
            started.elapsed()
        );
    }
}

/// A client that starts a component's native download and stops reading
/// does not hold the component busy: after `server.idle_timeout_secs`
/// without a read, the download is dropped and backups of it run again.
#[test]
fn a_download_nobody_reads_lets_go_of_its_component() {
    let f = Fixture::new("idle_timeout_secs = 2");
    let srv = &f.srv;
    // More than the channel and the socket buffers hold.
    std::fs::write(
        f.tmp.path().join("files/big"),
        coffer_testkit::tree::random_bytes(4, 24 << 20),
    )
    .unwrap();
    let addr = srv.url.trim_start_matches("http://").to_owned();
    let mut stalled = TcpStream::connect(&addr).unwrap();
    write!(
        stalled,
        "GET /api/v1/components/files/backup HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        srv.admin
    )
    .unwrap();
    // The download holds the component from its first byte: wait for that,
    // or a backup posted at once may win the race (seen under a loaded suite).
    let mut status = [0u8; 12];
    stalled.read_exact(&mut status).unwrap();
    assert_eq!(&status, b"HTTP/1.1 200");
    // Busy while the download runs...
    let body = json!({ "label": "after", "components": ["files"] });
    let started = Instant::now();
    let mut was_busy = false;
    let id = loop {
        let (code, v) = srv.admin("POST", "/api/v1/backups", Some(&body));
        match code {
            202 => break v["id"].as_str().unwrap().to_owned(),
            409 => was_busy = true,
            _ => panic!("{code} {v}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "still busy after 30 s: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(was_busy, "the download never held the component");
    // ... and free once the client read nothing for 2 s.
    let b = srv.wait_until_done(&format!("/api/v1/backups/{id}"), "BACKING_UP", 120);
    assert_eq!(b["status"], "READY", "{b:#}");
    drop(stalled);
}

/// The catalog is readable by its owner only, and a data directory open
/// to others is refused at start with the fix.
#[test]
fn the_data_directory_and_catalog_are_private() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "");
    let srv = Server::start(&config);
    let (code, _) = srv.call("GET", "/healthz", None, None);
    assert_eq!(code, 200);
    drop(srv);
    let data = tmp.path().join("data");
    for f in [
        "catalog.sqlite",
        "catalog.sqlite-wal",
        "catalog.sqlite-shm",
        "server.key",
    ] {
        let p = data.join(f);
        if let Ok(m) = std::fs::metadata(&p) {
            assert_eq!(m.permissions().mode() & 0o777, 0o600, "{}", p.display());
        }
    }
    assert!(data.join("catalog.sqlite").exists());
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = std::process::Command::new(coffer_bin())
        .args(["server", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("chmod 700"), "{err}");
}
