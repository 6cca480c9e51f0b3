//! MariaDB components against the real server from scripts/services.sh.

mod common;

use std::process::Command;

use coffer_components::{ComponentError, RestoreOptions};
use coffer_model::component::ComponentSpec;
use coffer_testkit::service_setting;
use common::{Fixture, assert_same, spec};

struct Server {
    host: String,
    port: String,
    user: String,
    password: String,
}

impl Server {
    fn from_env() -> Option<Self> {
        Some(Self {
            host: service_setting("COFFER_TEST_MYSQL_HOST")?,
            port: service_setting("COFFER_TEST_MYSQL_PORT")?,
            user: service_setting("COFFER_TEST_MYSQL_USER")?,
            password: service_setting("COFFER_TEST_MYSQL_PASSWORD")?,
        })
    }

    fn tool(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.arg("--no-defaults")
            .arg(format!("--host={}", self.host))
            .arg(format!("--port={}", self.port))
            .arg(format!("--user={}", self.user))
            .arg("--default-character-set=utf8mb4")
            .env("MYSQL_PWD", &self.password);
        cmd
    }

    fn run(cmd: &mut Command) -> String {
        let out = cmd.output().expect("run tool");
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn sql(&self, sql: &str) -> String {
        Self::run(
            self.tool("mariadb")
                .args(["--batch", "--skip-column-names", "-e", sql]),
        )
    }

    /// A dump for comparing databases, without the lines that name the
    /// database or the time.
    fn dump(&self, db: &str) -> String {
        let text = Self::run(self.tool("mariadb-dump").args([
            "--single-transaction",
            "--routines",
            "--triggers",
            "--events",
            "--hex-blob",
            "--skip-dump-date",
            db,
        ]));
        text.lines()
            // Comments name the database, the host and the server version.
            .filter(|l| !l.starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn spec(&self, db: &str, extra: &str) -> ComponentSpec {
        spec(&format!(
            "name = \"shop\"\nkind = \"mysql\"\nhost = \"{}\"\nport = {}\nuser = \"{}\"\n\
             password = {{ env = \"COFFER_TEST_MYSQL_PASSWORD\" }}\ndatabase = \"{db}\"\n{extra}",
            self.host, self.port, self.user
        ))
    }
}

const SCHEMA: &str = r#"
CREATE TABLE customers (
  id INT AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(200) NOT NULL UNIQUE,
  balance DECIMAL(12,2) NOT NULL DEFAULT 0,
  photo MEDIUMBLOB,
  created DATETIME(6) NOT NULL DEFAULT '2026-01-02 03:04:05.123456'
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE orders (
  id BIGINT AUTO_INCREMENT PRIMARY KEY,
  customer_id INT NOT NULL,
  total DECIMAL(12,2) NOT NULL,
  FOREIGN KEY (customer_id) REFERENCES customers(id) ON DELETE CASCADE
) ENGINE=InnoDB;
CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, note TEXT) ENGINE=InnoDB;
CREATE VIEW big_orders AS SELECT c.name, o.total FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.total > 100;
CREATE TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW INSERT INTO audit (note) VALUES (CONCAT('order ', NEW.id));
CREATE FUNCTION customer_total(cid INT) RETURNS DECIMAL(12,2) READS SQL DATA RETURN (SELECT COALESCE(SUM(total), 0) FROM orders WHERE customer_id = cid);
INSERT INTO customers (name, balance, photo) VALUES ('Zoë Ångström', 10.5, UNHEX('00FF10AB00')), ('日本語の名前', 0, NULL), ('emoji 🦀 \'quoted\' \\ back', 3, REPEAT(UNHEX('AB'), 70000));
INSERT INTO orders (customer_id, total) SELECT 1 + seq % 3, seq * 1.37 FROM seq_1_to_20000;
"#;

#[test]
fn mysql_round_trips_into_same_and_other_database() {
    let Some(srv) = Server::from_env() else {
        return;
    };
    let f = Fixture::new();
    let src = format!("coffer_my_src_{}", std::process::id());
    let copy = format!("{src}_copy");
    srv.sql(&format!(
        "DROP DATABASE IF EXISTS {src}; DROP DATABASE IF EXISTS {copy}; CREATE DATABASE {src}"
    ));
    Server::run(srv.tool("mariadb").args(["--batch", &src, "-e", SCHEMA]));
    let original = srv.dump(&src);
    assert!(
        original.contains("TRIGGER orders_audit") || original.contains("TRIGGER `orders_audit`")
    );
    assert!(original.contains("customer_total"));

    let s = srv.spec(&src, "");
    let snap = f.backup(&s).expect("backup");
    assert_eq!(snap.paths, ["shop.sql"]);

    srv.sql(&format!("DROP DATABASE {src}"));
    let report = f
        .restore(&s, &snap, &RestoreOptions::default())
        .expect("restore");
    assert!(
        report.notes.iter().any(|n| n.contains("created database")),
        "{report:?}"
    );
    assert_same(&original, &srv.dump(&src), "same database");
    // The trigger is live again.
    srv.sql(&format!(
        "INSERT INTO {src}.orders (customer_id, total) VALUES (1, 1)"
    ));
    assert_eq!(
        srv.sql(&format!("SELECT COUNT(*) FROM {src}.audit")).trim(),
        "20001"
    );

    // Into another database; with clean an existing one is replaced exactly.
    let copy_spec = srv.spec(&copy, "");
    f.restore(&copy_spec, &snap, &RestoreOptions::default())
        .expect("restore into copy");
    assert_same(&original, &srv.dump(&copy), "other database");
    srv.sql(&format!("CREATE TABLE {copy}.extra (x INT)"));
    let clean = RestoreOptions {
        clean: true,
        ..RestoreOptions::default()
    };
    f.restore(&copy_spec, &snap, &clean).expect("clean restore");
    assert_same(&original, &srv.dump(&copy), "clean restore");
    srv.sql(&format!("DROP DATABASE {src}; DROP DATABASE {copy}"));
    f.assert_clean();
}

#[test]
fn mysql_failures_are_clear_and_record_nothing() {
    let Some(srv) = Server::from_env() else {
        return;
    };
    let f = Fixture::new();
    let wrong = spec(&format!(
        "name = \"shop\"\nkind = \"mysql\"\nhost = \"{}\"\nport = {}\nuser = \"{}\"\n\
         password = \"wrong\"\ndatabase = \"mysql\"",
        srv.host, srv.port, srv.user
    ));
    let err = f.backup(&wrong).unwrap_err();
    assert!(err.to_string().contains("Access denied"), "{err}");
    let err = f.backup(&srv.spec("coffer_no_such_db", "")).unwrap_err();
    assert!(err.to_string().contains("Unknown database"), "{err}");
    let down = spec(
        "name = \"shop\"\nkind = \"mysql\"\nhost = \"127.0.0.1\"\nport = 1\nuser = \"x\"\ndatabase = \"d\"",
    );
    let err = f.backup(&down).unwrap_err();
    assert!(err.to_string().contains("Can't connect"), "{err}");
    assert_eq!(f.snapshot_count(), 0);

    // A restore of something that is not SQL fails with the client's words,
    // and the database it created is removed again.
    let junk = spec(
        "name = \"shop\"\nkind = \"command\"\nbackup = [\"echo\", \"THIS IS NOT SQL;\"]\nfile_name = \"shop.sql\"",
    );
    let snap = f.backup(&junk).expect("backup junk");
    let target = format!("coffer_my_junk_{}", std::process::id());
    let err = f
        .restore(&srv.spec(&target, ""), &snap, &RestoreOptions::default())
        .unwrap_err();
    assert!(matches!(err, ComponentError::Tool { .. }), "{err:?}");
    assert!(err.to_string().contains("SQL syntax"), "{err}");
    assert_eq!(
        srv.sql(&format!(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{target}'"
        ))
        .trim(),
        "0"
    );
    f.assert_clean();
}

#[test]
fn mysql_uploaded_dumps_cannot_run_client_commands() {
    let Some(srv) = Server::from_env() else {
        return;
    };
    let f = Fixture::new();
    let db = format!("coffer_my_bang_{}", std::process::id());
    srv.sql(&format!(
        "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}"
    ));
    let marker = f.path("client-command-ran");
    let s = srv.spec(&db, "");
    // `\!` and `system` run a shell in the client unless it is in binary mode.
    for line in [
        format!("\\! touch {}", marker.display()),
        format!("system touch {}", marker.display()),
    ] {
        let dump = f.file(
            "shop.sql",
            format!("CREATE TABLE t (x INT);\n{line}\nINSERT INTO t VALUES (1);\n").as_bytes(),
        );
        let err = f
            .restore_file(&s, &dump, &RestoreOptions::default(), None)
            .unwrap_err();
        assert!(!marker.exists(), "{line:?} ran a shell command");
        assert!(matches!(err, ComponentError::Tool { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("Unknown command") || text.contains("SQL syntax"),
            "{text}"
        );
        srv.sql(&format!("DROP TABLE IF EXISTS {db}.t"));
    }

    // A real dump, as mariadb-dump writes it (newer ones start with the
    // sandbox-mode line), still restores from an uploaded file.
    Server::run(srv.tool("mariadb").args([
        "--batch",
        &db,
        "-e",
        "CREATE TABLE kept (id INT PRIMARY KEY, note TEXT); \
         INSERT INTO kept VALUES (1, 'one'), (2, 'tw\\\\o ''quoted''');",
    ]));
    let original = srv.dump(&db);
    let mut native = Vec::new();
    coffer_components::download(&s, &f.staging(), &mut native).expect("download");
    let text = String::from_utf8_lossy(&native);
    if let Some(first) = text.lines().next() {
        eprintln!("first line of the dump: {first}");
    }
    let dump = f.file("shop.sql", &native);
    let clean = RestoreOptions {
        clean: true,
        ..RestoreOptions::default()
    };
    f.restore_file(&s, &dump, &clean, None)
        .expect("a real dump restores");
    assert_same(&original, &srv.dump(&db), "restored from a file");
    srv.sql(&format!("DROP DATABASE {db}"));
    f.assert_clean();
}

#[test]
fn mysql_refuses_an_upload_that_is_not_sql_before_touching_the_database() {
    let Some(srv) = Server::from_env() else {
        return;
    };
    let f = Fixture::new();
    let db = format!("coffer_my_sniff_{}", std::process::id());
    srv.sql(&format!(
        "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; \
         CREATE TABLE {db}.precious (x INT); INSERT INTO {db}.precious VALUES (42)"
    ));
    let clean = RestoreOptions {
        clean: true,
        ..RestoreOptions::default()
    };
    // An RDB file, a binary blob with NUL bytes, invalid UTF-8, nothing.
    for junk in [
        b"REDIS0011\xfa\x09redis-ver\x057.0.15\x00\xff".as_slice(),
        b"\x00\x01\x02 binary",
        b"SELECT 1; -- \xff\xfe not utf-8",
        b"",
    ] {
        let file = f.file("shop.sql", junk);
        let err = f
            .restore_file(&srv.spec(&db, ""), &file, &clean, None)
            .unwrap_err();
        assert!(
            matches!(err, ComponentError::InvalidInput { .. }),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("shop.sql") && text.contains("SQL"),
            "{junk:?}: {text}"
        );
        assert_eq!(
            srv.sql(&format!("SELECT x FROM {db}.precious")).trim(),
            "42",
            "the database was touched"
        );
    }
    srv.sql(&format!("DROP DATABASE {db}"));
    f.assert_clean();
}

/// A restore drill: the backup restored into `coffer_drill_<tag>` on the
/// same server, proved with the component's `verify_query`, dropped; the
/// live database untouched.
#[test]
fn mysql_drill_restores_beside_the_live_database_and_drops_it() {
    let Some(srv) = Server::from_env() else {
        return;
    };
    let f = Fixture::new();
    let src = format!("coffer_my_drill_{}", std::process::id());
    srv.sql(&format!(
        "DROP DATABASE IF EXISTS {src}; CREATE DATABASE {src}"
    ));
    Server::run(srv.tool("mariadb").args(["--batch", &src, "-e", SCHEMA]));
    let s = srv.spec(&src, "verify_query = \"SELECT COUNT(*) FROM orders\"");
    let snap = f.backup(&s).expect("backup");
    let tag = format!("t{}", std::process::id());
    let scratch_dir = f.path("drill");
    let scratch = coffer_components::drill::scratch_spec(&s, &tag, &scratch_dir).unwrap();
    let staging = f.staging();
    let options = RestoreOptions {
        create_database: true,
        ..RestoreOptions::default()
    };
    let ctx = coffer_components::RestoreContext {
        source: coffer_components::RestoreSource::Snapshot {
            repo: &f.repo,
            snapshot: &snap,
        },
        staging_dir: &staging,
        options: &options,
        progress: None,
        part: None,
    };
    let proof = coffer_components::drill::run(&scratch, &ctx, &snap).expect("drill");
    assert!(proof.contains("\"20000\""), "{proof}");
    let drill_db = coffer_components::drill::scratch_database(&tag);
    assert_eq!(
        srv.sql(&format!(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{drill_db}'"
        ))
        .trim(),
        "1"
    );
    coffer_components::drill::remove_scratch(&scratch).expect("drop");
    assert_eq!(
        srv.sql(&format!(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{drill_db}'"
        ))
        .trim(),
        "0"
    );
    // The live database is as it was.
    assert_eq!(
        srv.sql(&format!("SELECT COUNT(*) FROM {src}.orders"))
            .trim(),
        "20000"
    );
    srv.sql(&format!("DROP DATABASE {src}"));
}
