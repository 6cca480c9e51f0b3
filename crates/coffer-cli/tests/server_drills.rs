//! Restore drills end to end: a backup of PostgreSQL, a directory and a
//! SQLite file restored into scratch places beside the live ones, proved
//! (the component's `verify_query`, the snapshot's file count and bytes,
//! `PRAGMA integrity_check`) and removed, the live data untouched, the
//! backup marked verified, durations in the metrics; a drill schedule on a
//! fake clock; Redis loaded into a temporary server and S3 restored under a
//! scratch prefix, both proved; and a repository with a damaged pack failing its drill with
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

/// `redis-cli` against the test instance (database 5).
fn redis_cli(port: &str, password: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            port,
            "-n",
            "5",
            "--no-auth-warning",
        ])
        .args(args)
        .env("REDISCLI_AUTH", password)
        .output()
        .expect("redis-cli");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn a_drill_proves_redis_in_a_temporary_server_and_s3_under_a_scratch_prefix() {
    let (Some(s3), Some(bucket), Some(port), Some(password)) = (
        coffer_testkit::s3::S3::from_env(),
        coffer_testkit::service_setting("COFFER_TEST_S3_BUCKET"),
        coffer_testkit::service_setting("COFFER_TEST_REDIS_PORT"),
        coffer_testkit::service_setting("COFFER_TEST_REDIS_PASSWORD"),
    ) else {
        return;
    };
    let pid = std::process::id();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Live Redis: keys of several types, one with an expiry.
    let tag = format!("drill-{pid}");
    for i in 0..50 {
        redis_cli(&port, &password, &["SET", &format!("{tag}:s{i}"), "v"]);
    }
    redis_cli(
        &port,
        &password,
        &["RPUSH", &format!("{tag}:list"), "a", "b"],
    );
    redis_cli(
        &port,
        &password,
        &["HSET", &format!("{tag}:hash"), "f", "v"],
    );
    redis_cli(
        &port,
        &password,
        &["SET", &format!("{tag}:ttl"), "v", "EX", "3600"],
    );
    // Live S3: objects under the component's prefix, with metadata.
    let prefix = format!("drill-{pid}/");
    s3.put(
        &bucket,
        &format!("{prefix}a.json"),
        b"{\"a\":1}",
        Some("application/json"),
        &[("owner", "ops")],
    );
    s3.put(
        &bucket,
        &format!("{prefix}big.bin"),
        &coffer_testkit::tree::random_bytes(3, 400_000),
        None,
        &[],
    );
    s3.put(&bucket, &format!("{prefix}dir/c"), b"c", None, &[]);
    let live_before = s3.objects(&bucket, &prefix);
    let config = write_config(
        dir,
        &format!(
            r#"[[components]]
name = "cache"
kind = "redis"
host = "127.0.0.1"
port = {port}
password = {{ env = "COFFER_TEST_REDIS_PASSWORD" }}

[[components]]
name = "objects"
kind = "s3"
endpoint = "{endpoint}"
region = "{region}"
bucket = "{bucket}"
prefix = "{prefix}"
access_key = {{ env = "COFFER_TEST_S3_ACCESS_KEY" }}
secret_key = {{ env = "COFFER_TEST_S3_SECRET_KEY" }}
"#,
            endpoint = s3.endpoint,
            region = s3.region,
        ),
    );
    let srv = Server::start(&config);
    let b = srv.backup(&json!({ "label": "drilled" }));
    assert_eq!(b["status"], "READY", "{b:#}");
    let id = b["id"].as_str().unwrap();
    let d = drill(&srv, id);
    assert_eq!(d["status"], "READY", "{d:#}");
    let cache = component(&d, "cache");
    assert_eq!(cache["status"], "READY", "{d:#}");
    let proof = cache["proof"].as_str().unwrap();
    assert!(proof.contains("passed redis-check-rdb"), "{proof}");
    assert!(proof.contains("each read back with DUMP"), "{proof}");
    let objects = component(&d, "objects");
    assert_eq!(objects["status"], "READY", "{d:#}");
    let proof = objects["proof"].as_str().unwrap();
    assert!(proof.starts_with("3 objects"), "{proof}");
    assert!(proof.contains("SHA-256"), "{proof}");

    // Beside, never over: the live keys and objects are as they were, and
    // no scratch prefix, temporary server file or scratch directory is left.
    assert_eq!(
        redis_cli(&port, &password, &["GET", &format!("{tag}:s7")]),
        "v"
    );
    assert_eq!(s3.objects(&bucket, &prefix), live_before);
    assert!(s3.keys(&bucket, "coffer-drill-").is_empty());
    no_scratch_left(&dir.join("data"));
    let (_, v) = srv.admin("GET", &format!("/api/v1/backups/{id}"), None);
    assert_ne!(v["verified_at"], Value::Null, "{v:#}");
    drop(srv);
    for key in live_before.keys() {
        s3.delete(&bucket, &format!("{prefix}{key}"));
    }
    let keys = redis_cli(
        &port,
        &password,
        &["--scan", "--pattern", &format!("{tag}:*")],
    );
    for k in keys.lines() {
        redis_cli(&port, &password, &["DEL", k]);
    }
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
    let damaged = packs(&dir.join("data"));
    for pack in &damaged {
        damage_pack(pack);
    }
    assert!(!damaged.is_empty());
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

#[test]
fn scheduled_checks_rotate_through_the_packs_and_a_check_names_the_damaged_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let files = dir.join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(
        files.join("a"),
        coffer_testkit::tree::random_bytes(11, 2 << 20),
    )
    .unwrap();
    let clock = dir.join("clock");
    std::fs::write(&clock, "2027-01-01T00:00:00Z").unwrap();
    let config = write_config(
        dir,
        &format!(
            "[[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n\n\
             [[schedules]]\nname = \"verify\"\ntask = \"check\"\nevery_days = 1\nhours_utc = [2]\n\
             start = \"2027-01-01\"\nread_all_every_days = 3\n",
            files.display()
        ),
    );
    let srv = Server::start_env(&config, &[("COFFER_FAKE_CLOCK_FILE", clock.as_path())]);
    let first = srv.backup(&json!({ "label": "first" }));
    let before: Vec<_> = packs(&dir.join("data"));
    std::fs::write(
        files.join("b"),
        coffer_testkit::tree::random_bytes(12, 2 << 20),
    )
    .unwrap();
    let second = srv.backup(&json!({ "label": "second" }));

    // Three days, three parts of three: every pack read once.
    let mut parts = Vec::new();
    for day in 1..=4 {
        let at = format!("2027-01-0{day}T02:00:00Z");
        std::fs::write(clock.with_extension("tmp"), &at).unwrap();
        std::fs::rename(clock.with_extension("tmp"), &clock).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let run = loop {
            let (_, s) = srv.admin("GET", "/api/v1/schedules/verify", None);
            let runs = s["runs"].as_array().unwrap().clone();
            if runs.len() == day {
                break runs[0].clone();
            }
            assert!(Instant::now() < deadline, "{s:#}");
            std::thread::sleep(Duration::from_millis(20));
        };
        let id = run["backup_id"].as_str().unwrap();
        assert!(id.starts_with("check-"), "{run:#}");
        let c = srv.wait_until_done(&format!("/api/v1/checks/{id}"), "CHECKING", 60);
        assert_eq!(c["status"], "READY", "{c:#}");
        assert_eq!(c["schedule"], "verify");
        parts.push(c["read_data"].as_str().unwrap().to_owned());
    }
    assert_eq!(parts, ["1/3", "2/3", "3/3", "1/3"]);

    // Damage the second backup's packs only: a full check names them and it.
    let new: Vec<_> = packs(&dir.join("data"))
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert!(!new.is_empty());
    for p in &new {
        damage_pack(p);
    }
    let (code, v) = srv.admin(
        "POST",
        "/api/v1/targets/local/check",
        Some(&json!({ "read_data": "all" })),
    );
    assert_eq!(code, 202, "{v}");
    let c = srv.wait_until_done(
        &format!("/api/v1/checks/{}", v["id"].as_str().unwrap()),
        "CHECKING",
        60,
    );
    assert_eq!(c["status"], "ERROR", "{c:#}");
    let f = &c["findings"];
    let damaged: Vec<&str> = f["damaged_packs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    // The packs named are damaged ones (a check may stop at the first
    // damaged tree, so not every damaged pack need be named at once).
    let new_names: Vec<&str> = new
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap())
        .collect();
    assert!(!damaged.is_empty(), "{c:#}");
    assert!(damaged.iter().all(|d| new_names.contains(d)), "{c:#}");
    let affected: Vec<&str> = f["affected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["backup_id"].as_str().unwrap())
        .collect();
    assert!(affected.contains(&second["id"].as_str().unwrap()), "{c:#}");
    assert!(!affected.contains(&first["id"].as_str().unwrap()), "{c:#}");
    assert!(
        c["error"]
            .as_str()
            .unwrap()
            .contains(second["id"].as_str().unwrap())
    );
    let (code, v) = srv.admin(
        "POST",
        "/api/v1/targets/local/check",
        Some(&json!({ "read_data": "all of it" })),
    );
    assert_eq!(code, 422, "{v}");
    assert!(v["message"].as_str().unwrap().contains("read_data"), "{v}");
}

#[test]
fn prune_schedules_prune_their_target_on_their_own() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let files = small_dir(dir);
    let clock = dir.join("clock");
    std::fs::write(&clock, "2027-01-01T00:00:00Z").unwrap();
    let config = write_config(
        dir,
        &format!(
            "[[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n\n\
             [[schedules]]\nname = \"weekly-prune\"\ntask = \"prune\"\ncron = \"0 4 * * 0\"\n\
             grace_secs = 0\n",
            files.display()
        ),
    );
    let srv = Server::start_env(&config, &[("COFFER_FAKE_CLOCK_FILE", clock.as_path())]);
    let b = srv.backup(&json!({ "label": "gone" }));
    let (code, _) = srv.admin(
        "DELETE",
        &format!("/api/v1/backups/{}", b["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(code, 200);
    // Sunday 3 January 2027, 04:00 UTC.
    std::fs::write(clock.with_extension("tmp"), "2027-01-03T04:00:00Z").unwrap();
    std::fs::rename(clock.with_extension("tmp"), &clock).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let run = loop {
        let (_, s) = srv.admin("GET", "/api/v1/schedules/weekly-prune", None);
        if let Some(r) = s["runs"].as_array().and_then(|r| r.first()).cloned() {
            break r;
        }
        assert!(Instant::now() < deadline, "{s:#}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(run["due_at"], "2027-01-03T04:00:00Z", "{run:#}");
    let id = run["backup_id"].as_str().unwrap();
    assert!(id.starts_with("prune-"), "{run:#}");
    let p = srv.wait_until_done(&format!("/api/v1/prunes/{id}"), "PRUNING", 60);
    assert_eq!(p["status"], "READY", "{p:#}");
    assert!(p["report"]["packs_marked"].as_u64().unwrap() > 0, "{p:#}");
    std::fs::create_dir_all(dir.join("bad")).unwrap();
    for (extra, field) in [
        ("components = [\"files\"]", "components"),
        ("read_all_every_days = 3", "read_all_every_days"),
    ] {
        let bad = write_config(
            &dir.join("bad"),
            &format!("[[schedules]]\nname = \"p\"\ntask = \"prune\"\nevery_secs = 3600\n{extra}\n"),
        );
        let out = std::process::Command::new(coffer_bin())
            .args(["server", "--listen", "127.0.0.1:0", "--config"])
            .arg(&bad)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(field), "{err}");
    }
}
