//! PostgreSQL components against the real server from scripts/services.sh.

mod common;

use coffer_components::{ComponentError, RestoreOptions};
use coffer_testkit::service_setting;
use common::{Fixture, assert_same, spec};
use std::process::Command;

struct Server {
    host: String,
    port: String,
    user: String,
    password: String,
}

impl Server {
    fn from_env() -> Option<Self> {
        Some(Self {
            host: service_setting("COFFER_TEST_PG_HOST")?,
            port: service_setting("COFFER_TEST_PG_PORT")?,
            user: service_setting("COFFER_TEST_PG_USER")?,
            password: service_setting("COFFER_TEST_PG_PASSWORD")?,
        })
    }

    fn tool(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("PGHOST", &self.host)
            .env("PGPORT", &self.port)
            .env("PGUSER", &self.user)
            .env("PGPASSWORD", &self.password);
        cmd
    }

    fn run(&self, cmd: &mut Command) -> String {
        let out = cmd.output().expect("run tool");
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn psql(&self, db: &str, sql: &str) -> String {
        self.run(
            self.tool("psql")
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
                ])
                .arg(sql),
        )
    }

    fn db_exists(&self, db: &str) -> bool {
        self.psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{db}'"),
        )
        .trim()
            == "1"
    }

    /// A plain-text dump for comparing databases. pg_dump ≥ 15.14 writes a
    /// random `\restrict` token into plain dumps; it is not data.
    fn dump(&self, db: &str, extra: &[&str]) -> String {
        let text = self.run(self.tool("pg_dump").args(["-Fp", "-d", db]).args(extra));
        text.lines()
            .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn spec(&self, name: &str, db: &str, extra: &str) -> coffer_model::component::ComponentSpec {
        spec(&format!(
            "name = \"{name}\"\nkind = \"postgres\"\nhost = \"{}\"\nport = {}\nuser = \"{}\"\n\
             password = {{ env = \"COFFER_TEST_PG_PASSWORD\" }}\ndatabase = \"{db}\"\n{extra}",
            self.host, self.port, self.user
        ))
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", std::process::id())
}

const SCHEMA: &str = r#"
CREATE TABLE customers (
  id serial PRIMARY KEY,
  name text NOT NULL UNIQUE,
  email text CHECK (email LIKE '%@%'),
  created timestamptz NOT NULL DEFAULT '2026-01-02 03:04:05.123456+00');
CREATE TABLE orders (
  id bigserial PRIMARY KEY,
  customer_id int NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
  total numeric(12,2) NOT NULL CHECK (total >= 0),
  tags text[],
  doc jsonb);
CREATE INDEX orders_customer ON orders(customer_id);
CREATE SEQUENCE invoice_no START 1000;
SELECT setval('invoice_no', 1234);
CREATE VIEW big_orders AS SELECT c.name, o.total FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.total > 100;
CREATE FUNCTION customer_total(cid int) RETURNS numeric LANGUAGE sql STABLE AS $$ SELECT coalesce(sum(total), 0) FROM orders WHERE customer_id = cid $$;
INSERT INTO customers (name, email) VALUES ('Zoë Ångström', 'zoe@example.org'), ('日本語の名前', 'jp@example.org'), ('emoji 🦀 "quoted" \ back', 'crab@example.org');
INSERT INTO orders (customer_id, total, tags, doc)
  SELECT 1 + i % 3, (i * 7.31)::numeric(12,2), ARRAY['a', 'tag ' || i], jsonb_build_object('i', i, 'ü', 'ß')
  FROM generate_series(1, 5000) i;
CREATE TABLE documents (id int PRIMARY KEY, content oid);
INSERT INTO documents VALUES (1, lo_from_bytea(0, decode(repeat('00ff10ab', 50000), 'hex'))), (2, lo_from_bytea(0, convert_to('small ✓', 'UTF8')));
"#;

#[test]
fn postgres_round_trips_into_same_other_and_new_installation() {
    if !coffer_testkit::require_tool("pgbench") {
        return;
    }
    let Some(srv) = Server::from_env() else {
        return;
    };
    let f = Fixture::new();
    let src = unique("coffer_pg_src");
    let owner = unique("coffer_pg_owner");
    for db in [&src, &format!("{src}_copy"), &format!("{src}_new")] {
        srv.psql("postgres", &format!("DROP DATABASE IF EXISTS {db}"));
    }
    srv.psql("postgres", &format!("DROP ROLE IF EXISTS {owner}"));
    srv.psql("postgres", &format!("CREATE ROLE {owner} NOLOGIN"));
    srv.psql("postgres", &format!("CREATE DATABASE {src}"));
    srv.run(srv.tool("pgbench").args(["-i", "-q", "-s", "5", &src]));
    srv.psql(&src, SCHEMA);
    srv.psql(
        &src,
        &format!("ALTER TABLE customers OWNER TO {owner}; GRANT SELECT ON orders TO {owner};"),
    );
    let original = srv.dump(&src, &[]);
    let original_no_owner = srv.dump(&src, &["--no-owner", "--no-privileges"]);
    assert!(original.contains("pgbench_accounts") && original.contains("lo_create"));

    let s = srv.spec("db", &src, "");
    let snap = f.backup(&s).expect("backup");
    assert_eq!(snap.paths, ["db.pgdump"]);

    // Destroy, then restore into the same place (the database is recreated).
    srv.psql("postgres", &format!("DROP DATABASE {src}"));
    let report = f
        .restore(&s, &snap, &RestoreOptions::default())
        .expect("restore");
    assert!(
        report.notes.iter().any(|n| n.contains("created database")),
        "{report:?}"
    );
    assert_same(&original, &srv.dump(&src, &[]), "same database");

    // Into another database of the same server.
    let copy = format!("{src}_copy");
    let copy_spec = srv.spec("db", &copy, "");
    f.restore(&copy_spec, &snap, &RestoreOptions::default())
        .expect("restore into copy");
    assert_same(&original, &srv.dump(&copy, &[]), "other database");

    // Again into the now full copy: refused by the server, and the single
    // transaction leaves it exactly as it was…
    srv.psql(
        &copy,
        "INSERT INTO customers (name) VALUES ('added after the backup')",
    );
    let before = srv.dump(&copy, &[]);
    let err = f
        .restore(&copy_spec, &snap, &RestoreOptions::default())
        .unwrap_err();
    assert!(matches!(err, ComponentError::Tool { .. }), "{err:?}");
    assert!(err.to_string().contains("already exists"), "{err}");
    assert!(err.to_string().contains("pg_restore 15"), "{err}");
    assert_same(&before, &srv.dump(&copy, &[]), "after a failed restore");
    // …and with clean it becomes the backup again.
    let clean = RestoreOptions {
        clean: true,
        ..RestoreOptions::default()
    };
    f.restore(&copy_spec, &snap, &clean).expect("clean restore");
    assert_same(&original, &srv.dump(&copy, &[]), "clean restore");

    // A new installation where the original roles do not exist.
    for db in [&src, &copy] {
        srv.psql("postgres", &format!("DROP DATABASE {db}"));
    }
    srv.psql("postgres", &format!("DROP ROLE {owner}"));
    let new = format!("{src}_new");
    let new_spec = srv.spec("db", &new, "");
    let err = f
        .restore(&new_spec, &snap, &RestoreOptions::default())
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("role \"{owner}\" does not exist")),
        "{err}"
    );
    assert!(
        !srv.db_exists(&new),
        "the database created for a failed restore was left behind"
    );
    let no_owner = RestoreOptions {
        no_owner: true,
        ..RestoreOptions::default()
    };
    f.restore(&new_spec, &snap, &no_owner)
        .expect("restore without owners");
    assert_same(
        &original_no_owner,
        &srv.dump(&new, &["--no-owner", "--no-privileges"]),
        "new installation",
    );
    srv.psql("postgres", &format!("DROP DATABASE {new}"));
    f.assert_clean();
}

#[test]
fn postgres_failures_are_clear_and_record_nothing() {
    let Some(srv) = Server::from_env() else {
        return;
    };
    let f = Fixture::new();
    let db = unique("coffer_pg_fail");
    srv.psql("postgres", &format!("DROP DATABASE IF EXISTS {db}"));
    srv.psql("postgres", &format!("CREATE DATABASE {db}"));
    srv.psql(&db, "CREATE TABLE t (x int); INSERT INTO t VALUES (1)");

    let wrong_pw = spec(&format!(
        "name = \"db\"\nkind = \"postgres\"\nhost = \"{}\"\nport = {}\nuser = \"{}\"\n\
         password = \"not the password\"\ndatabase = \"{db}\"",
        srv.host, srv.port, srv.user
    ));
    let err = f.backup(&wrong_pw).unwrap_err();
    assert!(
        err.to_string().contains("password authentication failed"),
        "{err}"
    );

    let down = spec(&format!(
        "name = \"db\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\nport = 1\nuser = \"x\"\ndatabase = \"{db}\""
    ));
    let err = f.backup(&down).unwrap_err();
    assert!(err.to_string().contains("Connection refused"), "{err}");

    let err = f
        .backup(&srv.spec("db", "no_such_database_here", ""))
        .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");

    let unset = spec(&format!(
        "name = \"db\"\nkind = \"postgres\"\nhost = \"{}\"\nport = {}\nuser = \"{}\"\n\
         password = {{ env = \"COFFER_NO_SUCH_VARIABLE\" }}\ndatabase = \"{db}\"",
        srv.host, srv.port, srv.user
    ));
    let err = f.backup(&unset).unwrap_err();
    assert!(
        matches!(err, ComponentError::InvalidInput { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("COFFER_NO_SUCH_VARIABLE, which is not set"),
        "{err}"
    );

    // An older pg_dump than the server: a clear error naming both versions.
    // (A real older client is not installed here; a wrapper reports one.)
    let bin = f.path("oldbin");
    std::fs::create_dir_all(&bin).unwrap();
    let real_dump = which("pg_dump");
    write_script(
        &bin.join("pg_dump"),
        &format!(
            "[ \"$1\" = --version ] && {{ echo 'pg_dump (PostgreSQL) 14.9'; exit 0; }}\nexec {real_dump} \"$@\""
        ),
    );
    std::os::unix::fs::symlink(which("psql"), bin.join("psql")).unwrap();
    let err = f
        .backup(&srv.spec("db", &db, &format!("bin_dir = {bin:?}")))
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("pg_dump 14.9") && msg.contains("PostgreSQL 15."),
        "{msg}"
    );

    // A pg_dump that writes everything and then fails is not a backup.
    write_script(
        &bin.join("pg_dump"),
        &format!(
            "{real_dump} \"$@\"\necho 'pg_dump: error: simulated failure at the end' >&2\nexit 1"
        ),
    );
    let err = f
        .backup(&srv.spec("db", &db, &format!("bin_dir = {bin:?}")))
        .unwrap_err();
    assert!(
        err.to_string().contains("simulated failure at the end"),
        "{err}"
    );
    assert_eq!(f.snapshot_count(), 0);

    // Restoring into a missing database when creating is not allowed.
    let snap = f.backup(&srv.spec("db", &db, "")).expect("backup");
    let opts = RestoreOptions {
        create_database: false,
        ..RestoreOptions::default()
    };
    let err = f
        .restore(
            &srv.spec("db", "coffer_pg_missing_target", ""),
            &snap,
            &opts,
        )
        .unwrap_err();
    assert!(
        matches!(err, ComponentError::InvalidInput { .. }),
        "{err:?}"
    );
    assert!(!srv.db_exists("coffer_pg_missing_target"));
    srv.psql("postgres", &format!("DROP DATABASE {db}"));
    f.assert_clean();
}

fn which(program: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn write_script(path: &std::path::Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn postgres_refuses_an_upload_that_is_not_a_custom_dump_before_touching_anything() {
    let Some(srv) = Server::from_env() else {
        return;
    };
    let f = Fixture::new();
    let db = unique("coffer_pg_sniff");
    srv.psql("postgres", &format!("DROP DATABASE IF EXISTS {db}"));
    srv.psql("postgres", &format!("CREATE DATABASE {db}"));
    srv.psql(
        &db,
        "CREATE TABLE precious (x int); INSERT INTO precious VALUES (42);",
    );
    let s = srv.spec("db", &db, "");
    let clean = RestoreOptions {
        clean: true,
        ..RestoreOptions::default()
    };
    let untouched = |what: &str| {
        assert_eq!(
            srv.psql(&db, "SELECT x FROM precious").trim(),
            "42",
            "{what}: the database was touched"
        );
    };
    let plain_sql = srv.dump(&db, &[]);
    let identity = std::sync::Arc::new(coffer_engine::AgeIdentity::generate());
    let cases = [
        (
            "plain SQL dump",
            f.file("db.pgdump", plain_sql.as_bytes()),
            None,
        ),
        ("nothing", f.file("db.pgdump", b""), None),
        (
            "PGDMP then junk",
            f.file(
                "db.pgdump",
                b"PGDMP\x01\x0e\x00 and then nothing valid at all",
            ),
            None,
        ),
        (
            "sealed RDB",
            f.sealed_file("db.pgdump.age", b"REDIS0011 not a dump", &identity),
            Some(identity.clone()),
        ),
    ];
    for (what, file, id) in cases {
        let err = f.restore_file(&s, &file, &clean, id).unwrap_err();
        assert!(
            matches!(err, ComponentError::InvalidInput { .. }),
            "{what}: {err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("db.pgdump") && text.contains("pg_dump --format=custom"),
            "{what}: {text}"
        );
        untouched(what);
    }

    // A real custom-format dump passes the check, plain or sealed.
    let mut native = Vec::new();
    coffer_components::download(&s, &f.staging(), &mut native).expect("download");
    let good = f.file("db.pgdump", &native);
    f.restore_file(&s, &good, &clean, None)
        .expect("a real dump restores");
    untouched("real dump");
    let sealed = f.sealed_file("db.pgdump.age", &native, &identity);
    f.restore_file(&s, &sealed, &clean, Some(identity))
        .expect("a sealed real dump restores");
    untouched("sealed real dump");
    srv.psql("postgres", &format!("DROP DATABASE {db}"));
    f.assert_clean();
}
