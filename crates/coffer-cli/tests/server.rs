//! `coffer server` end to end: the real binary on a free loopback port, driven
//! over HTTP, with real PostgreSQL, a directory, a SQLite file and the default
//! local target; the repository judged by plain `restic`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use coffer_testkit::tree::{assert_same_tree, build_rich_tree};
use coffer_testkit::{restic_check, service_setting};
use serde_json::{Value, json};

/// A running `coffer server`.
struct Server {
    child: Child,
    url: String,
    /// The admin token printed at first start.
    admin: String,
    /// The default repository's password printed at first start.
    repo_password: Option<String>,
    agent: ureq::Agent,
}

impl Server {
    /// Starts the server with `config` and waits for its address.
    fn start(config: &Path) -> Self {
        Self::start_wrapped(config, &[])
    }

    /// Starts the server through `wrapper` (e.g. `prlimit … --`).
    fn start_wrapped(config: &Path, wrapper: &[&str]) -> Self {
        let mut command = match wrapper.split_first() {
            None => Command::new(env!("CARGO_BIN_EXE_coffer")),
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(env!("CARGO_BIN_EXE_coffer"));
                c
            }
        };
        let mut child = command
            .args(["server", "--listen", "127.0.0.1:0", "--config"])
            .arg(config)
            .env_remove("COFFER_SERVER_KEY")
            .env("RUST_LOG", "warn,coffer_server=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start coffer server");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[server] {line}");
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let (mut url, mut admin, mut repo_password) = (None, None, None);
        let mut expect = "";
        while url.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .expect("server did not report its address");
            let t = line.trim();
            if t.starts_with("Admin token") {
                expect = "token";
            } else if t.starts_with("Repository password") {
                expect = "password";
            } else if !t.is_empty() && expect == "token" {
                admin = Some(t.to_owned());
                expect = "";
            } else if !t.is_empty() && expect == "password" {
                repo_password = Some(t.to_owned());
                expect = "";
            }
            if let Some(u) = t.strip_prefix("coffer server listening on ") {
                url = Some(u.to_owned());
            }
        }
        // A connection per request: a response to a request whose body the
        // handler did not read may close the connection, and a pooled one
        // would then fail the next request spuriously.
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_idle_connections(0)
            .build()
            .into();
        Self {
            child,
            url: url.unwrap_or_default(),
            admin: admin.unwrap_or_default(),
            repo_password,
            agent,
        }
    }

    /// Sends a request; returns the status and the JSON body (Null if none).
    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        self.call_raw(
            method,
            path,
            token.map(|t| format!("Bearer {t}")).as_deref(),
            body,
        )
    }

    fn call_raw(
        &self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.url);
        let with_auth = |r: ureq::RequestBuilder<ureq::typestate::WithoutBody>| match auth {
            Some(a) => r.header("Authorization", a),
            None => r,
        };
        let with_auth_body = |r: ureq::RequestBuilder<ureq::typestate::WithBody>| match auth {
            Some(a) => r.header("Authorization", a),
            None => r,
        };
        let resp = match method {
            "GET" => with_auth(self.agent.get(&url)).call(),
            "DELETE" => with_auth(self.agent.delete(&url)).call(),
            "PUT" => {
                let text = body.map(Value::to_string).unwrap_or_else(|| "{}".into());
                with_auth_body(self.agent.put(&url))
                    .header("Content-Type", "application/json")
                    .send(text.as_bytes())
            }
            "POST" => {
                let text = body.map(Value::to_string).unwrap_or_else(|| "{}".into());
                with_auth_body(self.agent.post(&url))
                    .header("Content-Type", "application/json")
                    .send(text.as_bytes())
            }
            other => panic!("method {other}"),
        };
        let mut resp = resp.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        let json = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, json)
    }

    fn admin(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.call(method, path, Some(&self.admin), body)
    }

    /// Polls `path` until its `status` is not `running`, or panics after `secs`.
    fn wait_until_done(&self, path: &str, running: &str, secs: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let (code, v) = self.admin("GET", path, None);
            assert_eq!(code, 200, "{path}: {v}");
            if v["status"] != running {
                return v;
            }
            assert!(Instant::now() < deadline, "{path} still {running}: {v:#}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Starts a backup (202 expected) and waits until it is no longer
    /// `BACKING_UP`; returns the backup.
    fn backup(&self, body: &Value) -> Value {
        let (code, v) = self.admin("POST", "/api/v1/backups", Some(body));
        assert_eq!(code, 202, "{body}: {v}");
        let id = v["id"].as_str().expect("id");
        self.wait_until_done(&format!("/api/v1/backups/{id}"), "BACKING_UP", 120)
    }

    fn token(&self, scopes: &[&str], components: Option<&[&str]>, expires: Option<u64>) -> String {
        let mut body = json!({ "name": "test", "scopes": scopes });
        if let Some(c) = components {
            body["components"] = json!(c);
        }
        if let Some(e) = expires {
            body["expires_in_secs"] = json!(e);
        }
        let (code, v) = self.admin("POST", "/api/v1/tokens", Some(&body));
        assert_eq!(code, 201, "{v}");
        v["secret"].as_str().expect("secret").to_owned()
    }

    fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM first: the graceful path.
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(dir: &Path, body: &str) -> PathBuf {
    write_config_with(dir, "", body)
}

/// A config with the data directory in `dir`, more `[server]` settings, and `body`.
fn write_config_with(dir: &Path, server: &str, body: &str) -> PathBuf {
    let path = dir.join("coffer.toml");
    let text = format!(
        "[server]\ndata_dir = \"{}\"\n{server}\n{body}",
        dir.join("data").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A directory `files` in `dir` with one small file.
fn small_dir(dir: &Path) -> PathBuf {
    let files = dir.join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("a"), b"a").unwrap();
    files
}

fn sqlite_db(path: &Path, rows: usize) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);")
        .unwrap();
    for i in 0..rows {
        conn.execute("INSERT INTO t (v) VALUES (?1)", [format!("row {i} ✓")])
            .unwrap();
    }
}

fn sqlite_rows(path: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut st = conn.prepare("SELECT v FROM t ORDER BY id").unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

struct Pg {
    host: String,
    port: String,
    user: String,
    password: String,
}

impl Pg {
    fn from_env() -> Option<Self> {
        Some(Self {
            host: service_setting("COFFER_TEST_PG_HOST")?,
            port: service_setting("COFFER_TEST_PG_PORT")?,
            user: service_setting("COFFER_TEST_PG_USER")?,
            password: service_setting("COFFER_TEST_PG_PASSWORD")?,
        })
    }

    fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                db,
                "-c",
                sql,
            ])
            .env("PGHOST", &self.host)
            .env("PGPORT", &self.port)
            .env("PGUSER", &self.user)
            .env("PGPASSWORD", &self.password)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

#[test]
fn the_dcos_flow_over_http_backs_up_and_restores_into_a_new_place() {
    let Some(pg) = Pg::from_env() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let files = dir.join("files");
    build_rich_tree(&files);
    let db = dir.join("app.sqlite");
    sqlite_db(&db, 500);
    let src = format!("coffer_srv_src_{}", std::process::id());
    let dst = format!("coffer_srv_dst_{}", std::process::id());
    pg.psql("postgres", &format!("DROP DATABASE IF EXISTS {src}"));
    pg.psql("postgres", &format!("DROP DATABASE IF EXISTS {dst}"));
    pg.psql("postgres", &format!("CREATE DATABASE {src}"));
    pg.psql(
        &src,
        "CREATE TABLE accounts (id int PRIMARY KEY, name text); \
         INSERT INTO accounts SELECT i, 'name ' || i FROM generate_series(1, 1000) i;",
    );
    let marker = dir.join("hooks.log");
    let config = write_config(
        dir,
        &format!(
            r#"[hooks]
pre_backup = ["echo pre-backup $COFFER_BACKUP_ID >> {m}"]
post_backup = ["echo post-backup >> {m}"]
pre_restore = ["echo pre-restore $COFFER_COMPONENTS >> {m}; echo stopping app"]
post_restore = ["echo post-restore >> {m}"]

[[components]]
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
"#,
            m = marker.display(),
            files = files.display(),
            db = db.display(),
            host = pg.host,
            port = pg.port,
            user = pg.user,
        ),
    );
    let srv = Server::start(&config);
    assert!(
        srv.admin.starts_with("cft_"),
        "admin token: {:?}",
        srv.admin
    );
    let repo_password = srv
        .repo_password
        .clone()
        .expect("repository password shown once");

    // Health says the local target is not disaster-safe.
    let (code, health) = srv.call("GET", "/healthz", None, None);
    assert_eq!(code, 200);
    assert!(
        health["warnings"][0]
            .as_str()
            .unwrap()
            .contains("not disaster-safe"),
        "{health}"
    );
    let (code, targets) = srv.admin("GET", "/api/v1/targets", None);
    assert_eq!(code, 200);
    assert_eq!(targets[0]["name"], "local");
    assert!(targets[0]["warning"].is_string());

    // Create with a label.
    let (code, v) = srv.admin(
        "POST",
        "/api/v1/backups",
        Some(&json!({ "label": "nightly" })),
    );
    assert_eq!(code, 202, "{v}");
    assert_eq!(v["status"], "BACKING_UP");
    let id = v["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("nightly-"), "{id}");

    // Watch the states.
    let b = srv.wait_until_done(&format!("/api/v1/backups/{id}"), "BACKING_UP", 180);
    assert_eq!(b["status"], "READY", "{b:#}");
    let comps = b["components"].as_array().unwrap();
    assert_eq!(comps.len(), 3);
    for c in comps {
        assert_eq!(c["status"], "READY", "{c}");
        assert!(c["snapshot_id"].as_str().unwrap().len() == 64, "{c}");
    }
    assert!(b["bytes"].as_u64().unwrap() > 0);
    let hooks = std::fs::read_to_string(&marker).unwrap();
    assert!(hooks.contains(&format!("pre-backup {id}")), "{hooks}");
    assert!(hooks.contains("post-backup"), "{hooks}");

    // The log has the hooks and every component.
    let (code, log) = srv.admin("GET", &format!("/api/v1/backups/{id}/log"), None);
    assert_eq!(code, 200);
    let text = log["lines"].to_string();
    for needle in [
        "pre-backup hook",
        "component pg",
        "component files",
        "READY",
    ] {
        assert!(text.contains(needle), "{needle} not in {text}");
    }

    // List by label.
    let (_, list) = srv.admin("GET", "/api/v1/backups?label=nightly", None);
    assert_eq!(list["backups"].as_array().unwrap().len(), 1);
    let (_, list) = srv.admin("GET", "/api/v1/backups?label=weekly", None);
    assert!(list["backups"].as_array().unwrap().is_empty());
    let (code, v) = srv.admin("GET", "/api/v1/backups?status=DONE", None);
    assert_eq!(code, 422, "{v}");

    // Restore every component somewhere else: another database, path and file.
    let files_dst = dir.join("restored-files");
    let db_dst = dir.join("restored.sqlite");
    let body = json!({
        "overrides": {
            "files": { "path": files_dst },
            "appdb": { "path": db_dst },
            "pg": { "database": dst },
        }
    });
    let (code, v) = srv.admin(
        "POST",
        &format!("/api/v1/backups/{id}/restore"),
        Some(&body),
    );
    assert_eq!(code, 202, "{v}");
    let rid = v["id"].as_str().unwrap().to_owned();
    let r = srv.wait_until_done(&format!("/api/v1/restores/{rid}"), "RESTORING", 180);
    assert_eq!(r["status"], "READY", "{r:#}");
    assert_eq!(r["components"].as_array().unwrap().len(), 3);
    assert!(
        r["components"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "READY"),
        "{r}"
    );
    assert_same_tree(&files, &files_dst);
    assert_eq!(sqlite_rows(&db_dst), sqlite_rows(&db));
    assert_eq!(
        pg.psql(&dst, "SELECT count(*), sum(id) FROM accounts"),
        "1000|500500"
    );
    let hooks = std::fs::read_to_string(&marker).unwrap();
    assert!(hooks.contains("pre-restore "), "{hooks}");
    assert!(hooks.contains("post-restore"), "{hooks}");
    let (_, log) = srv.admin("GET", &format!("/api/v1/restores/{rid}/log"), None);
    assert!(log["lines"].to_string().contains("stopping app"), "{log}");

    // A bad override is refused before anything runs.
    let (code, v) = srv.admin(
        "POST",
        &format!("/api/v1/backups/{id}/restore"),
        Some(&json!({ "components": ["pg"], "overrides": { "pg": { "kind": "mysql" } } })),
    );
    assert_eq!(code, 422, "{v}");

    // The repository is a valid restic repository holding the three snapshots.
    let repo = dir.join("data/repository");
    restic_check(&repo, &repo_password);

    // Delete, then it is gone.
    let (code, v) = srv.admin("DELETE", &format!("/api/v1/backups/{id}"), None);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["snapshots_removed"], 3);
    assert!(v["space"].as_str().unwrap().contains("prune"), "{v}");
    let (code, v) = srv.admin("GET", &format!("/api/v1/backups/{id}"), None);
    assert_eq!(code, 404, "{v}");
    assert_eq!(v["error"], "not_found");
    restic_check(&repo, &repo_password);

    // Metrics count the finished jobs.
    let (code, m) = srv.call("GET", "/metrics", None, None);
    assert_eq!(code, 200);
    let m = m.as_str().unwrap_or_default().to_owned();
    assert!(
        m.contains(r#"coffer_jobs_total{kind="backup",status="READY"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"coffer_last_success_timestamp_seconds{component="pg"}"#),
        "{m}"
    );

    drop(srv);
    pg.psql("postgres", &format!("DROP DATABASE IF EXISTS {src}"));
    pg.psql("postgres", &format!("DROP DATABASE IF EXISTS {dst}"));
}

#[test]
fn bad_requests_are_refused_with_the_rule_and_nothing_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let files = small_dir(tmp.path());
    let config = write_config(
        tmp.path(),
        &format!(
            "[[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n",
            files.display(),
        ),
    );
    let srv = Server::start(&config);
    for (body, needle) in [
        (json!({ "label": "ab" }), "3 to 25"),
        (json!({ "label": "..hidden" }), "must not start with '..'"),
        (json!({ "label": "a b c" }), "3 to 25"),
        (
            json!({ "label": "okay", "components": ["nope"] }),
            "unknown component \"nope\"",
        ),
        (
            json!({ "label": "okay", "components": ["files"], "target": "nope" }),
            "no target named",
        ),
        (json!({ "label": "okay", "extra": 1 }), "unknown field"),
    ] {
        let (code, v) = srv.admin("POST", "/api/v1/backups", Some(&body));
        assert_eq!(code, 422, "{body}: {v}");
        assert_eq!(v["error"], "invalid", "{v}");
        assert!(
            v["message"].as_str().unwrap().contains(needle),
            "{body}: {v}"
        );
    }
    let (code, v) = srv.call_raw(
        "POST",
        "/api/v1/backups",
        Some(&format!("Bearer {}", srv.admin)),
        None,
    );
    assert_eq!(code, 422, "empty object lacks the label: {v}");
    let (_, list) = srv.admin("GET", "/api/v1/backups", None);
    assert!(
        list["backups"].as_array().unwrap().is_empty(),
        "nothing was recorded: {list}"
    );
    let (code, v) = srv.admin("GET", "/api/v1/nothing-here", None);
    assert_eq!(code, 404);
    assert_eq!(v["error"], "not_found");
    let (code, v) = srv.admin("GET", "/api/v1/backups/no-such-id", None);
    assert_eq!(code, 404, "{v}");
    // The OpenAPI document describes the endpoints.
    let (code, doc) = srv.call("GET", "/api/v1/openapi.json", None, None);
    assert_eq!(code, 200);
    assert!(doc["paths"]["/api/v1/backups"]["post"].is_object(), "{doc}");
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

/// Every endpoint × {no token, malformed, unknown, expired, revoked, missing
/// scope, other component}.
#[test]
fn every_endpoint_checks_credentials_scopes_and_components() {
    let tmp = tempfile::tempdir().unwrap();
    let files = small_dir(tmp.path());
    let config = write_config(
        tmp.path(),
        &format!(
            "[[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n\n\
             [[components]]\nname = \"other\"\nkind = \"command\"\nbackup = [\"echo\", \"other\"]\nrestore = [\"sh\", \"-c\", \"cat > /dev/null\"]\n",
            files.display()
        ),
    );
    let srv = Server::start(&config);
    let b = srv.backup(&json!({ "label": "authz" }));
    let id = b["id"].as_str().unwrap().to_owned();
    assert_eq!(b["status"], "READY", "{b}");

    let restore_body = json!({ "components": ["files"], "overrides": { "files": { "path": tmp.path().join("r") } } });
    let backup_body = json!({ "label": "authz", "components": ["files"] });
    let target_body =
        json!({ "name": "t2", "spec": { "kind": "local", "path": tmp.path().join("t2") } });
    let token_body = json!({ "name": "x", "scopes": ["backups:read"] });
    let export_body = json!({ "password": "correct horse battery" });
    let e = srv.export(&id, &export_body);
    let eid = e["id"].as_str().unwrap().to_owned();
    // (method, path, body, scope, component-scoped)
    let endpoints: Vec<(&str, String, Option<Value>, &str, bool)> = vec![
        (
            "GET",
            "/api/v1/components".into(),
            None,
            "backups:read",
            false,
        ),
        (
            "POST",
            "/api/v1/backups".into(),
            Some(backup_body),
            "backups:write",
            true,
        ),
        ("GET", "/api/v1/backups".into(), None, "backups:read", false),
        (
            "GET",
            format!("/api/v1/backups/{id}"),
            None,
            "backups:read",
            false,
        ),
        (
            "GET",
            format!("/api/v1/backups/{id}/log"),
            None,
            "backups:read",
            false,
        ),
        (
            "POST",
            format!("/api/v1/backups/{id}/cancel"),
            None,
            "backups:write",
            false,
        ),
        (
            "POST",
            format!("/api/v1/backups/{id}/restore"),
            Some(restore_body),
            "restore",
            true,
        ),
        (
            "GET",
            "/api/v1/restores/restore-x".into(),
            None,
            "backups:read",
            false,
        ),
        (
            "GET",
            "/api/v1/restores/restore-x/log".into(),
            None,
            "backups:read",
            false,
        ),
        ("GET", "/api/v1/targets".into(), None, "targets:read", false),
        (
            "GET",
            "/api/v1/targets/local".into(),
            None,
            "targets:read",
            false,
        ),
        (
            "POST",
            "/api/v1/targets".into(),
            Some(target_body),
            "targets:write",
            false,
        ),
        (
            "POST",
            "/api/v1/targets/local/validate".into(),
            None,
            "targets:write",
            false,
        ),
        (
            "POST",
            "/api/v1/targets/local/rebuild".into(),
            None,
            "targets:write",
            false,
        ),
        (
            "PUT",
            "/api/v1/targets/local".into(),
            Some(json!({ "default": true })),
            "targets:write",
            false,
        ),
        (
            "DELETE",
            "/api/v1/targets/nope".into(),
            None,
            "targets:write",
            false,
        ),
        ("GET", "/api/v1/tokens".into(), None, "tokens:admin", false),
        (
            "POST",
            "/api/v1/tokens".into(),
            Some(token_body),
            "tokens:admin",
            false,
        ),
        (
            "DELETE",
            "/api/v1/tokens/tok-x".into(),
            None,
            "tokens:admin",
            false,
        ),
        ("GET", "/api/v1/users".into(), None, "tokens:admin", false),
        (
            "POST",
            "/api/v1/users".into(),
            Some(
                json!({ "name": "u1", "password": "long enough password", "scopes": ["backups:read"] }),
            ),
            "tokens:admin",
            false,
        ),
        (
            "DELETE",
            "/api/v1/users/usr-x".into(),
            None,
            "tokens:admin",
            false,
        ),
        (
            "POST",
            format!("/api/v1/backups/{id}/exports"),
            Some(export_body),
            "export",
            true,
        ),
        (
            "GET",
            format!("/api/v1/backups/{id}/exports"),
            None,
            "export",
            false,
        ),
        (
            "GET",
            format!("/api/v1/exports/{eid}"),
            None,
            "export",
            true,
        ),
        (
            "GET",
            format!("/api/v1/exports/{eid}/download"),
            None,
            "export",
            true,
        ),
        (
            "DELETE",
            format!("/api/v1/exports/{eid}"),
            None,
            "export",
            true,
        ),
        (
            "POST",
            "/api/v1/restores".into(),
            Some(json!({})),
            "restore",
            false,
        ),
        (
            "POST",
            "/api/v1/restore".into(),
            Some(json!({})),
            "restore",
            false,
        ),
        (
            "GET",
            "/api/v1/components/files/backup".into(),
            None,
            "export",
            true,
        ),
        (
            "POST",
            "/api/v1/components/files/restore".into(),
            Some(json!({})),
            "restore",
            true,
        ),
        // Last: it removes the backup the others use.
        (
            "DELETE",
            format!("/api/v1/backups/{id}"),
            None,
            "backups:delete",
            false,
        ),
    ];
    let all: Vec<&str> = vec![
        "backups:read",
        "backups:write",
        "backups:delete",
        "restore",
        "export",
        "targets:read",
        "targets:write",
        "tokens:admin",
        "sensitive",
    ];
    let expired = srv.token(&all, None, Some(0));
    let (code, v) = srv.admin(
        "POST",
        "/api/v1/tokens",
        Some(&json!({ "name": "to revoke", "scopes": all })),
    );
    assert_eq!(code, 201, "{v}");
    let revoked = v["secret"].as_str().unwrap().to_owned();
    let revoked_id = v["token"]["id"].as_str().unwrap().to_owned();
    let (code, _) = srv.admin("DELETE", &format!("/api/v1/tokens/{revoked_id}"), None);
    assert_eq!(code, 204);
    let unknown = format!("cft_{}", "0".repeat(64));
    for (method, path, body, scope, scoped) in &endpoints {
        let body = body.as_ref();
        let what = format!("{method} {path}");
        for (auth, expect) in [
            (None, "no credentials"),
            (
                Some("Basic dXNlcjpwYXNz".to_owned()),
                "malformed Authorization",
            ),
            (Some("Bearer not-a-token".to_owned()), "malformed token"),
            (Some(format!("Bearer {unknown}")), "unknown token"),
            (Some(format!("Bearer {expired}")), "expired"),
            (Some(format!("Bearer pat:{revoked}")), "revoked"),
        ] {
            let (code, v) = srv.call_raw(method, path, auth.as_deref(), body);
            assert_eq!(code, 401, "{what} with {auth:?}: {v}");
            assert_eq!(v["error"], "unauthorized", "{what}: {v}");
            assert!(
                v["message"].as_str().unwrap().contains(expect),
                "{what}: {v}"
            );
        }
        // Every scope but the one needed.
        let others: Vec<&str> = all.iter().copied().filter(|s| s != scope).collect();
        let t = srv.token(&others, None, None);
        let (code, v) = srv.call(method, path, Some(&t), body);
        assert_eq!(code, 403, "{what} without {scope}: {v}");
        assert!(
            v["message"].as_str().unwrap().contains(scope),
            "{what}: {v}"
        );
        if *scoped {
            let t = srv.token(&all, Some(&["other"]), None);
            let (code, v) = srv.call(method, path, Some(&t), body);
            assert_eq!(code, 403, "{what} for another component: {v}");
            assert!(
                v["message"]
                    .as_str()
                    .unwrap()
                    .contains("limited to components other"),
                "{v}"
            );
        }
        // With exactly the scope, the request gets past authorization.
        let t = srv.token(&[scope], None, None);
        let (code, v) = srv.call(method, path, Some(&t), body);
        assert!(
            code != 401 && code != 403,
            "{what} with {scope}: {code} {v}"
        );
    }
}

#[test]
fn conflicts_cancel_and_restart_leave_clear_states_and_a_valid_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        "[[components]]\nname = \"slow\"\nkind = \"command\"\nbackup = [\"sh\", \"-c\", \"head -c 20000000 /dev/urandom; sleep 60; echo end\"]\n\
         restore = [\"sh\", \"-c\", \"cat > /dev/null\"]\n",
    );
    let srv = Server::start(&config);
    let password = srv.repo_password.clone().expect("password");
    let repo = tmp.path().join("data/repository");

    let (code, v) = srv.admin(
        "POST",
        "/api/v1/backups",
        Some(&json!({ "label": "first" })),
    );
    assert_eq!(code, 202, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    // The same component twice at once, and deleting a running backup: 409.
    let (code, v) = srv.admin(
        "POST",
        "/api/v1/backups",
        Some(&json!({ "label": "second" })),
    );
    assert_eq!(code, 409, "{v}");
    assert!(v["message"].as_str().unwrap().contains(&id), "{v}");
    let (code, v) = srv.admin("DELETE", &format!("/api/v1/backups/{id}"), None);
    assert_eq!(code, 409, "{v}");

    // While it runs, show says how far it has got.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, b) = srv.admin("GET", &format!("/api/v1/backups/{id}"), None);
        let done = b["components"][0]["progress"]["bytes_done"]
            .as_u64()
            .unwrap_or(0);
        if done > 0 {
            assert!(done <= 20_000_000, "{b}");
            break;
        }
        assert!(Instant::now() < deadline, "no progress shown: {b}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Cancel: ERROR "cancelled", promptly, nothing kept.
    let (code, v) = srv.admin("POST", &format!("/api/v1/backups/{id}/cancel"), None);
    assert_eq!(code, 202, "{v}");
    let b = srv.wait_until_done(&format!("/api/v1/backups/{id}"), "BACKING_UP", 20);
    assert_eq!(b["status"], "ERROR", "{b}");
    assert_eq!(b["error"], "cancelled", "{b}");
    assert_eq!(b["components"][0]["error"], "cancelled", "{b}");
    let (code, v) = srv.admin("POST", &format!("/api/v1/backups/{id}/cancel"), None);
    assert_eq!(code, 409, "not running any more: {v}");
    let snaps =
        coffer_testkit::restic(&repo, &password, &["snapshots", "--json"]).unwrap_or_default();
    assert_eq!(snaps.trim(), "[]", "a cancelled backup keeps nothing");
    let (code, v) = srv.admin(
        "POST",
        &format!("/api/v1/backups/{id}/restore"),
        Some(&json!({})),
    );
    assert_eq!(code, 409, "an ERROR backup is not restored: {v}");

    // A crash in the middle of a backup: after restart it is ERROR, never READY.
    let (code, v) = srv.admin(
        "POST",
        "/api/v1/backups",
        Some(&json!({ "label": "crash" })),
    );
    assert_eq!(code, 202, "{v}");
    let crashed = v["id"].as_str().unwrap().to_owned();
    std::thread::sleep(Duration::from_millis(800));
    let admin = srv.admin.clone();
    srv.kill9();
    let mut srv = Server::start(&config);
    assert!(
        srv.repo_password.is_none(),
        "the password is shown only at first start"
    );
    srv.admin = admin;
    let (code, b) = srv.admin("GET", &format!("/api/v1/backups/{crashed}"), None);
    assert_eq!(code, 200, "{b}");
    assert_eq!(b["status"], "ERROR", "{b}");
    assert_eq!(b["error"], "interrupted by restart", "{b}");
    assert_eq!(b["components"][0]["status"], "ERROR", "{b}");
    restic_check(&repo, &password);
}

#[test]
fn targets_are_validated_sealed_and_attached_read_only() {
    let tmp = tempfile::tempdir().unwrap();
    let files = small_dir(tmp.path());
    let huge = tmp.path().join("huge");
    std::fs::create_dir_all(&huge).unwrap();
    // 8 TiB, sparse: the preflight counts apparent sizes.
    std::fs::File::create(huge.join("big"))
        .unwrap()
        .set_len(8 << 40)
        .unwrap();
    let config = write_config(
        tmp.path(),
        &format!(
            "[[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n\n\
             [[components]]\nname = \"huge\"\nkind = \"files\"\npath = \"{}\"\n",
            files.display(),
            huge.display()
        ),
    );
    let srv = Server::start(&config);
    let password = srv.repo_password.clone().expect("password");

    // Preflight: 507 with both numbers, nothing recorded.
    let (code, v) = srv.admin(
        "POST",
        "/api/v1/backups",
        Some(&json!({ "label": "big", "components": ["huge"] })),
    );
    assert_eq!(code, 507, "{v}");
    assert_eq!(v["error"], "insufficient_storage");
    let m = v["message"].as_str().unwrap();
    assert!(m.contains("bytes free") && m.contains("may need"), "{m}");
    let (_, list) = srv.admin("GET", "/api/v1/backups", None);
    assert!(list["backups"].as_array().unwrap().is_empty());

    // A target that fails Validate cannot be saved; the report says why.
    let bad = json!({ "name": "bad", "spec": { "kind": "local", "path": "/dev/null/repo" } });
    let (code, v) = srv.admin("POST", "/api/v1/targets", Some(&bad));
    assert_eq!(code, 422, "{v}");
    assert_eq!(v["error"], "validation_failed");
    assert!(
        v["validation"]["steps"]
            .as_array()
            .is_some_and(|s| !s.is_empty()),
        "{v}"
    );
    let (code, _) = srv.admin("GET", "/api/v1/targets/bad", None);
    assert_eq!(code, 404);
    let (code, v) = srv.admin(
        "POST",
        "/api/v1/targets",
        Some(&json!({ "name": "x", "spec": { "kind": "tape" } })),
    );
    assert_eq!(code, 422, "{v}");

    // A new repository: the generated password is returned once.
    let second = tmp.path().join("second");
    let body = json!({ "name": "second", "spec": { "kind": "local", "path": second } });
    let (code, v) = srv.admin("POST", "/api/v1/targets", Some(&body));
    assert_eq!(code, 201, "{v}");
    let pw2 = v["repository_password"]
        .as_str()
        .expect("generated password")
        .to_owned();
    assert!(v["notice"].as_str().unwrap().contains("offline"), "{v}");
    assert_eq!(v["target"]["mode"], "own");
    assert_eq!(v["validation"]["ok"], true);
    let (_, shown) = srv.admin("GET", "/api/v1/targets/second", None);
    assert!(
        !shown.to_string().contains(&pw2),
        "the password is never returned again: {shown}"
    );
    let (code, v) = srv.admin("POST", "/api/v1/targets", Some(&body));
    assert_eq!(code, 409, "same name: {v}");

    // Backups go where asked.
    let b =
        srv.backup(&json!({ "label": "to-second", "components": ["files"], "target": "second" }));
    assert_eq!(b["status"], "READY", "{b}");
    assert_eq!(b["target"], "second");
    restic_check(&second, &pw2);

    // The default repository attached a second time (as another installation
    // would): read only unless taken over.
    let repo = tmp.path().join("data/repository");
    let attach = json!({ "name": "shared", "spec": { "kind": "local", "path": repo } });
    let (code, v) = srv.admin("POST", "/api/v1/targets", Some(&attach));
    assert_eq!(code, 422, "an existing repository needs its password: {v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("repository_password"),
        "{v}"
    );
    let mut with_pw = attach.clone();
    with_pw["repository_password"] = json!("wrong password");
    let (code, v) = srv.admin("POST", "/api/v1/targets", Some(&with_pw));
    assert_eq!(code, 422, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("wrong password"),
        "{v}"
    );
    with_pw["repository_password"] = json!(password);
    let (code, v) = srv.admin("POST", "/api/v1/targets", Some(&with_pw));
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["target"]["mode"], "attach");
    assert!(v["repository_password"].is_null());
    let (code, v) = srv.admin(
        "POST",
        "/api/v1/backups",
        Some(&json!({ "label": "nope", "components": ["files"], "target": "shared" })),
    );
    assert_eq!(code, 409, "{v}");
    assert!(v["message"].as_str().unwrap().contains("read-only"), "{v}");
    let (code, v) = srv.admin(
        "PUT",
        "/api/v1/targets/shared",
        Some(&json!({ "mode": "own" })),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["mode"], "own");

    // New settings must reach the same repository and keep the kind.
    let moved = tmp.path().join("second-moved");
    let (code, v) = srv.admin(
        "PUT",
        "/api/v1/targets/second",
        Some(&json!({ "spec": { "kind": "local", "path": moved } })),
    );
    assert_eq!(
        code, 422,
        "another (empty) place is not this repository: {v}"
    );
    assert!(
        v["message"].as_str().unwrap().contains("do not reach"),
        "{v}"
    );
    // (Validate left its empty probe directories there; move to a fresh path.)
    let moved = tmp.path().join("second-moved-2");
    std::fs::rename(&second, &moved).unwrap();
    let (code, v) = srv.admin(
        "PUT",
        "/api/v1/targets/second",
        Some(&json!({ "spec": { "kind": "local", "path": moved } })),
    );
    assert_eq!(code, 200, "the repository moved there: {v}");
    assert_eq!(v["spec"]["path"], json!(moved));
    let (code, v) = srv.admin(
        "PUT",
        "/api/v1/targets/second",
        Some(&json!({ "spec": { "kind": "local", "path": "/dev/null/x" } })),
    );
    assert_eq!(code, 422, "{v}");
    assert_eq!(v["error"], "validation_failed", "{v}");
    let b =
        srv.backup(&json!({ "label": "after-move", "components": ["files"], "target": "second" }));
    assert_eq!(b["status"], "READY", "{b}");
    restic_check(&moved, &pw2);

    // Default changes; a target with backups cannot be removed.
    let (code, v) = srv.admin(
        "PUT",
        "/api/v1/targets/second",
        Some(&json!({ "default": true })),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["default"], true);
    let (code, v) = srv.admin("DELETE", "/api/v1/targets/second", None);
    assert_eq!(code, 409, "{v}");
    let (code, v) = srv.admin("POST", "/api/v1/targets/second/validate", None);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["ok"], true, "{v}");
}

#[test]
fn s3_target_secrets_are_sealed_in_the_catalog_and_never_returned() {
    let (Some(endpoint), Some(bucket), Some(access), Some(secret)) = (
        service_setting("COFFER_TEST_S3_ENDPOINT"),
        service_setting("COFFER_TEST_S3_BUCKET"),
        service_setting("COFFER_TEST_S3_ACCESS_KEY"),
        service_setting("COFFER_TEST_S3_SECRET_KEY"),
    ) else {
        return;
    };
    let region = service_setting("COFFER_TEST_S3_REGION").unwrap_or_else(|| "garage".into());
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "");
    let srv = Server::start(&config);
    let prefix = format!("server-{}", std::process::id());
    let spec = json!({ "kind": "s3", "endpoint": endpoint, "region": region, "bucket": bucket,
        "prefix": prefix, "access_key": access, "secret_key": secret });
    let (code, v) = srv.admin(
        "POST",
        "/api/v1/targets",
        Some(&json!({ "name": "offsite", "spec": spec })),
    );
    assert_eq!(code, 201, "{v}");
    assert!(!v.to_string().contains(&secret), "{v}");
    assert_eq!(v["target"]["spec"]["secret_key"]["literal"], "***", "{v}");
    let (_, all) = srv.admin("GET", "/api/v1/targets", None);
    assert!(!all.to_string().contains(&secret));
    // Only the local target → a same-disk warning; with S3 added, none.
    let (_, health) = srv.call("GET", "/healthz", None, None);
    assert!(
        !health["warnings"].to_string().contains("not disaster-safe"),
        "{health}"
    );
    drop(srv);
    let catalog = std::fs::read(tmp.path().join("data/catalog.sqlite")).unwrap();
    let wal = std::fs::read(tmp.path().join("data/catalog.sqlite-wal")).unwrap_or_default();
    for bytes in [catalog, wal] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the secret key is stored in clear text"
        );
    }
}

#[test]
fn hooks_and_timeouts_fail_jobs_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let stop = tmp.path().join("refuse");
    let resumed = tmp.path().join("resumed");
    let config = write_config_with(
        tmp.path(),
        "component_timeout_secs = 2\n",
        &format!(
            "[hooks]\npre_backup = [\"test ! -e {stop}\"]\npost_backup = [\"touch {resumed}\"]\n\
             pre_restore = [\"echo no; exit 4\"]\n\n\
             [[components]]\nname = \"quick\"\nkind = \"command\"\nbackup = [\"echo\", \"quick\"]\n\
             restore = [\"sh\", \"-c\", \"cat > /dev/null\"]\n\n\
             [[components]]\nname = \"stuck\"\nkind = \"command\"\nbackup = [\"sleep\", \"60\"]\n",
            stop = stop.display(),
            resumed = resumed.display()
        ),
    );
    let srv = Server::start(&config);

    // A component over its time limit is stopped and fails; the other is READY.
    let b = srv.backup(&json!({ "label": "limits" }));
    assert_eq!(b["status"], "ERROR", "{b}");
    let comps = b["components"].as_array().unwrap();
    let stuck = comps.iter().find(|c| c["name"] == "stuck").unwrap();
    assert!(
        stuck["error"]
            .as_str()
            .unwrap()
            .contains("timed out after 2 s"),
        "{b}"
    );
    let quick = comps.iter().find(|c| c["name"] == "quick").unwrap();
    assert_eq!(quick["status"], "READY", "{b}");
    assert!(b["error"].as_str().unwrap().contains("stuck"), "{b}");
    assert!(resumed.exists(), "the post-backup hook ran");

    // A failing pre-backup hook: nothing runs, the post hook still resumes.
    std::fs::remove_file(&resumed).unwrap();
    std::fs::write(&stop, b"").unwrap();
    let b = srv.backup(&json!({ "label": "refused", "components": ["quick"] }));
    assert_eq!(b["status"], "ERROR", "{b}");
    assert!(
        b["error"].as_str().unwrap().contains("pre-backup hook"),
        "{b}"
    );
    assert!(b["components"][0]["snapshot_id"].is_null(), "{b}");
    assert!(
        resumed.exists(),
        "the post-backup hook ran after the failed pre-hook"
    );

    // A failing pre-restore hook: nothing restored, ERROR, output in the log.
    std::fs::remove_file(&stop).unwrap();
    let b = srv.backup(&json!({ "label": "okay", "components": ["quick"] }));
    let ok = b["id"].as_str().unwrap().to_owned();
    assert_eq!(b["status"], "READY", "{b}");
    let (code, v) = srv.admin(
        "POST",
        &format!("/api/v1/backups/{ok}/restore"),
        Some(&json!({})),
    );
    assert_eq!(code, 202, "{v}");
    let rid = v["id"].as_str().unwrap().to_owned();
    let r = srv.wait_until_done(&format!("/api/v1/restores/{rid}"), "RESTORING", 30);
    assert_eq!(r["status"], "ERROR", "{r}");
    assert!(
        r["error"].as_str().unwrap().contains("pre-restore hook"),
        "{r}"
    );
    let (_, log) = srv.admin("GET", &format!("/api/v1/restores/{rid}/log"), None);
    assert!(log["lines"].to_string().contains("stdout: no"), "{log}");
}

#[test]
fn a_fresh_server_rebuilds_its_catalog_from_an_attached_target() {
    let tmp = tempfile::tempdir().unwrap();
    let restored = tmp.path().join("restored.txt");
    let components = format!(
        "[[components]]\nname = \"quick\"\nkind = \"command\"\nbackup = [\"echo\", \"hello\"]\n\
         restore = [\"sh\", \"-c\", \"cat > {}\"]\n\n\
         [[components]]\nname = \"broken\"\nkind = \"command\"\nbackup = [\"sh\", \"-c\", \"echo partial; exit 3\"]\n",
        restored.display()
    );
    let a_dir = tmp.path().join("a");
    std::fs::create_dir_all(&a_dir).unwrap();
    let a = Server::start(&write_config(&a_dir, &components));
    let password = a.repo_password.clone().expect("password");
    // One incomplete backup (a component failed) and one complete.
    let b = a.backup(&json!({ "label": "both" }));
    let both = b["id"].as_str().unwrap().to_owned();
    assert_eq!(b["status"], "ERROR", "{b}");
    let b = a.backup(&json!({ "label": "quick", "components": ["quick"] }));
    let quick = b["id"].as_str().unwrap().to_owned();
    assert_eq!(b["status"], "READY", "{b}");
    drop(a);

    // A new installation: its own data directory, the old target attached.
    let b_dir = tmp.path().join("b");
    std::fs::create_dir_all(&b_dir).unwrap();
    let b_config = write_config(&b_dir, &components);
    let b = Server::start(&b_config);
    let body = json!({ "name": "old", "spec": { "kind": "local", "path": a_dir.join("data/repository") },
        "repository_password": password });
    let (code, v) = b.admin("POST", "/api/v1/targets", Some(&body));
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["target"]["mode"], "attach");
    let r = &v["rebuilt"];
    assert_eq!(
        (r["found"].as_u64(), r["added"].as_u64()),
        (Some(2), Some(2)),
        "{v}"
    );
    assert_eq!(
        (r["complete"].as_u64(), r["incomplete"].as_u64()),
        (Some(1), Some(1)),
        "{v}"
    );

    let (_, shown) = b.admin("GET", &format!("/api/v1/backups/{both}"), None);
    assert_eq!(shown["status"], "ERROR", "{shown}");
    assert!(
        shown["error"].as_str().unwrap().contains("1 of 2"),
        "{shown}"
    );
    let (_, shown) = b.admin("GET", &format!("/api/v1/backups/{quick}"), None);
    assert_eq!(shown["status"], "READY", "{shown}");
    assert_eq!(shown["target"], "old");
    assert_eq!(shown["components"][0]["kind"], "command", "{shown}");

    // Restore from the attached target into this installation.
    let (code, v) = b.admin(
        "POST",
        &format!("/api/v1/backups/{quick}/restore"),
        Some(&json!({})),
    );
    assert_eq!(code, 202, "{v}");
    let rid = v["id"].as_str().unwrap().to_owned();
    let r = b.wait_until_done(&format!("/api/v1/restores/{rid}"), "RESTORING", 60);
    assert_eq!(r["status"], "READY", "{r}");
    assert_eq!(std::fs::read_to_string(&restored).unwrap(), "hello\n");
    // Attached read only: no deletes.
    let (code, v) = b.admin("DELETE", &format!("/api/v1/backups/{quick}"), None);
    assert_eq!(code, 409, "{v}");
    drop(b);

    // Offline, a second rebuild finds nothing new.
    let out = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["catalog", "rebuild", "--json", "--config"])
        .arg(&b_config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports: Value = serde_json::from_slice(&out.stdout).unwrap();
    let old = reports
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["target"] == "old")
        .unwrap();
    assert_eq!(old["already_known"], 2, "{reports}");
    assert_eq!(old["added"], 0, "{reports}");
}

#[test]
fn the_api_is_served_over_tls_when_configured() {
    // The test CA and its 127.0.0.1 certificate from scripts/services.sh (made for FTPS).
    let Some(ca) = service_setting("COFFER_TEST_FTPS_CA") else {
        return;
    };
    let certs = Path::new(&ca).parent().unwrap().to_path_buf();
    let tmp = tempfile::tempdir().unwrap();
    let tls = format!(
        "[server.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        certs.join("cert.pem").display(),
        certs.join("key.pem").display()
    );
    let config = write_config_with(tmp.path(), &tls, "");
    let srv = Server::start(&config);
    assert!(srv.url.starts_with("https://127.0.0.1:"), "{}", srv.url);
    let curl = |args: &[&str]| {
        Command::new("curl")
            .args(["-sS", "--max-time", "10"])
            .args(args)
            .output()
            .unwrap()
    };
    let ok = curl(&["--cacert", &ca, &format!("{}/healthz", srv.url)]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let health: Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(health["status"], "ok");
    let auth = format!("Authorization: Bearer {}", srv.admin);
    let listed = curl(&[
        "-f",
        "--cacert",
        &ca,
        "-H",
        &auth,
        &format!("{}/api/v1/backups", srv.url),
    ]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    // Plain HTTP on the TLS port gets nothing useful; an unknown CA is refused.
    let plain = curl(&["-f", &srv.url.replacen("https", "http", 1)]);
    assert!(!plain.status.success());
    let untrusted = curl(&["-f", &format!("{}/healthz", srv.url)]);
    assert!(!untrusted.status.success());

    // A missing key file stops the server at start with the setting named.
    let bad = write_config_with(
        tmp.path(),
        "[server.tls]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n",
        "",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["server", "--listen", "127.0.0.1:0", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("server.tls") && err.contains("/nonexistent/cert.pem"),
        "{err}"
    );
}

#[test]
fn users_log_in_for_short_lived_tokens_with_their_own_scopes() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config_with(tmp.path(), "login_lifetime_secs = 2\n", "");
    let srv = Server::start(&config);
    // Created through the API…
    let body =
        json!({ "name": "ada", "password": "correct horse battery", "scopes": ["backups:read"] });
    let (code, v) = srv.admin("POST", "/api/v1/users", Some(&body));
    assert_eq!(code, 201, "{v}");
    assert!(!v.to_string().contains("correct horse"), "{v}");
    let ada_id = v["id"].as_str().unwrap().to_owned();
    let (code, v) = srv.admin("POST", "/api/v1/users", Some(&body));
    assert_eq!(code, 409, "{v}");
    let mut short = body.clone();
    short["name"] = json!("bob");
    short["password"] = json!("short");
    let (code, v) = srv.admin("POST", "/api/v1/users", Some(&short));
    assert_eq!(code, 422, "{v}");
    // …and offline with the CLI (password from a file).
    let pw_file = tmp.path().join("grace.pw");
    std::fs::write(&pw_file, "another long password\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["user", "--json", "--config"])
        .arg(&config)
        .args([
            "add",
            "--name",
            "grace",
            "--scope",
            "tokens:admin",
            "--password-file",
        ])
        .arg(&pw_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let login = |name: &str, pw: &str| {
        srv.call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(&json!({ "name": name, "password": pw })),
        )
    };
    for (name, pw) in [
        ("ada", "wrong password here"),
        ("nobody", "correct horse battery"),
    ] {
        let (code, v) = login(name, pw);
        assert_eq!(code, 401, "{v}");
        assert_eq!(v["message"], "wrong user name or password");
    }
    let (code, v) = login("ada", "correct horse battery");
    assert_eq!(code, 200, "{v}");
    let jwt = v["token"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer jwt:{jwt}");
    let (code, v) = srv.call_raw("GET", "/api/v1/backups", Some(&bearer), None);
    assert_eq!(code, 200, "{v}");
    let (code, v) = srv.call_raw(
        "POST",
        "/api/v1/backups",
        Some(&bearer),
        Some(&json!({ "label": "nope" })),
    );
    assert_eq!(code, 403, "ada may only read: {v}");
    let (code, v) = srv.call_raw(
        "GET",
        "/api/v1/backups",
        Some("Bearer jwt:eyJhbGciOiJIUzI1NiJ9.e30.x"),
        None,
    );
    assert_eq!(code, 401, "{v}");
    // grace (tokens:admin, created offline) disables ada: her token stops working at once.
    let (code, v) = login("grace", "another long password");
    assert_eq!(code, 200, "{v}");
    let grace = format!("Bearer jwt:{}", v["token"].as_str().unwrap());
    let (code, users) = srv.call_raw("GET", "/api/v1/users", Some(&grace), None);
    assert_eq!(code, 200, "{users}");
    assert_eq!(users.as_array().unwrap().len(), 2);
    let (code, _) = srv.call_raw(
        "DELETE",
        &format!("/api/v1/users/{ada_id}"),
        Some(&grace),
        None,
    );
    assert_eq!(code, 204);
    let (code, v) = srv.call_raw("GET", "/api/v1/backups", Some(&bearer), None);
    assert_eq!(code, 401, "{v}");
    assert!(v["message"].as_str().unwrap().contains("disabled"), "{v}");
    // Login tokens expire (login_lifetime_secs = 2).
    std::thread::sleep(Duration::from_millis(3100));
    let (code, v) = srv.call_raw("GET", "/api/v1/users", Some(&grace), None);
    assert_eq!(code, 401, "{v}");
    assert!(v["message"].as_str().unwrap().contains("expired"), "{v}");
}

#[test]
fn sensitive_components_are_sealed_and_restore_only_with_their_identity() {
    let tmp = tempfile::tempdir().unwrap();
    let files = small_dir(tmp.path());
    let keys = tmp.path().join("keys");
    build_rich_tree(&keys);
    let db = tmp.path().join("vault.sqlite");
    sqlite_db(&db, 50);
    let identity = coffer_engine::AgeIdentity::generate();
    let key_file = format!(
        "# created: by the test\n# public key: {}\n{}\n",
        identity.recipient(),
        identity.secret()
    );
    let config = write_config(
        tmp.path(),
        &format!(
            "[sensitive]\nrecipients = [\"{}\"]\n\n\
             [[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n\n\
             [[components]]\nname = \"keys\"\nkind = \"files\"\nsensitive = true\npath = \"{}\"\n\n\
             [[components]]\nname = \"vault\"\nkind = \"sqlite\"\nsensitive = true\npath = \"{}\"\n",
            identity.recipient(),
            files.display(),
            keys.display(),
            db.display()
        ),
    );
    let srv = Server::start(&config);

    // Without the `sensitive` scope a token cannot back them up.
    let plain = srv.token(&["backups:write", "backups:read", "restore"], None, None);
    let (code, v) = srv.call(
        "POST",
        "/api/v1/backups",
        Some(&plain),
        Some(&json!({ "label": "nope", "components": ["keys"] })),
    );
    assert_eq!(code, 403, "{v}");

    let b = srv.backup(&json!({ "label": "sealed" }));
    assert_eq!(b["status"], "READY", "{b:#}");
    let id = b["id"].as_str().unwrap().to_owned();

    // In the repository: age files, no plaintext; restic checks it.
    let repo = tmp.path().join("data/repository");
    let pw = srv.repo_password.clone().expect("repository password");
    restic_check(&repo, &pw);
    if let Some(out) = coffer_testkit::restic(&repo, &pw, &["snapshots", "--json"]) {
        assert!(
            out.contains("keys.tar.age") && out.contains("vault.sqlite.age"),
            "{out}"
        );
        assert!(out.contains("coffer-sealed=age"), "{out}");
    }
    if let Some(bytes) = coffer_testkit::restic_bytes(
        &repo,
        &pw,
        &[
            "dump",
            "latest",
            "/keys.tar.age",
            "--tag",
            "coffer-component=keys",
        ],
    ) {
        assert!(bytes.starts_with(b"age-encryption.org/v1"));
        assert!(!bytes.windows(12).any(|w| w == b"hello coffer"));
    }

    let keys_to = tmp.path().join("keys-restored");
    let db_to = tmp.path().join("vault-restored.sqlite");
    let overrides = json!({ "keys": { "path": keys_to }, "vault": { "path": db_to } });
    let restore = |token: &str, body: Value| {
        srv.call(
            "POST",
            &format!("/api/v1/backups/{id}/restore"),
            Some(token),
            Some(&body),
        )
    };
    // No identity, a wrong one, a malformed one: 422, nothing restored.
    let (code, v) = restore(&srv.admin, json!({ "overrides": overrides }));
    assert_eq!(code, 422, "{v}");
    let msg = v["message"].as_str().unwrap();
    assert!(
        msg.contains("keys") && msg.contains("vault") && msg.contains("age_identity"),
        "{v}"
    );
    let wrong = coffer_engine::AgeIdentity::generate();
    let (code, v) = restore(
        &srv.admin,
        json!({ "overrides": overrides, "age_identity": wrong.secret() }),
    );
    assert_eq!(code, 422, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("is not one this component was sealed to"),
        "{v}"
    );
    let (code, v) = restore(
        &srv.admin,
        json!({ "overrides": overrides, "age_identity": "AGE-SECRET-KEY-1NOPE" }),
    );
    assert_eq!(code, 422, "{v}");
    assert!(
        !v.to_string().contains("NOPE"),
        "the identity is not echoed: {v}"
    );
    // The right identity but a token without `sensitive`: 403.
    let (code, v) = restore(
        &plain,
        json!({ "overrides": { "keys": { "path": keys_to } }, "age_identity": key_file,
            "components": ["keys"] }),
    );
    assert_eq!(code, 403, "{v}");
    assert!(!keys_to.exists() && !db_to.exists(), "nothing was restored");

    // The identity file's text opens both.
    let (code, v) = restore(
        &srv.admin,
        json!({ "overrides": overrides, "age_identity": key_file, "components": ["keys", "vault"] }),
    );
    assert_eq!(code, 202, "{v}");
    let r = srv.wait_until_done(
        &format!("/api/v1/restores/{}", v["id"].as_str().unwrap()),
        "RESTORING",
        120,
    );
    assert_eq!(r["status"], "READY", "{r:#}");
    assert_same_tree(&keys, &keys_to);
    assert_eq!(sqlite_rows(&db_to), sqlite_rows(&db));

    // The secret key is in neither the catalog nor the job logs.
    drop(srv);
    let secret = identity.secret();
    for f in ["catalog.sqlite", "catalog.sqlite-wal"] {
        let bytes = std::fs::read(tmp.path().join("data").join(f)).unwrap_or_default();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the age identity was stored in {f}"
        );
    }
}

// ------------------------------------------------------------------ exports

impl Server {
    /// GET `path` as raw bytes, optionally with a `Range` header: status,
    /// the headers asked for, body.
    fn download(
        &self,
        path: &str,
        range: Option<&str>,
        want: &[&str],
    ) -> (u16, Vec<Option<String>>, Vec<u8>) {
        let mut req = self
            .agent
            .get(&format!("{}{path}", self.url))
            .header("Authorization", &format!("Bearer {}", self.admin));
        if let Some(r) = range {
            req = req.header("Range", r);
        }
        let mut resp = req.call().unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = resp.status().as_u16();
        let headers = want
            .iter()
            .map(|h| {
                resp.headers()
                    .get(*h)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            })
            .collect();
        let body = resp
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .unwrap_or_default();
        (status, headers, body)
    }

    /// Starts an export (202 expected) and waits until it is READY.
    fn export(&self, backup: &str, body: &Value) -> Value {
        let (code, v) = self.admin(
            "POST",
            &format!("/api/v1/backups/{backup}/exports"),
            Some(body),
        );
        assert_eq!(code, 202, "{v}");
        let e = self.wait_until_done(
            &format!("/api/v1/exports/{}", v["id"].as_str().unwrap()),
            "EXPORTING",
            120,
        );
        assert_eq!(e["status"], "READY", "{e:#}");
        e
    }
}

/// Runs `program` with `args`, panicking with its output unless it succeeds.
fn run_tool(program: &str, args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {program}: {e}"));
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out.stdout
}

/// Opens an export with standard tools only: `age -d` (the passphrase typed
/// into a pseudo-terminal by `script`, since age reads it only from a
/// terminal — or an identity file), `zstd -d`, `tar x`. Returns the directory.
fn open_with_standard_tools(file: &Path, secret: Result<&str, &Path>, into: &Path) -> Value {
    std::fs::create_dir_all(into).unwrap();
    let plain = into.join("export.tar.zst");
    match secret {
        Ok(passphrase) => {
            let cmd = format!("age -d -o '{}' '{}'", plain.display(), file.display());
            let typed = format!("{passphrase}\n");
            run_tool(
                "script",
                &["-qec", &cmd, "/dev/null"],
                Some(typed.as_bytes()),
            );
        }
        Err(identity) => {
            run_tool(
                "age",
                &[
                    "-d",
                    "-i",
                    identity.to_str().unwrap(),
                    "-o",
                    plain.to_str().unwrap(),
                    file.to_str().unwrap(),
                ],
                None,
            );
        }
    }
    let tar = into.join("export.tar");
    run_tool(
        "zstd",
        &[
            "-q",
            "-d",
            plain.to_str().unwrap(),
            "-o",
            tar.to_str().unwrap(),
        ],
        None,
    );
    run_tool(
        "tar",
        &[
            "-x",
            "-f",
            tar.to_str().unwrap(),
            "-C",
            into.to_str().unwrap(),
        ],
        None,
    );
    serde_json::from_slice(&std::fs::read(into.join("manifest.json")).unwrap()).unwrap()
}

#[test]
fn exports_open_with_standard_tools_and_keep_sensitive_components_apart() {
    if !coffer_testkit::require_tool("age") || !coffer_testkit::require_tool("script") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let files = tmp.path().join("files");
    build_rich_tree(&files);
    let db = tmp.path().join("app.sqlite");
    sqlite_db(&db, 200);
    let keys = tmp.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::write(keys.join("signing.pem"), b"-----BEGIN PRIVATE KEY-----").unwrap();
    let identity = coffer_engine::AgeIdentity::generate();
    let id_file = tmp.path().join("identity.txt");
    std::fs::write(&id_file, format!("{}\n", identity.secret())).unwrap();
    let config = write_config(
        tmp.path(),
        &format!(
            "[sensitive]\nrecipients = [\"{}\"]\n\n\
             [[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n\n\
             [[components]]\nname = \"appdb\"\nkind = \"sqlite\"\npath = \"{}\"\n\n\
             [[components]]\nname = \"keys\"\nkind = \"files\"\nsensitive = true\npath = \"{}\"\n",
            identity.recipient(),
            files.display(),
            db.display(),
            keys.display()
        ),
    );
    let srv = Server::start(&config);
    let b = srv.backup(&json!({ "label": "nightly" }));
    assert_eq!(b["status"], "READY", "{b:#}");
    let id = b["id"].as_str().unwrap().to_owned();

    // Bad requests: no protection, both, a short password, an unknown backup.
    for (body, code) in [
        (json!({}), 422),
        (
            json!({ "password": "correct horse battery", "age_recipient": identity.recipient() }),
            422,
        ),
        (json!({ "password": "short" }), 422),
        (json!({ "age_recipient": "age1nope" }), 422),
    ] {
        let (c, v) = srv.admin(
            "POST",
            &format!("/api/v1/backups/{id}/exports"),
            Some(&body),
        );
        assert_eq!(c, code, "{body}: {v}");
    }
    let (c, _) = srv.admin(
        "POST",
        "/api/v1/backups/nope-1/exports",
        Some(&json!({ "password": "correct horse battery" })),
    );
    assert_eq!(c, 404);
    // Permissions: `export` on every component; `sensitive` for the sensitive export.
    let reader = srv.token(&["backups:read"], None, None);
    let (c, _) = srv.call(
        "POST",
        &format!("/api/v1/backups/{id}/exports"),
        Some(&reader),
        Some(&json!({ "password": "correct horse battery" })),
    );
    assert_eq!(c, 403);
    let partial = srv.token(&["export"], Some(&["files"]), None);
    let (c, _) = srv.call(
        "POST",
        &format!("/api/v1/backups/{id}/exports"),
        Some(&partial),
        Some(&json!({ "password": "correct horse battery" })),
    );
    assert_eq!(c, 403, "appdb is not the token's");
    let exporter = srv.token(&["export"], None, None);
    let (c, _) = srv.call(
        "POST",
        &format!("/api/v1/backups/{id}/exports"),
        Some(&exporter),
        Some(&json!({ "password": "correct horse battery", "sensitive": true })),
    );
    assert_eq!(c, 403, "sensitive needs the scope");

    // The normal export, with a passphrase: status, name, checksums.
    let e = srv.export(&id, &json!({ "password": "correct horse battery" }));
    assert_eq!(e["name"], format!("{id}.coffer"));
    assert_eq!(e["components"], json!(["appdb", "files"]), "{e}");
    let export_id = e["id"].as_str().unwrap().to_owned();
    let (code, h, bytes) = srv.download(
        &format!("/api/v1/exports/{export_id}/download"),
        None,
        &["content-disposition", "accept-ranges", "etag"],
    );
    assert_eq!(code, 200);
    assert_eq!(bytes.len() as u64, e["size"].as_u64().unwrap());
    assert!(h[0].as_deref().unwrap().contains(&format!("{id}.coffer")));
    assert_eq!(h[1].as_deref(), Some("bytes"));
    let file = tmp.path().join("download.coffer");
    std::fs::write(&file, &bytes).unwrap();
    let sha = String::from_utf8(run_tool("sha256sum", &[file.to_str().unwrap()], None)).unwrap();
    let md5 = String::from_utf8(run_tool("md5sum", &[file.to_str().unwrap()], None)).unwrap();
    assert!(
        sha.starts_with(e["sha256"].as_str().unwrap()),
        "{sha} vs {e}"
    );
    assert!(md5.starts_with(e["md5"].as_str().unwrap()), "{md5} vs {e}");
    // Ranges resume a download.
    let (code, h, part) = srv.download(
        &format!("/api/v1/exports/{export_id}/download"),
        Some("bytes=100-199"),
        &["content-range"],
    );
    assert_eq!(code, 206);
    assert_eq!(part, bytes[100..200]);
    assert_eq!(
        h[0].as_deref(),
        Some(format!("bytes 100-199/{}", bytes.len()).as_str())
    );
    let (code, _, tail) = srv.download(
        &format!("/api/v1/exports/{export_id}/download"),
        Some("bytes=-10"),
        &[],
    );
    assert_eq!((code, tail.as_slice()), (206, &bytes[bytes.len() - 10..]));
    let (code, _, _) = srv.download(
        &format!("/api/v1/exports/{export_id}/download"),
        Some(&format!("bytes={}-", bytes.len())),
        &[],
    );
    assert_eq!(code, 416);

    // Standard tools open it: age (passphrase through a terminal), zstd, tar.
    let opened = tmp.path().join("opened");
    let manifest = open_with_standard_tools(&file, Ok("correct horse battery"), &opened);
    assert_eq!(manifest["backup_id"], id);
    let comps = manifest["components"].as_array().unwrap();
    assert!(
        comps.iter().all(|c| c["name"] != "keys"),
        "no sensitive component: {manifest}"
    );
    let appdb = comps.iter().find(|c| c["name"] == "appdb").unwrap();
    let db_copy = opened.join(appdb["file"].as_str().unwrap());
    assert_eq!(sqlite_rows(&db_copy), sqlite_rows(&db));
    let sum = String::from_utf8(run_tool("sha256sum", &[db_copy.to_str().unwrap()], None)).unwrap();
    assert!(sum.starts_with(appdb["sha256"].as_str().unwrap()));
    let tree = comps.iter().find(|c| c["name"] == "files").unwrap();
    assert_eq!(tree["content"], "tree");
    let unpacked = tmp.path().join("files-from-export");
    std::fs::create_dir_all(&unpacked).unwrap();
    run_tool(
        "tar",
        &[
            "--xattrs",
            "--xattrs-include=*",
            "-x",
            "-f",
            opened
                .join(tree["file"].as_str().unwrap())
                .to_str()
                .unwrap(),
            "-C",
            unpacked.to_str().unwrap(),
        ],
        None,
    );
    assert_same_tree(&files, &unpacked);

    // The sensitive components: a separate file, still sealed to their recipient.
    let s = srv.export(
        &id,
        &json!({ "password": "another long passphrase", "sensitive": true }),
    );
    assert_eq!(s["name"], format!("{id}.sensitive.coffer"));
    assert_eq!(s["components"], json!(["keys"]));
    let (_, _, sbytes) = srv.download(
        &format!("/api/v1/exports/{}/download", s["id"].as_str().unwrap()),
        None,
        &[],
    );
    let sfile = tmp.path().join("sensitive.coffer");
    std::fs::write(&sfile, &sbytes).unwrap();
    let sopened = tmp.path().join("sopened");
    let smanifest = open_with_standard_tools(&sfile, Ok("another long passphrase"), &sopened);
    let keys_entry = &smanifest["components"][0];
    assert_eq!(keys_entry["sealed"], true);
    let sealed = sopened.join(keys_entry["file"].as_str().unwrap());
    assert!(
        std::fs::read(&sealed)
            .unwrap()
            .starts_with(b"age-encryption.org/v1")
    );
    let inner = run_tool(
        "age",
        &[
            "-d",
            "-i",
            id_file.to_str().unwrap(),
            sealed.to_str().unwrap(),
        ],
        None,
    );
    let listed = run_tool("tar", &["-t"], Some(&inner));
    assert!(String::from_utf8_lossy(&listed).contains("signing.pem"));

    // An X25519 export opens with `age -d -i` (no terminal needed).
    let x = srv.export(&id, &json!({ "age_recipient": identity.recipient() }));
    let (_, _, xbytes) = srv.download(
        &format!("/api/v1/exports/{}/download", x["id"].as_str().unwrap()),
        None,
        &[],
    );
    let xfile = tmp.path().join("x.coffer");
    std::fs::write(&xfile, &xbytes).unwrap();
    let xmanifest = open_with_standard_tools(&xfile, Err(&id_file), &tmp.path().join("xopened"));
    assert_eq!(xmanifest["components"].as_array().unwrap().len(), 2);

    // The backup lists its exports; a backup being exported cannot be deleted meanwhile
    // (tested by the reservation unit); delete removes file and record.
    let (_, bv) = srv.admin("GET", &format!("/api/v1/backups/{id}"), None);
    assert_eq!(bv["exports"].as_array().unwrap().len(), 3, "{bv}");
    let (code, _) = srv.admin("DELETE", &format!("/api/v1/exports/{export_id}"), None);
    assert_eq!(code, 200);
    let (code, _) = srv.admin("GET", &format!("/api/v1/exports/{export_id}"), None);
    assert_eq!(code, 404);
    assert!(
        !tmp.path()
            .join(format!("data/exports/{export_id}.coffer"))
            .exists()
    );
    // Spooled files are private to the server.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(tmp.path().join("data/exports"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    let xf = tmp
        .path()
        .join(format!("data/exports/{}.coffer", x["id"].as_str().unwrap()));
    assert_eq!(
        std::fs::metadata(&xf).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn the_terraform_enterprise_call_exports_after_the_backup_and_exports_expire() {
    let tmp = tempfile::tempdir().unwrap();
    let files = small_dir(tmp.path());
    let config = write_config_with(
        tmp.path(),
        "export_ttl_secs = 3",
        &format!(
            "[[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n",
            files.display()
        ),
    );
    let srv = Server::start(&config);
    let (code, v) = srv.admin(
        "POST",
        "/api/v1/backups",
        Some(&json!({ "password": "correct horse battery" })),
    );
    assert_eq!(code, 202, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("api-backup-"), "{id}");
    let b = srv.wait_until_done(&format!("/api/v1/backups/{id}"), "BACKING_UP", 60);
    assert_eq!(b["status"], "READY");
    let export_id = b["exports"][0]["id"]
        .as_str()
        .expect("the export is linked")
        .to_owned();
    let e = srv.wait_until_done(&format!("/api/v1/exports/{export_id}"), "EXPORTING", 60);
    assert_eq!(e["status"], "READY", "{e}");
    assert_eq!(e["protection"], "password");
    let (code, _, bytes) =
        srv.download(&format!("/api/v1/exports/{export_id}/download"), None, &[]);
    assert_eq!(code, 200);
    assert!(bytes.starts_with(b"age-encryption.org/v1"));
    // A short password is refused before anything is backed up.
    let (code, _) = srv.admin(
        "POST",
        "/api/v1/backups",
        Some(&json!({ "password": "short" })),
    );
    assert_eq!(code, 422);
    // After export_ttl_secs the file is gone: 410, and the export says EXPIRED.
    std::thread::sleep(Duration::from_secs(5));
    let (code, _, _) = srv.download(&format!("/api/v1/exports/{export_id}/download"), None, &[]);
    assert_eq!(code, 410);
    let (_, e) = srv.admin("GET", &format!("/api/v1/exports/{export_id}"), None);
    assert_eq!(e["status"], "EXPIRED", "{e}");
    assert!(
        !tmp.path()
            .join(format!("data/exports/{export_id}.coffer"))
            .exists()
    );
}

// ------------------------------------------------------------ uploads (issue 6)

/// The outcome of a `curl` run: its exit status, the HTTP status and the body.
struct Curl {
    ok: bool,
    status: u16,
    body: Vec<u8>,
}

impl Curl {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

impl Server {
    /// Runs curl against `path` with the admin token (or `token`) and `args`
    /// (multipart parts: curl streams files from disk, as an operator's
    /// upload would).
    fn curl(&self, path: &str, token: Option<&str>, args: &[String]) -> Curl {
        let out_file = tempfile::NamedTempFile::new().unwrap();
        let out = Command::new("curl")
            .args(["-sS", "-o"])
            .arg(out_file.path())
            .args(["-w", "%{http_code}", "-H"])
            .arg(format!(
                "Authorization: Bearer {}",
                token.unwrap_or(&self.admin)
            ))
            .args(args)
            .arg(format!("{}{path}", self.url))
            .output()
            .expect("run curl");
        Curl {
            ok: out.status.success(),
            status: String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .unwrap_or(0),
            body: std::fs::read(out_file.path()).unwrap_or_default(),
        }
    }

    /// Uploads an export for restore; returns the status and JSON body.
    fn upload_export(&self, path: &str, file: &Path, config: &Value) -> (u16, Value) {
        let r = self.curl(
            path,
            None,
            &[
                "-F".into(),
                format!("snapshot=@{}", file.display()),
                "--form-string".into(),
                format!("config={config}"),
            ],
        );
        (r.status, r.json())
    }

    /// Waits for a restore to end; returns it.
    fn wait_restore(&self, id: &str) -> Value {
        self.wait_until_done(&format!("/api/v1/restores/{id}"), "RESTORING", 180)
    }
}

/// An export of a fresh backup of every component, with `password`, saved
/// to `dest`.
fn export_to_file(srv: &Server, password: &str, dest: &Path) -> String {
    let (code, v) = srv.admin(
        "POST",
        "/api/v1/backups",
        Some(&json!({ "password": password })),
    );
    assert_eq!(code, 202, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    let b = srv.wait_until_done(&format!("/api/v1/backups/{id}"), "BACKING_UP", 180);
    assert_eq!(b["status"], "READY", "{b:#}");
    let export = b["exports"][0]["id"].as_str().expect("linked").to_owned();
    let e = srv.wait_until_done(&format!("/api/v1/exports/{export}"), "EXPORTING", 180);
    assert_eq!(e["status"], "READY", "{e}");
    let r = srv.curl(&format!("/api/v1/exports/{export}/download"), None, &[]);
    assert!(r.ok && r.status == 200);
    std::fs::write(dest, &r.body).unwrap();
    id
}

#[test]
fn the_terraform_enterprise_migration_restores_an_upload_into_a_new_installation() {
    let (Some(pg), Some(s3), Some(bucket)) = (
        Pg::from_env(),
        coffer_testkit::s3::S3::from_env(),
        service_setting("COFFER_TEST_S3_BUCKET"),
    ) else {
        return;
    };
    let pid = std::process::id();
    let tmp = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::create_dir_all(&b_dir).unwrap();
    let s3_keys = format!(
        "access_key = \"{}\"\nsecret_key = \"{}\"\nendpoint = \"{}\"\nregion = \"{}\"\n",
        service_setting("COFFER_TEST_S3_ACCESS_KEY").unwrap(),
        service_setting("COFFER_TEST_S3_SECRET_KEY").unwrap(),
        s3.endpoint,
        s3.region
    );

    // Installation A: PostgreSQL database A, a directory, an S3 bucket prefix.
    let (db_a, db_b) = (format!("coffer_tfe_a_{pid}"), format!("coffer_tfe_b_{pid}"));
    for db in [&db_a, &db_b] {
        pg.psql("postgres", &format!("DROP DATABASE IF EXISTS {db}"));
    }
    pg.psql("postgres", &format!("CREATE DATABASE {db_a}"));
    pg.psql(
        &db_a,
        "CREATE TABLE runs (id int PRIMARY KEY, state text NOT NULL); \
         INSERT INTO runs SELECT g, 'applied-' || g FROM generate_series(1, 2000) g;",
    );
    let files_a = a_dir.join("files");
    build_rich_tree(&files_a);
    let prefix = format!("tfe-{pid}/");
    s3.put(
        &bucket,
        &format!("{prefix}state/1.json"),
        b"{\"v\":1}",
        Some("application/json"),
        &[("run", "1")],
    );
    s3.put(
        &bucket,
        &format!("{prefix}blob.bin"),
        &coffer_testkit::tree::random_bytes(9, 300_000),
        None,
        &[],
    );
    let config_a = write_config(
        &a_dir,
        &format!(
            "[[components]]\nname = \"db\"\nkind = \"postgres\"\nhost = \"{}\"\nport = {}\nuser = \"{}\"\n\
             password = \"{}\"\ndatabase = \"{db_a}\"\n\n\
             [[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n\n\
             [[components]]\nname = \"objects\"\nkind = \"s3\"\nbucket = \"{bucket}\"\nprefix = \"{prefix}\"\n{s3_keys}",
            pg.host,
            pg.port,
            pg.user,
            pg.password,
            files_a.display()
        ),
    );
    let export = tmp.path().join("migration.coffer");
    let password = "correct horse battery staple";
    {
        let a = Server::start(&config_a);
        export_to_file(&a, password, &export);
    }

    // Installation B: its own data dir, database B, another bucket, a hook.
    let files_b = b_dir.join("restored-files");
    let bucket_b = format!("coffer-tfe-b-{pid}");
    let marker = b_dir.join("post-restore-ran");
    let config_b = write_config(
        &b_dir,
        &format!(
            "[hooks]\npost_restore = [\"echo \\\"$COFFER_COMPONENTS\\\" > {}\"]\n\n\
             [[components]]\nname = \"db\"\nkind = \"postgres\"\nhost = \"{}\"\nport = {}\nuser = \"{}\"\n\
             password = \"{}\"\ndatabase = \"{db_b}\"\n\n\
             [[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n\n\
             [[components]]\nname = \"objects\"\nkind = \"s3\"\nbucket = \"{bucket_b}\"\nprefix = \"\"\n{s3_keys}",
            marker.display(),
            pg.host,
            pg.port,
            pg.user,
            pg.password,
            files_b.display()
        ),
    );
    let b = Server::start(&config_b);
    let db_b_exists = || {
        pg.psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{db_b}'"),
        ) == "1"
    };

    // A wrong password, a truncated file, no config: 422, nothing changed.
    let (code, v) = b.upload_export(
        "/api/v1/restores",
        &export,
        &json!({ "password": "wrong password!" }),
    );
    assert_eq!(code, 422, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("wrong password"),
        "{v}"
    );
    let bytes = std::fs::read(&export).unwrap();
    let truncated = tmp.path().join("truncated.coffer");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let (code, v) = b.upload_export(
        "/api/v1/restores",
        &truncated,
        &json!({ "password": password }),
    );
    assert_eq!(code, 422, "{v}");
    let r = b.curl(
        "/api/v1/restores",
        None,
        &["-F".into(), format!("snapshot=@{}", export.display())],
    );
    assert_eq!(r.status, 422, "{}", r.json());
    // A token without the restore scope never gets to upload. (A small file:
    // the server answers before reading the body, and closing on a large
    // unread body may reset the connection before curl reads the 403.)
    let reader = b.token(&["backups:read"], None, None);
    let tiny = tmp.path().join("tiny.coffer");
    std::fs::write(&tiny, b"age-encryption.org/v1\n").unwrap();
    let r = b.curl(
        "/api/v1/restores",
        Some(&reader),
        &["-F".into(), format!("snapshot=@{}", tiny.display())],
    );
    assert_eq!(r.status, 403);
    assert!(!files_b.exists() && !db_b_exists() && !marker.exists());
    assert!(!s3_bucket_exists(&s3, &bucket_b));

    // The Terraform Enterprise spelling: POST /api/v1/restore.
    let (code, v) = b.upload_export(
        "/api/v1/restore",
        &export,
        &json!({ "password": password, "options": { "no_owner": true } }),
    );
    assert_eq!(code, 202, "{v}");
    let r = b.wait_restore(v["id"].as_str().unwrap());
    assert_eq!(r["status"], "READY", "{r:#}");

    // Data equal: rows, the tree, the objects; the hook ran.
    let rows = |db: &str| {
        pg.psql(
            db,
            "SELECT count(*), sum(id), md5(string_agg(state, ',' ORDER BY id)) FROM runs",
        )
    };
    assert_eq!(rows(&db_a), rows(&db_b));
    assert_same_tree(&files_a, &files_b);
    assert_eq!(s3.objects(&bucket, &prefix), s3.objects(&bucket_b, ""));
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap().trim(),
        "db,files,objects"
    );
    // The upload's spool is gone.
    let uploads = b_dir.join("data/staging/uploads");
    assert!(!uploads.exists() || std::fs::read_dir(&uploads).unwrap().count() == 0);
    drop(b);
    for db in [&db_a, &db_b] {
        pg.psql("postgres", &format!("DROP DATABASE IF EXISTS {db}"));
    }
}

fn s3_bucket_exists(s3: &coffer_testkit::s3::S3, bucket: &str) -> bool {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s3.keys(bucket, ""))).is_ok()
}

/// Runs `coffer restore --from-file` with `args`; returns the exit code and stderr.
fn cli_restore(args: &[&str], password_file: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .arg("restore")
        .args(args)
        .arg("--password-file")
        .arg(password_file)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn uploads_match_components_by_name_and_kind_refuse_hostile_archives_and_the_cli_restores_too() {
    let tmp = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::create_dir_all(&b_dir).unwrap();
    let files_a = a_dir.join("files");
    build_rich_tree(&files_a);
    let db_a = a_dir.join("app.sqlite");
    sqlite_db(&db_a, 300);
    let config_a = write_config(
        &a_dir,
        &format!(
            "[[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n\n\
             [[components]]\nname = \"appdb\"\nkind = \"sqlite\"\npath = \"{}\"\n",
            files_a.display(),
            db_a.display()
        ),
    );
    let export = tmp.path().join("a.coffer");
    let password = "correct horse battery staple";
    {
        let a = Server::start(&config_a);
        export_to_file(&a, password, &export);
    }

    // B has `files` but no `appdb`, and a `files` of another kind would not do.
    let files_b = b_dir.join("files");
    let db_b = b_dir.join("restored.sqlite");
    let config_b = write_config(
        &b_dir,
        &format!(
            "[[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n",
            files_b.display()
        ),
    );
    let b = Server::start(&config_b);
    let (code, v) = b.upload_export(
        "/api/v1/restores",
        &export,
        &json!({ "password": password }),
    );
    assert_eq!(code, 422, "{v}");
    let msg = v["message"].as_str().unwrap();
    assert!(
        msg.contains("appdb (sqlite)") && !msg.contains("files ("),
        "{msg}"
    );
    assert!(!files_b.exists());
    // An override gives the unconfigured component a whole spec.
    let (code, v) = b.upload_export(
        "/api/v1/restores",
        &export,
        &json!({ "password": password,
                 "overrides": { "appdb": { "kind": "sqlite", "path": db_b } } }),
    );
    assert_eq!(code, 202, "{v}");
    let r = b.wait_restore(v["id"].as_str().unwrap());
    assert_eq!(r["status"], "READY", "{r:#}");
    assert_same_tree(&files_a, &files_b);
    assert_eq!(sqlite_rows(&db_b).len(), 300);

    // A hostile export (made with the real writer, so only its tree is bad):
    // a symlink out of the root with a file below it. Refused before
    // anything is restored; nothing lands outside.
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let mut tree = Vec::new();
    for (name, kind, link, data) in [
        ("ok.txt", tar::EntryType::Regular, "", &b"fine"[..]),
        (
            "escape",
            tar::EntryType::Symlink,
            outside.to_str().unwrap(),
            &b""[..],
        ),
        ("escape/pwned", tar::EntryType::Regular, "", &b"owned"[..]),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_cksum();
        tree.extend_from_slice(h.as_bytes());
        tree.extend_from_slice(data);
        tree.resize(tree.len().div_ceil(512) * 512, 0);
    }
    tree.resize(tree.len() + 1024, 0);
    let hostile = tmp.path().join("hostile.coffer");
    let protection = coffer_export::Protection::passphrase(password);
    let mut w =
        coffer_export::ExportWriter::new(std::fs::File::create(&hostile).unwrap(), &protection)
            .unwrap();
    let header = coffer_export::ComponentHeader {
        name: "files".into(),
        kind: "files".into(),
        content: "tree".into(),
        file_name: "files.tar".into(),
        sealed: false,
    };
    w.add_component(header, tree.len() as u64, |out| out.write_all(&tree))
        .unwrap();
    w.finish(coffer_export::BackupInfo {
        backup_id: "hostile".into(),
        label: "hostile".into(),
        created_at: "2026-01-01T00:00:00Z".into(),
        exported_at: "2026-01-01T00:00:00Z".into(),
        sensitive: false,
    })
    .unwrap();
    let fresh = b_dir.join("fresh");
    let (code, v) = b.upload_export(
        "/api/v1/restores",
        &hostile,
        &json!({ "password": password, "overrides": { "files": { "path": fresh } } }),
    );
    assert_eq!(code, 422, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("symbolic link"),
        "{v}"
    );
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    assert!(!fresh.exists());
    drop(b);

    // The CLI: the same export into a third place, from a coffer.toml.
    let c_dir = tmp.path().join("c");
    std::fs::create_dir_all(&c_dir).unwrap();
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, format!("{password}\n")).unwrap();
    let wrong = tmp.path().join("wrong");
    std::fs::write(&wrong, "not the password\n").unwrap();
    let config_c = write_config(
        &c_dir,
        &format!(
            "[[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n\n\
             [[components]]\nname = \"appdb\"\nkind = \"sqlite\"\npath = \"{}\"\n",
            c_dir.join("files").display(),
            c_dir.join("app.sqlite").display()
        ),
    );
    let (export_s, config_s) = (export.to_str().unwrap(), config_c.to_str().unwrap());
    let (code, err) = cli_restore(&["--from-file", export_s, "--config", config_s], &wrong);
    assert_eq!(code, 4, "{err}");
    assert!(!c_dir.join("files").exists());
    let (code, err) = cli_restore(
        &[
            "--from-file",
            hostile.to_str().unwrap(),
            "--config",
            config_s,
        ],
        &pw,
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("nothing was restored"), "{err}");
    let (code, err) = cli_restore(&["--from-file", export_s, "--config", config_s], &pw);
    assert_eq!(code, 0, "{err}");
    assert_same_tree(&files_a, &c_dir.join("files"));
    assert_eq!(sqlite_rows(&c_dir.join("app.sqlite")).len(), 300);
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
}

#[test]
fn the_flowg_flow_downloads_and_restores_one_component_with_its_permissions() {
    let Some(pg) = Pg::from_env() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let files = dir.join("files");
    build_rich_tree(&files);
    let db = dir.join("app.sqlite");
    sqlite_db(&db, 250);
    let pgdb = format!("coffer_flowg_{}", std::process::id());
    pg.psql("postgres", &format!("DROP DATABASE IF EXISTS {pgdb}"));
    pg.psql("postgres", &format!("CREATE DATABASE {pgdb}"));
    pg.psql(
        &pgdb,
        "CREATE TABLE logs (id int PRIMARY KEY); INSERT INTO logs SELECT generate_series(1, 700);",
    );
    let config = write_config(
        dir,
        &format!(
            "[[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n\n\
             [[components]]\nname = \"appdb\"\nkind = \"sqlite\"\npath = \"{}\"\n\n\
             [[components]]\nname = \"logs\"\nkind = \"postgres\"\nhost = \"{h}\"\nport = {p}\n\
             user = \"{u}\"\npassword = \"{pw}\"\ndatabase = \"{pgdb}\"\n\n\
             [[components]]\nname = \"broken\"\nkind = \"postgres\"\nhost = \"{h}\"\nport = {p}\n\
             user = \"{u}\"\npassword = \"{pw}\"\ndatabase = \"no_such_db_{pgdb}\"\n",
            files.display(),
            db.display(),
            h = pg.host,
            p = pg.port,
            u = pg.user,
            pw = pg.password,
        ),
    );
    let srv = Server::start(&config);
    let save = |r: &Curl, name: &str| {
        let path = dir.join(name);
        std::fs::write(&path, &r.body).unwrap();
        path
    };

    // SQLite: a database file that opens on its own.
    let r = srv.curl("/api/v1/components/appdb/backup", None, &[]);
    assert!(
        r.ok && r.status == 200,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(r.body.starts_with(b"SQLite format 3\0"));
    let copy = save(&r, "download.sqlite");
    assert_eq!(sqlite_rows(&copy).len(), 250);
    // PostgreSQL: a pg_dump custom-format file.
    let r = srv.curl("/api/v1/components/logs/backup", None, &[]);
    assert!(r.ok && r.status == 200);
    assert!(r.body.starts_with(b"PGDMP"));
    let dump = save(&r, "logs.pgdump");
    // A directory: a tar that GNU tar extracts into the same tree.
    let r = srv.curl("/api/v1/components/files/backup", None, &[]);
    assert!(r.ok && r.status == 200);
    let tarball = save(&r, "files.tar");
    let extracted = dir.join("extracted");
    std::fs::create_dir(&extracted).unwrap();
    let st = Command::new("tar")
        .args(["--xattrs", "--xattrs-include=user.*", "-xpf"])
        .arg(&tarball)
        .arg("-C")
        .arg(&extracted)
        .status()
        .unwrap();
    assert!(st.success());
    assert_same_tree(&files, &extracted);
    // A component that fails: the transfer is cut, never a clean short file.
    let r = srv.curl("/api/v1/components/broken/backup", None, &[]);
    assert!(
        !r.ok,
        "a failed dump must not look like a complete download"
    );
    let r = srv.curl("/api/v1/components/nope/backup", None, &[]);
    assert_eq!(r.status, 404);

    // Restore by upload: the database rolls back to the downloaded copy.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("DELETE FROM t WHERE id > 10", [])
        .unwrap();
    let upload = |name: &str, file: &Path, options: &str, token: Option<&str>| {
        srv.curl(
            &format!("/api/v1/components/{name}/restore"),
            token,
            &[
                "-F".into(),
                format!("backup=@{}", file.display()),
                "--form-string".into(),
                format!("options={options}"),
            ],
        )
    };
    let r = upload("appdb", &copy, r#"{"mode":"overwrite"}"#, None);
    assert_eq!(r.status, 202, "{}", r.json());
    let done = srv.wait_restore(r.json()["id"].as_str().unwrap());
    assert_eq!(done["status"], "READY", "{done:#}");
    assert_eq!(sqlite_rows(&db).len(), 250);
    pg.psql(&pgdb, "DELETE FROM logs WHERE id > 5");
    let r = upload("logs", &dump, r#"{"clean":true}"#, None);
    assert_eq!(r.status, 202, "{}", r.json());
    let done = srv.wait_restore(r.json()["id"].as_str().unwrap());
    assert_eq!(done["status"], "READY", "{done:#}");
    assert_eq!(pg.psql(&pgdb, "SELECT count(*) FROM logs"), "700");
    std::fs::remove_file(files.join("plain.txt")).unwrap();
    let r = upload("files", &tarball, r#"{"mode":"mirror"}"#, None);
    assert_eq!(r.status, 202, "{}", r.json());
    let done = srv.wait_restore(r.json()["id"].as_str().unwrap());
    assert_eq!(done["status"], "READY", "{done:#}");
    assert_same_tree(&extracted, &files);
    // The wrong file for the kind: refused before anything is touched.
    let r = upload("files", &copy, r#"{"mode":"mirror"}"#, None);
    assert_eq!(r.status, 422, "{}", r.json());

    // Permissions are per component: a token for `files` only.
    let files_only = srv.token(&["export", "restore"], Some(&["files"]), None);
    let r = srv.curl("/api/v1/components/files/backup", Some(&files_only), &[]);
    assert_eq!(r.status, 200);
    let r = srv.curl("/api/v1/components/appdb/backup", Some(&files_only), &[]);
    assert_eq!(r.status, 403);
    // Small files: the 403 comes before the body is read (see the migration test).
    let tiny = dir.join("tiny.sqlite");
    std::fs::write(&tiny, b"SQLite format 3\0").unwrap();
    let r = upload("appdb", &tiny, "{}", Some(&files_only));
    assert_eq!(r.status, 403);
    // Download needs `export`, upload needs `restore`.
    let restore_only = srv.token(&["restore"], None, None);
    let r = srv.curl("/api/v1/components/files/backup", Some(&restore_only), &[]);
    assert_eq!(r.status, 403);
    let export_only = srv.token(&["export"], None, None);
    let r = upload("appdb", &tiny, "{}", Some(&export_only));
    assert_eq!(r.status, 403);
    drop(srv);
    pg.psql("postgres", &format!("DROP DATABASE IF EXISTS {pgdb}"));
}

#[test]
fn uploads_are_streamed_to_disk_under_a_memory_cap() {
    if !coffer_testkit::require_tool("prlimit") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // 600 MiB of incompressible data, as a tar (a `files` component's native form).
    let big = dir.join("big");
    std::fs::create_dir(&big).unwrap();
    {
        use std::io::Write as _;
        let mut f = std::io::BufWriter::new(std::fs::File::create(big.join("blob")).unwrap());
        for i in 0..600 {
            f.write_all(&coffer_testkit::tree::random_bytes(i, 1 << 20))
                .unwrap();
        }
    }
    let tarball = dir.join("big.tar");
    assert!(
        Command::new("tar")
            .arg("cf")
            .arg(&tarball)
            .arg("-C")
            .arg(&big)
            .arg(".")
            .status()
            .unwrap()
            .success()
    );
    let dest = dir.join("restored");
    let config = write_config(
        dir,
        &format!(
            "[[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n",
            dest.display()
        ),
    );
    // The cap: 192 MiB of data segment. The repository key's scrypt at
    // start needs 128 MiB of it; the upload is 3× the whole cap.
    let srv = Server::start_wrapped(&config, &["prlimit", "--data=201326592", "--"]);
    let r = srv.curl(
        "/api/v1/components/files/restore",
        None,
        &["-F".into(), format!("backup=@{}", tarball.display())],
    );
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let done = srv.wait_restore(r.json()["id"].as_str().unwrap());
    assert_eq!(done["status"], "READY", "{done:#}");
    assert!(
        Command::new("cmp")
            .arg(big.join("blob"))
            .arg(dest.join("blob"))
            .status()
            .unwrap()
            .success()
    );
    // Still alive and answering under the cap.
    let (code, _) = srv.admin("GET", "/healthz", None);
    assert_eq!(code, 200);
}
