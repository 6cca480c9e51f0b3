//! A staging area that fills up mid-operation (a real tmpfs, when the tests
//! run as root): past the preflight, a `pre_backup` hook writes a ballast
//! file, so the SQLite copy runs out of space while it is made; an upload
//! sent without a length (chunked) runs out while it is spooled. Each ends
//! cleanly — the backup `ERROR` naming the full disk with nothing recorded,
//! the upload refused with nothing changed and its spool removed — and
//! works once there is room.

mod common;

use std::path::Path;
use std::process::Command;

use coffer_testkit::tmpfs::Tmpfs;
use common::{Server, export_to_file, small_dir, write_config_with};
use serde_json::json;

/// A SQLite database of about 3 MiB of incompressible rows.
fn big_sqlite(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL);")
        .unwrap();
    for i in 0..300u64 {
        conn.execute(
            "INSERT INTO t (v) VALUES (?1)",
            [coffer_testkit::tree::random_bytes(i, 10_000)],
        )
        .unwrap();
    }
}

fn leftovers(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.file_name().is_some_and(|n| n != "ballast") {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

#[test]
fn a_staging_area_filling_up_fails_backups_and_uploads_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let staging = tmp.path().join("staging");
    let Some(_fs) = Tmpfs::mount(&staging, 16) else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let db = tmp.path().join("app.db");
    big_sqlite(&db);
    let files = small_dir(tmp.path());
    let flag = tmp.path().join("fill");
    let ballast = staging.join("ballast");
    let config = write_config_with(
        tmp.path(),
        &format!(
            "staging_dir = \"{}\"\npreflight_reserve_mib = 0\n",
            staging.display()
        ),
        &format!(
            "[hooks]\npre_backup = [\"if [ -e {flag} ]; then dd if=/dev/zero of={ballast} bs=1M \
             count=14 2>/dev/null || true; fi\"]\n\n\
             [[components]]\nname = \"db\"\nkind = \"sqlite\"\npath = \"{}\"\n\n\
             [[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n",
            db.display(),
            files.display(),
            flag = flag.display(),
            ballast = ballast.display(),
        ),
    );
    let srv = Server::start(&config);

    // The backup: past the preflight, the hook leaves 2 MiB of 16 for a 3 MiB copy.
    std::fs::write(&flag, b"").unwrap();
    let b = srv.backup(&json!({ "label": "full", "components": ["db"] }));
    assert_eq!(b["status"], "ERROR", "{b:#}");
    let why = b["components"][0]["error"].as_str().unwrap_or_default();
    assert!(
        why.to_lowercase().contains("space") || why.contains("full"),
        "{b:#}"
    );
    assert!(b["components"][0]["snapshot_id"].is_null(), "{b:#}");
    assert_eq!(
        leftovers(&staging),
        Vec::<String>::new(),
        "the copy was removed"
    );
    std::fs::remove_file(&flag).unwrap();
    std::fs::remove_file(&ballast).unwrap();
    let b = srv.backup(&json!({ "label": "room", "components": ["db"] }));
    assert_eq!(b["status"], "READY", "{b:#}");

    // The upload: 1 MiB free for a ~5 MiB export sent without a length.
    let export = tmp.path().join("files.coffer");
    std::fs::write(
        files.join("big.bin"),
        coffer_testkit::tree::random_bytes(9, 3 << 20),
    )
    .unwrap();
    export_to_file(&srv, "an export password here", &export);
    std::fs::remove_file(files.join("big.bin")).unwrap();
    let run = Command::new("dd")
        .args(["if=/dev/zero", "bs=1M", "count=15"])
        .arg(format!("of={}", ballast.display()))
        .status()
        .unwrap();
    assert!(run.success());
    let config = json!({ "password": "an export password here", "components": ["files"],
        "options": { "mode": "overwrite" } });
    let sent = srv.curl(
        "/api/v1/restores",
        None,
        &[
            "-H".into(),
            "Transfer-Encoding: chunked".into(),
            "-F".into(),
            format!("snapshot=@{}", export.display()),
            "--form-string".into(),
            format!("config={config}"),
        ],
    );
    // 507 naming the full disk — or, when the answer raced the body still
    // being sent, a connection the server closed (curl then reports no
    // final status): either way nothing was kept.
    let said = String::from_utf8_lossy(&sent.body).into_owned();
    assert!(
        (sent.status == 507 && said.contains("filled up")) || sent.status == 100 || !sent.ok,
        "{} {said}",
        sent.status
    );
    // (The server may still be cleaning up when a reset connection ends.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !leftovers(&staging).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        leftovers(&staging),
        Vec::<String>::new(),
        "the spool was removed"
    );
    assert!(!files.join("big.bin").exists(), "nothing restored");
    std::fs::remove_file(&ballast).unwrap();
    let (code, v) = srv.upload_export("/api/v1/restores", &export, &config);
    assert_eq!(code, 202, "{v}");
    let r = srv.wait_restore(v["id"].as_str().unwrap());
    assert_eq!(r["status"], "READY", "{r:#}");
    assert!(files.join("big.bin").exists());
}
