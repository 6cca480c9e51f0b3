//! The installation a crash case runs against (see [`super::crash`]): its
//! sources, configuration and services — files, SQLite and a command
//! always; PostgreSQL, MariaDB, a private `redis-server` or objects under a
//! Garage prefix when the scenario restores one.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::crash::{Scenario, V1, V2};
use super::{Pg, Server, run_tool, service_setting, sqlite_db, write_config_with};

/// A Redis of this case alone (a restore replaces every key it has).
pub struct PrivateRedis {
    child: Child,
    pub port: u16,
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// One installation: its sources, configuration and services.
pub struct Site {
    pub tmp: tempfile::TempDir,
    pub config: PathBuf,
    pub files: PathBuf,
    pub sqlite: PathBuf,
    pub unique: String,
    pub pg: Option<Pg>,
    pub my: Option<[String; 4]>,
    pub redis: Option<PrivateRedis>,
    pub s3: Option<(coffer_testkit::s3::S3, String)>,
    pub admin: String,
    pub repo_password: String,
}

pub fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl Site {
    /// Sets up the sources `scenario` needs; `None` when a service it needs
    /// is not configured (the case is skipped, as the service tests are).
    pub fn new(scenario: Scenario) -> Option<Self> {
        static N: AtomicU32 = AtomicU32::new(0);
        let unique = format!(
            "crash{}x{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let tmp = tempfile::tempdir().unwrap();
        let files = tmp.path().join("files");
        std::fs::create_dir_all(files.join("sub")).unwrap();
        for name in ["a", "b", "sub/c", "sub/d"] {
            std::fs::write(files.join(name), V1).unwrap();
        }
        let sqlite = tmp.path().join("app.db");
        sqlite_db(&sqlite, 50);
        let mut body = format!(
            "[hooks]\npre_backup = [\"true\"]\npost_backup = [\"true\"]\n\
             pre_restore = [\"true\"]\npost_restore = [\"true\"]\n\n\
             [[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n\n\
             [[components]]\nname = \"db\"\nkind = \"sqlite\"\npath = \"{}\"\n\n\
             [[components]]\nname = \"cmd\"\nkind = \"command\"\nbackup = [\"echo\", \"from a command\"]\n\
             restore = [\"sh\", \"-c\", \"cat > {}\"]\n\n",
            files.display(),
            sqlite.display(),
            tmp.path().join("cmd-restored").display()
        );
        let mut site = Self {
            config: PathBuf::new(),
            files,
            sqlite,
            unique: unique.clone(),
            pg: None,
            my: None,
            redis: None,
            s3: None,
            admin: String::new(),
            repo_password: String::new(),
            tmp,
        };
        if scenario.uses("pg") {
            let pg = Pg::from_env()?;
            pg.psql("postgres", &format!("DROP DATABASE IF EXISTS {unique}"));
            pg.psql("postgres", &format!("CREATE DATABASE {unique}"));
            pg.psql(
                &unique,
                "CREATE TABLE runs (id int PRIMARY KEY, state text NOT NULL); \
                 INSERT INTO runs SELECT g, 'one' FROM generate_series(1, 5000) g;",
            );
            body.push_str(&format!(
                "[[components]]\nname = \"pg\"\nkind = \"postgres\"\nhost = \"{}\"\nport = {}\n\
                 user = \"{}\"\npassword = \"{}\"\ndatabase = \"{unique}\"\n\n",
                pg.host, pg.port, pg.user, pg.password
            ));
            site.pg = Some(pg);
        }
        if scenario.uses("my") {
            let my = [
                service_setting("COFFER_TEST_MYSQL_HOST")?,
                service_setting("COFFER_TEST_MYSQL_PORT")?,
                service_setting("COFFER_TEST_MYSQL_USER")?,
                service_setting("COFFER_TEST_MYSQL_PASSWORD")?,
            ];
            site.my = Some(my.clone());
            site.mysql(&format!(
                "DROP DATABASE IF EXISTS {unique}; CREATE DATABASE {unique}; \
                 CREATE TABLE {unique}.runs (id int PRIMARY KEY, state text NOT NULL); \
                 INSERT INTO {unique}.runs SELECT n, 'one' FROM (WITH RECURSIVE s(n) AS \
                 (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 500) SELECT n FROM s) x;"
            ));
            body.push_str(&format!(
                "[[components]]\nname = \"my\"\nkind = \"mysql\"\nhost = \"{}\"\nport = {}\n\
                 user = \"{}\"\npassword = \"{}\"\ndatabase = \"{unique}\"\n\n",
                my[0], my[1], my[2], my[3]
            ));
        }
        if scenario.uses("kv") {
            let port = free_port();
            let child = Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                ])
                .args(["--appendonly", "no", "--repl-diskless-sync-delay", "0"])
                .arg("--dir")
                .arg(site.tmp.path())
                .stdout(Stdio::null())
                .spawn()
                .ok()?;
            let redis = PrivateRedis { child, port };
            let deadline = Instant::now() + Duration::from_secs(10);
            while redis_cli(port, &["PING"]) != "PONG" {
                assert!(Instant::now() < deadline, "redis-server did not start");
                std::thread::sleep(Duration::from_millis(50));
            }
            for i in 0..300 {
                redis_cli(port, &["SET", &format!("k{i}"), "one"]);
            }
            body.push_str(&format!(
                "[[components]]\nname = \"kv\"\nkind = \"redis\"\nhost = \"127.0.0.1\"\nport = {port}\n\n"
            ));
            site.redis = Some(redis);
        }
        if scenario.uses("objects") {
            let s3 = coffer_testkit::s3::S3::from_env()?;
            let bucket = service_setting("COFFER_TEST_S3_BUCKET")?;
            for i in 0..6 {
                s3.put(&bucket, &format!("{unique}/o{i}"), V1, None, &[]);
            }
            body.push_str(&format!(
                "[[components]]\nname = \"objects\"\nkind = \"s3\"\nendpoint = \"{}\"\n\
                 region = \"{}\"\nbucket = \"{bucket}\"\nprefix = \"{unique}/\"\n\
                 access_key = \"{}\"\nsecret_key = \"{}\"\n\n",
                service_setting("COFFER_TEST_S3_ENDPOINT")?,
                service_setting("COFFER_TEST_S3_REGION")?,
                service_setting("COFFER_TEST_S3_ACCESS_KEY")?,
                service_setting("COFFER_TEST_S3_SECRET_KEY")?,
            ));
            site.s3 = Some((s3, bucket));
        }
        site.config = write_config_with(site.tmp.path(), "", &body);
        Some(site)
    }

    pub fn mysql(&self, sql: &str) -> String {
        let Some([host, port, user, pw]) = &self.my else {
            return String::new();
        };
        let out = run_tool(
            "mariadb",
            &[
                "-h",
                host,
                "-P",
                port,
                "-u",
                user,
                &format!("-p{pw}"),
                "-N",
                "-B",
                "-e",
                sql,
            ],
            None,
        );
        String::from_utf8_lossy(&out).trim().to_owned()
    }

    pub fn start(&mut self, crash_at: Option<&str>) -> Server {
        let env: Vec<(&str, &Path)> = crash_at
            .map(|p| vec![("COFFER_CRASH_AT", Path::new(p))])
            .unwrap_or_default();
        let mut srv = Server::start_env(&self.config, &env);
        if self.admin.is_empty() {
            self.admin = srv.admin.clone();
            self.repo_password = srv.repo_password.clone().unwrap_or_default();
        } else {
            srv.admin = self.admin.clone();
        }
        srv
    }

    pub fn repo(&self) -> PathBuf {
        self.tmp.path().join("data/repository")
    }

    /// Writes version two over every source the backup took as version one.
    pub fn change_sources(&self) {
        for name in ["a", "b", "sub/c", "sub/d"] {
            std::fs::write(self.files.join(name), V2).unwrap();
        }
        std::fs::remove_file(&self.sqlite).unwrap();
        sqlite_db(&self.sqlite, 7);
        if let Some(pg) = &self.pg {
            pg.psql(&self.unique, "UPDATE runs SET state = 'two'");
        }
        if self.my.is_some() {
            self.mysql(&format!("UPDATE {}.runs SET state = 'two'", self.unique));
        }
        if let Some(r) = &self.redis {
            for i in 0..300 {
                redis_cli(r.port, &["SET", &format!("k{i}"), "two"]);
            }
        }
        if let Some((s3, bucket)) = &self.s3 {
            for i in 0..6 {
                s3.put(bucket, &format!("{}/o{i}", self.unique), V2, None, &[]);
            }
        }
    }
}
