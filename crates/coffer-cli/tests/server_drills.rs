//! Restore drills end to end: a backup of PostgreSQL, a directory and a
//! SQLite file restored into scratch places beside the live ones, proved
//! (the component's `verify_query`, the snapshot's file count and bytes,
//! `PRAGMA integrity_check`) and removed, the live data untouched, the
//! backup marked verified, durations in the metrics; a drill schedule on a
//! fake clock; and a repository with a damaged pack failing its drill with
//! the backup and component named.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

fn drill(srv: &Server, backup: &str) -> Value {
    let (code, v) = srv.admin("POST", &format!("/api/v1/backups/{backup}/drills"), None);
    assert_eq!(code, 202, "{v}");
    assert_eq!(v["status"], "DRILLING");
    let id = v["id"].as_str().unwrap();
    srv.wait_until_done(&format!("/api/v1/drills/{id}"), "DRILLING", 120)
}

fn component<'a>(d: &'a Value, name: &str) -> &'a Value {
    d["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["component"] == name)
        .unwrap_or_else(|| panic!("{name} in {d:#}"))
}

/// Nothing under the staging area's drills directory.
fn no_scratch_left(data: &Path) {
    let drills = data.join("staging/drills");
    let left: Vec<_> = std::fs::read_dir(&drills)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "scratch left behind: {left:?}");
}

#[test]
fn a_drill_proves_postgres_files_and_sqlite_beside_the_live_ones() {
    let Some(pg) = Pg::from_env() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let files = dir.join("files");
    coffer_testkit::tree::build_rich_tree(&files);
    let db = dir.join("app.sqlite");
    sqlite_db(&db, 300);
    let src = format!("coffer_drill_src_{}", std::process::id());
    pg.psql("postgres", &format!("DROP DATABASE IF EXISTS {src}"));
    pg.psql("postgres", &format!("CREATE DATABASE {src}"));
    pg.psql(
        &src,
        "CREATE TABLE accounts (id int PRIMARY KEY, name text); \
         INSERT INTO accounts SELECT i, 'name ' || i FROM generate_series(1, 1000) i;",
    );
    let clock_file = dir.join("clock");
    std::fs::write(&clock_file, "2027-01-01T00:00:00Z").unwrap();
    let config = write_config(
        dir,
        &format!(
            r#"[[components]]
name = "files"
kind = "files"
path = "{files}"

[[components]]
name = "appdb"
kind = "sqlite"
path = "{db}"

[[components]]
name = "pg"
kind = "postgres"
host = "{host}"
port = {port}
user = "{user}"
password = {{ env = "COFFER_TEST_PG_PASSWORD" }}
database = "{src}"
verify_query = "SELECT count(*) FROM accounts"
"#,
            files = files.display(),
            db = db.display(),
            host = pg.host,
            port = pg.port,
            user = pg.user,
        ),
    );
    let srv = Server::start_env(&config, &[("COFFER_FAKE_CLOCK_FILE", clock_file.as_path())]);
    let b = srv.backup(&json!({ "label": "drilled" }));
    assert_eq!(b["status"], "READY", "{b:#}");
    assert_eq!(b["verified_at"], Value::Null);
    let id = b["id"].as_str().unwrap();

    let d = drill(&srv, id);
    assert_eq!(d["status"], "READY", "{d:#}");
    assert!(d["seconds"].as_f64().unwrap() > 0.0);
    let pgc = component(&d, "pg");
    assert_eq!(pgc["status"], "READY", "{d:#}");
    assert!(pgc["proof"].as_str().unwrap().contains("\"1000\""), "{d:#}");
    let files_c = component(&d, "files");
    assert_eq!(files_c["status"], "READY", "{d:#}");
    assert!(
        files_c["proof"]
            .as_str()
            .unwrap()
            .contains("as the snapshot recorded"),
        "{d:#}"
    );
    let sq = component(&d, "appdb");
    assert!(
        sq["proof"].as_str().unwrap().contains("integrity_check ok"),
        "{d:#}"
    );

    // Beside, never over: the live data is as it was, nothing scratch is left.
    assert_eq!(
        pg.psql(&src, "SELECT count(*) FROM accounts").trim(),
        "1000"
    );
    assert_eq!(sqlite_rows(&db).len(), 300);
    let left = pg.psql(
        "postgres",
        "SELECT count(*) FROM pg_database WHERE datname LIKE 'coffer\\_drill\\_%' AND datname NOT LIKE 'coffer_drill_src%'",
    );
    assert_eq!(left.trim(), "0", "scratch databases left");
    no_scratch_left(&dir.join("data"));

    let (_, v) = srv.admin("GET", &format!("/api/v1/backups/{id}"), None);
    assert_eq!(v["verified_at"], "2027-01-01T00:00:00Z", "{v:#}");
    assert_eq!(v["last_drill"]["id"], d["id"]);
    assert_eq!(v["last_drill"]["status"], "READY");
    let metrics = String::from_utf8_lossy(&srv.curl("/metrics", None, &[]).body).into_owned();
    for m in [
        "coffer_restore_drill_duration_seconds{component=\"pg\"}",
        "coffer_last_verified_timestamp_seconds{component=\"files\"} 1798761600",
    ] {
        assert!(metrics.contains(m), "{m}: {metrics}");
    }

    // A drill schedule drills the newest READY backup of its label.
    let (code, v) = srv.admin(
        "POST",
        "/api/v1/schedules",
        Some(
            &json!({ "name": "weekly-drill", "task": "drill", "label": "drilled",
                      "every_secs": 3600, "start": "2027-01-01" }),
        ),
    );
    assert_eq!(code, 201, "{v}");
    std::fs::write(&clock_file, "2027-01-01T01:00:00Z").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let run = loop {
        let (_, s) = srv.admin("GET", "/api/v1/schedules/weekly-drill", None);
        if let Some(r) = s["runs"].as_array().and_then(|r| r.first()).cloned() {
            break r;
        }
        assert!(Instant::now() < deadline, "{s:#}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(run["outcome"], "STARTED", "{run:#}");
    let drill_id = run["backup_id"].as_str().unwrap();
    assert!(drill_id.starts_with("drill-"), "{run:#}");
    let d = srv.wait_until_done(&format!("/api/v1/drills/{drill_id}"), "DRILLING", 120);
    assert_eq!(d["status"], "READY", "{d:#}");
    assert_eq!(d["schedule"], "weekly-drill");
    assert_eq!(d["backup_id"], id);
    drop(srv);
    pg.psql("postgres", &format!("DROP DATABASE IF EXISTS {src}"));
}

#[test]
fn a_drill_of_a_damaged_repository_fails_naming_the_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let files = dir.join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(
        files.join("big"),
        coffer_testkit::tree::random_bytes(7, 3 << 20),
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
    let b = srv.backup(&json!({ "label": "damaged" }));
    assert_eq!(b["status"], "READY", "{b:#}");
    let id = b["id"].as_str().unwrap();
    // Overwrite the middle of every pack: the data a restore reads is wrong.
    let mut damaged = 0;
    let data = dir.join("data/repository/data");
    for sub in std::fs::read_dir(&data).unwrap().filter_map(Result::ok) {
        for pack in std::fs::read_dir(sub.path())
            .unwrap()
            .filter_map(Result::ok)
        {
            let mut bytes = std::fs::read(pack.path()).unwrap();
            let mid = bytes.len() / 2;
            let end = (mid + 4096).min(bytes.len());
            bytes[mid..end].fill(0x55);
            std::fs::write(pack.path(), bytes).unwrap();
            damaged += 1;
        }
    }
    assert!(damaged > 0);
    let d = drill(&srv, id);
    assert_eq!(d["status"], "ERROR", "{d:#}");
    let error = d["error"].as_str().unwrap();
    assert!(
        error.contains(id) && error.contains("component files"),
        "{error}"
    );
    assert_eq!(component(&d, "files")["status"], "ERROR");
    let (_, v) = srv.admin("GET", &format!("/api/v1/backups/{id}"), None);
    assert_eq!(v["verified_at"], Value::Null, "{v:#}");
    assert_eq!(v["last_drill"]["status"], "ERROR");
    no_scratch_left(&dir.join("data"));
}
