//! Abuse: hostile uploads and a crowd of clients against a real server.
//!
//! * **Multipart fuzzing**: a real upload body (an export made for an age
//!   recipient, and its `config` part) with random edits, sent as is to
//!   both upload routes — every answer a 4xx or an accepted restore that
//!   then ends, never a 5xx, and the server serves on.
//! * **Load**: hundreds of concurrent API requests and logins while a
//!   backup runs — every request answered (200, or 429 for logins past the
//!   limit), the backup `READY`, and the server's peak memory under 1 GiB;
//!   latencies and memory are printed (docs/testing.md records a long run).
//!
//! `COFFER_FUZZ_CASES` scales the fuzzing (a tenth of it, each case being a
//! request); `COFFER_LOAD_CLIENTS` the load (default 200).

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::fixture::Fixture;
use common::{Server, small_dir, write_config_with};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;

const BOUNDARY: &str = "coffer-fuzz-boundary-7d1f";

fn multipart(export: &[u8], config: &str) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"config\"\r\n\r\n{config}\r\n\
             --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"snapshot\"; \
             filename=\"x.coffer\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    b.extend_from_slice(export);
    b.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    b
}

fn post_raw(srv: &Server, path: &str, body: &[u8]) -> u16 {
    let r = srv
        .agent
        .post(format!("{}{path}", srv.url))
        .header("Authorization", format!("Bearer {}", srv.admin))
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .send(body);
    match r {
        Ok(resp) => resp.status().as_u16(),
        // The server may close a connection on a malformed body.
        Err(_) => 0,
    }
}

#[test]
fn mutated_uploads_are_refused_and_the_server_serves_on() {
    let f = Fixture::new("");
    let backup = f.backup_of(&["files"]);
    let id = coffer_engine::AgeIdentity::generate();
    let e = f
        .srv
        .export(&backup, &json!({ "age_recipient": id.recipient() }));
    let dl = f.srv.curl(
        &format!("/api/v1/exports/{}/download", e["id"].as_str().unwrap()),
        None,
        &[],
    );
    assert!(dl.ok && dl.status == 200);
    let config = json!({ "identity": id.secret(), "components": ["files"],
        "options": { "mode": "overwrite" } })
    .to_string();
    let seed = multipart(&dl.body, &config);
    // The seed itself is accepted: the mutations start from a valid body.
    assert_eq!(post_raw(&f.srv, "/api/v1/restores", &seed), 202);

    let cases = (coffer_testkit::fuzz::cases() / 10).max(20);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let counts = Mutex::new(std::collections::BTreeMap::<u16, u32>::new());
    let started = Instant::now();
    runner
        .run(&coffer_testkit::fuzz::mutated(seed), |body| {
            for path in ["/api/v1/restores", "/api/v1/components/files/restore"] {
                let code = post_raw(&f.srv, path, &body);
                *counts.lock().unwrap().entry(code).or_default() += 1;
                prop_assert!(code < 500 || code == 503 || code == 507, "{path}: {code}");
            }
            Ok(())
        })
        .unwrap();
    eprintln!(
        "{} mutated uploads × 2 routes in {:.1} s: answers {:?}",
        cases,
        started.elapsed().as_secs_f64(),
        counts.lock().unwrap()
    );
    // Still serving, and accepted restores all ended.
    let (code, list) = f.srv.admin("GET", "/api/v1/restores", None);
    assert_eq!(code, 200);
    for r in list["restores"].as_array().unwrap() {
        let id = r["id"].as_str().unwrap();
        let done = f.srv.wait_restore(id);
        assert_ne!(done["status"], "RESTORING");
    }
}

/// The server's peak resident memory (VmHWM), in KiB.
fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[test]
fn a_crowd_of_clients_and_logins_during_a_backup_is_served_within_bounds() {
    let tmp = tempfile::tempdir().unwrap();
    let files = small_dir(tmp.path());
    for i in 0..24 {
        std::fs::write(
            files.join(format!("blob{i}.bin")),
            coffer_testkit::tree::random_bytes(i, 2 << 20),
        )
        .unwrap();
    }
    let config = write_config_with(
        tmp.path(),
        "",
        &format!(
            "[[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n",
            files.display()
        ),
    );
    let srv = Arc::new(Server::start(&config));
    let pid = srv.child.id();
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, "a long user password\n").unwrap();
    let (code, v) = srv.admin(
        "POST",
        "/api/v1/users",
        Some(&json!({ "name": "crowd", "scopes": ["backups:read"], "password": "a long user password" })),
    );
    assert_eq!(code, 201, "{v}");
    let baseline = peak_kib(pid);

    let (code, b) = srv.admin(
        "POST",
        "/api/v1/backups",
        Some(&json!({ "label": "load", "components": ["files"] })),
    );
    assert_eq!(code, 202, "{b}");
    let backup = b["id"].as_str().unwrap().to_owned();

    let clients: usize = std::env::var("COFFER_LOAD_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let codes = Arc::new(Mutex::new(std::collections::BTreeMap::<u16, u32>::new()));
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            let (srv, latencies, codes) =
                (Arc::clone(&srv), Arc::clone(&latencies), Arc::clone(&codes));
            std::thread::spawn(move || {
                for j in 0..5 {
                    let t = Instant::now();
                    let code = if (i + j) % 4 == 0 {
                        srv.call(
                            "POST",
                            "/api/v1/auth/login",
                            None,
                            Some(&json!({ "name": "crowd", "password": "a long user password" })),
                        )
                        .0
                    } else {
                        srv.admin("GET", "/api/v1/backups", None).0
                    };
                    latencies.lock().unwrap().push(t.elapsed());
                    *codes.lock().unwrap().entry(code).or_default() += 1;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let wall = started.elapsed();
    let done = srv.wait_until_done(&format!("/api/v1/backups/{backup}"), "BACKING_UP", 300);
    assert_eq!(done["status"], "READY", "{done:#}");

    let codes = codes.lock().unwrap().clone();
    assert!(
        codes.keys().all(|c| *c == 200 || *c == 429),
        "unexpected answers: {codes:?}"
    );
    let mut l = latencies.lock().unwrap().clone();
    l.sort();
    let peak = peak_kib(pid);
    eprintln!(
        "load: {} requests from {clients} clients in {:.1} s during a 48 MiB backup; answers {codes:?}; \
         latency p50 {:?} p99 {:?} max {:?}; server peak RSS {} MiB (before: {} MiB)",
        l.len(),
        wall.as_secs_f64(),
        percentile(&l, 0.5),
        percentile(&l, 0.99),
        l.last().copied().unwrap_or_default(),
        peak / 1024,
        baseline / 1024
    );
    // Bounded, not timed: at most `server.max_connections` (256) are
    // served at once, at well under 2 MiB each beside the backup (369–528
    // MiB measured at 200 clients, depending on what else runs); a server
    // that kept something per request would pass 1 GiB long before.
    assert!(peak < 1024 * 1024, "peak RSS {} MiB", peak / 1024);
}
