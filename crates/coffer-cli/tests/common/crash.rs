//! The crash suite's harness: an installation with real components, one
//! operation crashed at one named point (`COFFER_CRASH_AT`, see
//! `coffer_model::crash`), and what must hold after the restart.
//!
//! Each case: prepare with a normal server, stop it (SIGTERM); start one
//! that aborts at the point; send the operation; wait for the abort; start a
//! normal server again and check that nothing is running any more, no
//! backup is `READY` that the repository does not hold, `restic check
//! --read-data` passes, the audit log verifies, the destination of an
//! interrupted restore is in the state docs/components.md promises for its
//! kind, and the operation, done again, succeeds.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::crash_site::{Site, redis_cli};
use super::{Server, sqlite_rows};

/// What a case does at the crash point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Back up files, SQLite and a command.
    Backup,
    /// Restore a files component over a changed tree (`overwrite`).
    RestoreFiles,
    /// The same with `mirror`, over a tree with files the backup lacks.
    RestoreFilesMirror,
    /// Restore a files component into a new path (`refuse`, the default).
    RestoreFilesElsewhere,
    /// Restore a SQLite database over a changed one.
    RestoreSqlite,
    /// Restore a PostgreSQL database over changed rows (`clean`).
    RestorePostgres,
    /// Restore a MariaDB database over changed rows (`clean`).
    RestoreMysql,
    /// Restore a private Redis over changed keys (`clean`).
    RestoreRedis,
    /// Restore S3 objects over changed ones.
    RestoreS3,
    /// Restore a command component.
    RestoreCommand,
    /// Export a backup with a password.
    Export,
    /// Restore an uploaded export.
    Upload,
    /// Delete a backup.
    Delete,
    /// A first prune after a delete: marks packs, rewrites the index.
    PruneMark,
    /// A prune that removes packs an earlier prune marked.
    PruneRemove,
    /// Check the repository, reading all data.
    Check,
    /// A restore drill.
    Drill,
    /// A request whose audit entry is copied into the repository.
    Audit,
}

impl Scenario {
    pub fn uses(self, component: &str) -> bool {
        match component {
            "pg" => self == Self::RestorePostgres,
            "my" => self == Self::RestoreMysql,
            "kv" => self == Self::RestoreRedis,
            "objects" => self == Self::RestoreS3,
            _ => true,
        }
    }
}

pub const V1: &[u8] = b"version one of the file";
pub const V2: &[u8] = b"VERSION TWO, written after the backup";
const PASSWORD: &str = "a crash suite export password";

/// Sends a request that may never be answered (the server aborts).
fn send(srv: &Server, method: &str, path: &str, body: &Value) {
    let _ = srv.curl(
        path,
        None,
        &[
            "-X".into(),
            method.into(),
            "-H".into(),
            "Content-Type: application/json".into(),
            "--max-time".into(),
            "120".into(),
            "--data".into(),
            body.to_string(),
        ],
    );
}

fn backup(srv: &Server, components: &[&str], password: Option<&str>) -> String {
    let mut body = json!({ "label": "crash", "components": components });
    if let Some(p) = password {
        body["password"] = json!(p);
    }
    let b = srv.backup(&body);
    assert_eq!(b["status"], "READY", "{b:#}");
    b["id"].as_str().unwrap().to_owned()
}

fn restore(srv: &Server, backup: &str, component: &str) -> Value {
    let (code, v) = srv.admin(
        "POST",
        &format!("/api/v1/backups/{backup}/restore"),
        Some(&restore_body(component)),
    );
    assert_eq!(code, 202, "{v}");
    srv.wait_restore(v["id"].as_str().unwrap())
}

/// The crashed restore's request.
fn scenario_body(elsewhere: &Path, scenario: Scenario) -> Value {
    match scenario {
        Scenario::RestoreFilesMirror => json!({
            "components": ["files"], "options": { "mode": "mirror" }
        }),
        Scenario::RestoreFilesElsewhere => json!({
            "components": ["files"], "overrides": { "files": { "path": elsewhere } }
        }),
        _ => restore_body(restored_component(scenario)),
    }
}

fn restore_body(component: &str) -> Value {
    json!({
        "components": [component],
        "options": { "mode": "overwrite", "clean": component != "objects" && component != "kv" }
    })
}

fn wait_job(srv: &Server, path: &str, running: &str) -> Value {
    let (code, v) = srv.admin("POST", path, Some(&json!({})));
    assert_eq!(code, 202, "{path}: {v}");
    let id = v["id"].as_str().unwrap();
    let kind = path.rsplit('/').next().unwrap();
    let show = match kind {
        "prune" => format!("/api/v1/prunes/{id}"),
        "check" => format!("/api/v1/checks/{id}"),
        _ => format!("/api/v1/drills/{id}"),
    };
    srv.wait_until_done(&show, running, 180)
}

/// What preparation left for the crashed operation and the checks after.
#[derive(Default)]
struct Prepared {
    backup: String,
    export: PathBuf,
    /// The new path a restore goes to ([`Scenario::RestoreFilesElsewhere`]).
    elsewhere: PathBuf,
}

fn prepare(site: &Site, srv: &Server, scenario: Scenario) -> Prepared {
    let mut p = Prepared {
        elsewhere: site.tmp.path().join("elsewhere"),
        ..Prepared::default()
    };
    match scenario {
        Scenario::Backup | Scenario::Audit => {}
        Scenario::RestoreFilesMirror => {
            p.backup = backup(srv, &["files"], None);
            site.change_sources();
            std::fs::write(site.files.join("extra"), V2).unwrap();
            std::fs::write(site.files.join("sub/extra"), V2).unwrap();
        }
        Scenario::RestoreFiles
        | Scenario::RestoreFilesElsewhere
        | Scenario::RestoreSqlite
        | Scenario::RestorePostgres
        | Scenario::RestoreMysql
        | Scenario::RestoreRedis
        | Scenario::RestoreS3
        | Scenario::RestoreCommand => {
            let c = restored_component(scenario);
            p.backup = backup(srv, &[c], None);
            site.change_sources();
        }
        Scenario::Export | Scenario::Delete | Scenario::Check | Scenario::Drill => {
            p.backup = backup(srv, &["files", "db"], None);
        }
        Scenario::Upload => {
            p.export = site.tmp.path().join("upload.coffer");
            super::export_to_file(srv, PASSWORD, &p.export);
            site.change_sources();
        }
        Scenario::PruneMark | Scenario::PruneRemove => {
            let old = backup(srv, &["files"], None);
            site.change_sources();
            p.backup = backup(srv, &["files"], None);
            let (code, v) = srv.admin("DELETE", &format!("/api/v1/backups/{old}"), None);
            assert_eq!(code, 200, "{v}");
            if scenario == Scenario::PruneRemove {
                let pr = wait_job(srv, "/api/v1/targets/local/prune", "PRUNING");
                assert_eq!(pr["status"], "READY", "{pr:#}");
            }
        }
    }
    p
}

fn restored_component(scenario: Scenario) -> &'static str {
    match scenario {
        Scenario::RestoreSqlite => "db",
        Scenario::RestorePostgres => "pg",
        Scenario::RestoreMysql => "my",
        Scenario::RestoreRedis => "kv",
        Scenario::RestoreS3 => "objects",
        Scenario::RestoreCommand => "cmd",
        _ => "files",
    }
}

fn trigger(srv: &Server, scenario: Scenario, p: &Prepared) {
    let b = &p.backup;
    match scenario {
        Scenario::Backup => send(
            srv,
            "POST",
            "/api/v1/backups",
            &json!({ "label": "crashing", "components": ["files", "db", "cmd"] }),
        ),
        Scenario::Export => send(
            srv,
            "POST",
            &format!("/api/v1/backups/{b}/exports"),
            &json!({ "password": PASSWORD }),
        ),
        Scenario::Upload => {
            let _ = srv.upload_export("/api/v1/restores", &p.export, &upload_config());
        }
        Scenario::Delete => send(srv, "DELETE", &format!("/api/v1/backups/{b}"), &json!({})),
        Scenario::PruneMark | Scenario::PruneRemove => send(
            srv,
            "POST",
            "/api/v1/targets/local/prune",
            &json!({ "grace_secs": 0 }),
        ),
        Scenario::Check => send(
            srv,
            "POST",
            "/api/v1/targets/local/check",
            &json!({ "read_data": "all" }),
        ),
        Scenario::Drill => send(
            srv,
            "POST",
            &format!("/api/v1/backups/{b}/drills"),
            &json!({}),
        ),
        Scenario::Audit => send(
            srv,
            "POST",
            "/api/v1/tokens",
            &json!({ "name": "audited", "scopes": ["backups:read"] }),
        ),
        _ => send(
            srv,
            "POST",
            &format!("/api/v1/backups/{b}/restore"),
            &scenario_body(&p.elsewhere, scenario),
        ),
    }
}

fn upload_config() -> Value {
    json!({ "password": PASSWORD, "components": ["files"], "options": { "mode": "overwrite" } })
}

/// Crashes `scenario` at `point` and checks what must hold after.
pub fn run_case(point: &str, scenario: Scenario) {
    let Some(mut site) = Site::new(scenario) else {
        eprintln!("{point} ({scenario:?}): skipped, a service it needs is not configured");
        return;
    };
    let prepared = {
        let srv = site.start(None);
        let p = prepare(&site, &srv, scenario);
        drop(srv);
        p
    };

    let mut crashing = site.start(Some(point));
    trigger(&crashing, scenario, &prepared);
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = crashing.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "{point} ({scenario:?}): the operation never passed the point"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        status.signal(),
        Some(6),
        "{point}: not aborted there: {status:?}"
    );
    drop(crashing);

    let srv = site.start(None);
    after_crash(&site, &srv, point, scenario, &prepared);
}

fn after_crash(site: &Site, srv: &Server, point: &str, scenario: Scenario, p: &Prepared) {
    // Nothing is left running, and a READY backup is one the repository holds.
    let (_, list) = srv.admin("GET", "/api/v1/backups", None);
    let snapshots = coffer_testkit::restic(
        &site.repo(),
        &site.repo_password,
        &["--no-lock", "snapshots", "--json"],
    )
    .unwrap_or_default();
    for b in list["backups"].as_array().unwrap() {
        assert_ne!(b["status"], "BACKING_UP", "{point}: {b:#}");
        if b["status"] == "READY" {
            let (_, full) = srv.admin(
                "GET",
                &format!("/api/v1/backups/{}", b["id"].as_str().unwrap()),
                None,
            );
            for c in full["components"].as_array().unwrap() {
                let id = c["snapshot_id"].as_str().unwrap_or("none");
                assert!(
                    snapshots.contains(id),
                    "{point}: READY backup without its snapshot {id}: {full:#}"
                );
            }
        }
    }
    let (_, restores) = srv.admin("GET", "/api/v1/restores", None);
    for r in restores["restores"].as_array().unwrap() {
        assert_ne!(r["status"], "RESTORING", "{point}: {r:#}");
    }
    coffer_testkit::restic_check(&site.repo(), &site.repo_password);
    check_destination(site, point, scenario);

    // Done again, the operation succeeds.
    match scenario {
        Scenario::Backup | Scenario::Audit => {}
        Scenario::Export => {
            let e = srv.export(&p.backup, &json!({ "password": PASSWORD }));
            assert_eq!(e["status"], "READY", "{point}: {e:#}");
        }
        Scenario::Upload => {
            let (code, v) = srv.upload_export("/api/v1/restores", &p.export, &upload_config());
            assert_eq!(code, 202, "{point}: {v}");
            let r = srv.wait_restore(v["id"].as_str().unwrap());
            assert_eq!(r["status"], "READY", "{point}: {r:#}");
            assert_eq!(std::fs::read(site.files.join("sub/c")).unwrap(), V1);
        }
        Scenario::Delete => {
            let (code, v) = srv.admin("DELETE", &format!("/api/v1/backups/{}", p.backup), None);
            assert!(code == 200 || code == 404, "{point}: {code} {v}");
            let (code, _) = srv.admin("GET", &format!("/api/v1/backups/{}", p.backup), None);
            assert_eq!(code, 404, "{point}: the backup is still there");
        }
        Scenario::PruneMark | Scenario::PruneRemove => {
            for _ in 0..2 {
                let pr = wait_job(srv, "/api/v1/targets/local/prune", "PRUNING");
                assert_eq!(pr["status"], "READY", "{point}: {pr:#}");
            }
            let r = restore(srv, &p.backup, "files");
            assert_eq!(
                r["status"], "READY",
                "{point}: the kept backup after prunes: {r:#}"
            );
        }
        Scenario::Check => {
            let c = wait_job(srv, "/api/v1/targets/local/check", "CHECKING");
            assert_eq!(c["status"], "READY", "{point}: {c:#}");
        }
        Scenario::Drill => {
            let d = wait_job(
                srv,
                &format!("/api/v1/backups/{}/drills", p.backup),
                "DRILLING",
            );
            assert_eq!(d["status"], "READY", "{point}: {d:#}");
        }
        _ => {
            let mut body = scenario_body(&p.elsewhere, scenario);
            if scenario == Scenario::RestoreFilesElsewhere {
                // What the crash left there (the whole tree, or nothing)
                // is replaced.
                body["options"] = json!({ "mode": "overwrite" });
            }
            let (code, v) = srv.admin(
                "POST",
                &format!("/api/v1/backups/{}/restore", p.backup),
                Some(&body),
            );
            assert_eq!(code, 202, "{point}: {v}");
            let r = srv.wait_restore(v["id"].as_str().unwrap());
            assert_eq!(r["status"], "READY", "{point}: {r:#}");
            check_restored(site, point, scenario);
        }
    }
    let fresh = srv.backup(&json!({ "label": "after", "components": ["files", "db"] }));
    assert_eq!(fresh["status"], "READY", "{point}: {fresh:#}");
    wait_audit_sound(srv, point);
    coffer_testkit::restic_check(&site.repo(), &site.repo_password);
}

/// The state an interrupted restore may leave, per kind (docs/components.md).
fn check_destination(site: &Site, point: &str, scenario: Scenario) {
    match scenario {
        // Per entry atomic: each file is its old or its new version.
        Scenario::RestoreFiles | Scenario::Upload => {
            for name in ["a", "b", "sub/c", "sub/d"] {
                let now = std::fs::read(site.files.join(name)).unwrap();
                assert!(now == V1 || now == V2, "{point}: {name} is neither version");
            }
        }
        // Mirror: also per entry; what the backup lacks is still there or
        // moved aside (into the staging directory's old/), never lost.
        Scenario::RestoreFilesMirror => {
            for name in ["a", "b", "sub/c", "sub/d"] {
                let now = std::fs::read(site.files.join(name)).unwrap();
                assert!(now == V1 || now == V2, "{point}: {name} is neither version");
            }
            let complete = ["a", "b", "sub/c", "sub/d"]
                .iter()
                .all(|n| std::fs::read(site.files.join(n)).unwrap() == V1);
            for extra in ["extra", "sub/extra"] {
                let kept = site.files.join(extra).exists() || aside(site.tmp.path(), &site.files);
                assert!(
                    kept || complete,
                    "{point}: {extra} is gone before the mirror completed, and not set aside"
                );
            }
        }
        // A new path: the whole tree moves in with one rename.
        Scenario::RestoreFilesElsewhere => {
            let dest = site.tmp.path().join("elsewhere");
            if dest.exists() {
                for name in ["a", "b", "sub/c", "sub/d"] {
                    assert_eq!(
                        std::fs::read(dest.join(name)).unwrap(),
                        V1,
                        "{point}: {name}"
                    );
                }
            }
        }
        // An atomic rename: the old database or the new, whole.
        Scenario::RestoreSqlite => {
            let rows = sqlite_rows(&site.sqlite);
            assert!(
                rows.len() == 50 || rows.len() == 7,
                "{point}: {} rows",
                rows.len()
            );
        }
        // One transaction: all rows of one version.
        Scenario::RestorePostgres => {
            if let Some(pg) = &site.pg {
                let states = pg.psql(&site.unique, "SELECT DISTINCT state FROM runs");
                assert!(states == "one" || states == "two", "{point}: {states:?}");
            }
        }
        // Redis is not atomic (the keys copied so far are in), but the
        // temporary redis-server the restore loaded the backup into died
        // with the server.
        Scenario::RestoreRedis => {
            let tmp = site.tmp.path().display().to_string();
            let left = std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
                std::fs::read(e.path().join("cmdline"))
                    .map(|c| String::from_utf8_lossy(&c).contains(&format!("unixsocket:{tmp}")))
                    .unwrap_or(false)
            });
            assert!(
                !left,
                "{point}: a temporary redis-server outlived the server"
            );
        }
        // MariaDB, S3 and commands are not atomic: a documented partial
        // state, which the restore done again replaces.
        _ => {}
    }
}

/// After a successful restore: the backup's version everywhere.
fn check_restored(site: &Site, point: &str, scenario: Scenario) {
    match scenario {
        Scenario::RestoreFiles => {
            for name in ["a", "b", "sub/c", "sub/d"] {
                assert_eq!(
                    std::fs::read(site.files.join(name)).unwrap(),
                    V1,
                    "{point}: {name}"
                );
            }
        }
        Scenario::RestoreFilesMirror => {
            for name in ["a", "b", "sub/c", "sub/d"] {
                assert_eq!(
                    std::fs::read(site.files.join(name)).unwrap(),
                    V1,
                    "{point}: {name}"
                );
            }
            assert!(
                !site.files.join("extra").exists(),
                "{point}: mirror kept extra"
            );
        }
        Scenario::RestoreFilesElsewhere => {
            let dest = site.tmp.path().join("elsewhere");
            assert_eq!(std::fs::read(dest.join("sub/c")).unwrap(), V1, "{point}");
        }
        Scenario::RestoreSqlite => assert_eq!(sqlite_rows(&site.sqlite).len(), 50, "{point}"),
        Scenario::RestorePostgres => {
            let pg = site.pg.as_ref().unwrap();
            assert_eq!(
                pg.psql(&site.unique, "SELECT DISTINCT state FROM runs"),
                "one",
                "{point}"
            );
        }
        Scenario::RestoreMysql => assert_eq!(
            site.mysql(&format!("SELECT DISTINCT state FROM {}.runs", site.unique)),
            "one",
            "{point}"
        ),
        Scenario::RestoreRedis => {
            let r = site.redis.as_ref().unwrap();
            assert_eq!(redis_cli(r.port, &["GET", "k7"]), "one", "{point}");
        }
        Scenario::RestoreS3 => {
            let (s3, bucket) = site.s3.as_ref().unwrap();
            let objects = s3.objects(bucket, &format!("{}/", site.unique));
            assert_eq!(objects.len(), 6, "{point}");
            assert!(objects.values().all(|o| o.body == V1), "{point}");
        }
        Scenario::RestoreCommand => {
            let out = std::fs::read_to_string(site.tmp.path().join("cmd-restored")).unwrap();
            assert_eq!(out.trim(), "from a command", "{point}");
        }
        _ => {}
    }
}

fn wait_audit_sound(srv: &Server, point: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, v) = srv.admin("GET", "/api/v1/audit/verify", None);
        if v["ok"] == true && v["targets"][0]["pending"] == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{point}: the audit log does not verify: {v:#}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Whether a `.coffer-restore-*` staging directory beside or inside `files`
/// holds what a mirror set aside.
fn aside(root: &Path, files: &Path) -> bool {
    [root, files].iter().any(|dir| {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".coffer-restore-")
            })
    })
}
