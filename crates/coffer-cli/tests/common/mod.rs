//! What the server's end-to-end tests share: a running `coffer server` on a
//! free loopback port driven over HTTP (and with curl, as operators do), its
//! configuration, and small fixtures.

#![allow(dead_code)]

pub mod client;
pub mod crash;
pub mod crash_site;
pub mod fixture;
pub mod schedule;
pub mod webhook;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use coffer_testkit::service_setting;
use serde_json::{Value, json};

/// The `coffer` binary the server tests start: this build's, or
/// `COFFER_TEST_SERVER_BIN` to run the same tests against another build (an
/// older release, to show which tests a change made pass).
pub fn coffer_bin() -> std::ffi::OsString {
    std::env::var_os("COFFER_TEST_SERVER_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_coffer").into())
}

/// A running `coffer server`.
pub struct Server {
    pub child: Child,
    pub url: String,
    /// The admin token printed at first start.
    pub admin: String,
    /// The default repository's password printed at first start.
    pub repo_password: Option<String>,
    pub agent: ureq::Agent,
}

impl Server {
    /// Starts the server with `config` and waits for its address.
    pub fn start(config: &Path) -> Self {
        Self::start_wrapped(config, &[])
    }

    /// Starts the server through `wrapper` (e.g. `prlimit … --`).
    pub fn start_wrapped(config: &Path, wrapper: &[&str]) -> Self {
        Self::start_with(config, wrapper, &[])
    }

    /// Starts the server with more environment variables (e.g. a fake clock).
    pub fn start_env(config: &Path, env: &[(&str, &Path)]) -> Self {
        Self::start_with(config, &[], env)
    }

    fn start_with(config: &Path, wrapper: &[&str], env: &[(&str, &Path)]) -> Self {
        let mut command = match wrapper.split_first() {
            None => Command::new(coffer_bin()),
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(coffer_bin());
                c
            }
        };
        let mut child = command
            .args(["server", "--listen", "127.0.0.1:0", "--config"])
            .arg(config)
            .env_remove("COFFER_SERVER_KEY")
            .envs(env.iter().map(|(k, v)| (k, v.as_os_str())))
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
    pub fn call(
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

    pub fn call_raw(
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

    pub fn admin(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.call(method, path, Some(&self.admin), body)
    }

    /// Polls `path` until its `status` is not `running`, or panics after `secs`.
    pub fn wait_until_done(&self, path: &str, running: &str, secs: u64) -> Value {
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
    pub fn backup(&self, body: &Value) -> Value {
        let (code, v) = self.admin("POST", "/api/v1/backups", Some(body));
        assert_eq!(code, 202, "{body}: {v}");
        let id = v["id"].as_str().expect("id");
        self.wait_until_done(&format!("/api/v1/backups/{id}"), "BACKING_UP", 120)
    }

    pub fn token(
        &self,
        scopes: &[&str],
        components: Option<&[&str]>,
        expires: Option<u64>,
    ) -> String {
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

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM first: the graceful path.
        let pid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
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

pub fn write_config(dir: &Path, body: &str) -> PathBuf {
    write_config_with(dir, "", body)
}

/// A config with the data directory in `dir`, more `[server]` settings, and `body`.
/// Restores may override paths below `dir` itself (`server.restore_roots`)
/// unless `server` says otherwise.
pub fn write_config_with(dir: &Path, server: &str, body: &str) -> PathBuf {
    let path = dir.join("coffer.toml");
    let roots = if server.contains("restore_roots") {
        String::new()
    } else {
        format!("restore_roots = [\"{}\"]\n", dir.display())
    };
    let text = format!(
        "[server]\ndata_dir = \"{}\"\n{roots}{server}\n{body}",
        dir.join("data").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A directory `files` in `dir` with one small file.
pub fn small_dir(dir: &Path) -> PathBuf {
    let files = dir.join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("a"), b"a").unwrap();
    files
}

pub fn sqlite_db(path: &Path, rows: usize) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);")
        .unwrap();
    for i in 0..rows {
        conn.execute("INSERT INTO t (v) VALUES (?1)", [format!("row {i} ✓")])
            .unwrap();
    }
}

pub fn sqlite_rows(path: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut st = conn.prepare("SELECT v FROM t ORDER BY id").unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

pub struct Pg {
    pub host: String,
    pub port: String,
    pub user: String,
    pub password: String,
}

impl Pg {
    pub fn from_env() -> Option<Self> {
        Some(Self {
            host: service_setting("COFFER_TEST_PG_HOST")?,
            port: service_setting("COFFER_TEST_PG_PORT")?,
            user: service_setting("COFFER_TEST_PG_USER")?,
            password: service_setting("COFFER_TEST_PG_PASSWORD")?,
        })
    }

    pub fn psql(&self, db: &str, sql: &str) -> String {
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

impl Server {
    /// GET `path` as raw bytes, optionally with a `Range` header: status,
    /// the headers asked for, body.
    pub fn download(
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
    pub fn export(&self, backup: &str, body: &Value) -> Value {
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
pub fn run_tool(program: &str, args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
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

/// The outcome of a `curl` run: its exit status, the HTTP status and the body.
pub struct Curl {
    pub ok: bool,
    pub status: u16,
    pub body: Vec<u8>,
}

impl Curl {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

impl Server {
    /// Runs curl against `path` with the admin token (or `token`) and `args`
    /// (multipart parts: curl streams files from disk, as an operator's
    /// upload would).
    pub fn curl(&self, path: &str, token: Option<&str>, args: &[String]) -> Curl {
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
    pub fn upload_export(&self, path: &str, file: &Path, config: &Value) -> (u16, Value) {
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
    pub fn wait_restore(&self, id: &str) -> Value {
        self.wait_until_done(&format!("/api/v1/restores/{id}"), "RESTORING", 180)
    }
}

/// An export of a fresh backup of every component, with `password`, saved
/// to `dest`.
pub fn export_to_file(srv: &Server, password: &str, dest: &Path) -> String {
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

/// Runs `script` with `bash -eu -o pipefail` in `dir`; returns its standard
/// output, or panics with what it printed.
pub fn sh(dir: &Path, script: &str) -> String {
    let out = Command::new("bash")
        .args(["-eu", "-o", "pipefail", "-c", script])
        .current_dir(dir)
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "{script}\nexited {}: {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every pack file of the local repository in a server's data directory
/// `data`, sorted.
pub fn packs(data: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in std::fs::read_dir(data.join("repository/data"))
        .unwrap()
        .filter_map(Result::ok)
    {
        out.extend(
            std::fs::read_dir(sub.path())
                .unwrap()
                .filter_map(Result::ok)
                .map(|e| e.path()),
        );
    }
    out.sort();
    out
}

/// Overwrites 4 KiB in the middle of the pack at `path`, so the data a
/// read gets there is wrong; returns the bytes it had.
pub fn damage_pack(path: &Path) -> Vec<u8> {
    let original = std::fs::read(path).unwrap();
    let mut bad = original.clone();
    let mid = bad.len() / 2;
    let end = (mid + 4096).min(bad.len());
    bad[mid..end].fill(0x55);
    std::fs::write(path, bad).unwrap();
    original
}
