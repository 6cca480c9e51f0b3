//! `mysql` (MariaDB and MySQL): `mariadb-dump`/`mysqldump
//! --single-transaction` streamed into the engine (one consistent InnoDB
//! snapshot, without locking writers out); restored through the client.
//!
//! The dump names no database (no `--databases`), so it can be restored
//! into any database name. MySQL restores are not atomic (DDL commits
//! implicitly): a failed restore can leave some tables restored.
//!
//! A dump is a script for the client, and the client has commands of its
//! own: `\!` and `system` run a shell, `\.` reads files. A restored dump
//! may be an upload, so the client replays it in `--binary-mode` (every
//! client command but `\C` and `delimiter` off in non-interactive input,
//! MariaDB and MySQL alike) and, where it has one, `--sandbox` (recent
//! MariaDB clients: no file system access at all).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use coffer_model::component::MysqlSpec;

use crate::error::{ComponentError, Ctx};
use crate::secret::resolve_opt;
use crate::sink::Sink;
use crate::tools::{find_program, output};
use crate::{RestoreContext, RestoreReport};

struct My<'a> {
    c: &'a Ctx,
    spec: &'a MysqlSpec,
    password: Option<String>,
}

impl<'a> My<'a> {
    fn new(c: &'a Ctx, spec: &'a MysqlSpec) -> Result<Self, ComponentError> {
        Ok(Self {
            c,
            spec,
            password: resolve_opt(c, spec.password.as_ref())?,
        })
    }

    /// A command with the connection settings. `--no-defaults` comes first
    /// (the tools require it there) so no `my.cnf` changes what runs; the
    /// password travels in `MYSQL_PWD`, never on the command line.
    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.arg("--no-defaults")
            .arg(format!("--host={}", self.spec.host))
            .arg(format!("--port={}", self.spec.port))
            .arg(format!("--user={}", self.spec.user));
        match &self.password {
            Some(pw) => cmd.env("MYSQL_PWD", pw),
            None => cmd.env_remove("MYSQL_PWD"),
        };
        cmd
    }

    fn client_program(&self) -> Result<PathBuf, ComponentError> {
        find_program(self.c, self.spec.bin_dir.as_deref(), &["mariadb", "mysql"])
    }

    fn client(&self) -> Result<Command, ComponentError> {
        Ok(self.command(&self.client_program()?))
    }

    /// The client that replays a dump: no client commands, no file access.
    fn replay_client(&self) -> Result<Command, ComponentError> {
        let program = self.client_program()?;
        let mut cmd = self.command(&program);
        cmd.arg("--binary-mode");
        if has_sandbox(self.c, &program)? {
            cmd.arg("--sandbox");
        }
        Ok(cmd)
    }

    /// Runs SQL statements with the client; returns the batch output.
    fn sql(&self, statements: &str) -> Result<String, ComponentError> {
        let mut cmd = self.client()?;
        cmd.args(["--batch", "--skip-column-names"]);
        output(self.c, &mut cmd, statements.as_bytes())
    }

    fn server(&self) -> String {
        format!("{}:{}", self.spec.host, self.spec.port)
    }
}

/// Whether the client at `program` knows `--sandbox` (MariaDB's clients
/// since 10.5.25, 10.6.18 and 10.11.8; Oracle MySQL's has none), from its
/// `--help`, asked once per program.
fn has_sandbox(c: &Ctx, program: &Path) -> Result<bool, ComponentError> {
    static KNOWN: Mutex<BTreeMap<PathBuf, bool>> = Mutex::new(BTreeMap::new());
    let cached = KNOWN
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(program)
        .copied();
    if let Some(yes) = cached {
        return Ok(yes);
    }
    let help = output(
        c,
        Command::new(program).args(["--no-defaults", "--help"]),
        b"",
    )?;
    let yes = help
        .lines()
        .any(|l| l.trim_start().starts_with("--sandbox"));
    KNOWN
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(program.to_path_buf(), yes);
    Ok(yes)
}

/// `name` as a quoted identifier.
fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `s` as a quoted string literal.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

pub(crate) fn backup<T>(
    c: &Ctx,
    spec: &MysqlSpec,
    name: &str,
    _staging_dir: &std::path::Path,
    sink: impl Sink<Out = T>,
) -> Result<T, ComponentError> {
    let my = My::new(c, spec)?;
    let dump = find_program(c, spec.bin_dir.as_deref(), &["mariadb-dump", "mysqldump"])?;
    let mut cmd = my.command(&dump);
    cmd.args([
        "--single-transaction",
        "--routines",
        "--triggers",
        "--events",
        "--hex-blob",
        "--default-character-set=utf8mb4",
    ])
    .arg(&spec.database);
    sink.command(&mut cmd, name).map_err(|e| c.engine(e))
}

pub(crate) fn restore(
    c: &Ctx,
    spec: &MysqlSpec,
    ctx: &RestoreContext,
) -> Result<RestoreReport, ComponentError> {
    let my = My::new(c, spec)?;
    let opts = ctx.options;
    let db = spec.database.as_str();
    let mut notes = Vec::new();
    let count = my.sql(&format!(
        "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {};\n",
        literal(db)
    ))?;
    let exists = count.trim() == "1";
    let mut created = false;
    if exists && opts.clean {
        my.sql(&format!(
            "DROP DATABASE {0};\nCREATE DATABASE {0};\n",
            ident(db)
        ))?;
        notes.push(format!(
            "dropped and recreated database {db:?} on {}",
            my.server()
        ));
    } else if !exists {
        if !opts.create_database {
            return Err(c.invalid(format!(
                "database {db:?} does not exist on {} (allow creating it, or create it first)",
                my.server()
            )));
        }
        my.sql(&format!("CREATE DATABASE {};\n", ident(db)))?;
        created = true;
        notes.push(format!("created database {db:?} on {}", my.server()));
    }
    let mut cmd = my.replay_client()?;
    cmd.arg(db);
    let result = ctx
        .stream_into_command(c, &mut cmd, "restore.mysql.loading")
        .map_err(|e| match e {
            ComponentError::Tool { component, message } if message.contains("Unknown command") => {
                ComponentError::Tool {
                    component,
                    message: format!(
                        "{message} (the dump contains a client command such as \\! or system: \
                     restores run the client in --binary-mode, which refuses them)"
                    ),
                }
            }
            other => other,
        });
    if let Err(e) = result {
        if created && let Err(drop_err) = my.sql(&format!("DROP DATABASE {};\n", ident(db))) {
            log::warn!(
                "could not drop the database {db:?} created for a failed restore: {drop_err}"
            );
        }
        return Err(e);
    }
    notes.push(format!("restored {db:?} on {}", my.server()));
    Ok(RestoreReport { notes })
}

/// Runs `sql` in database `db` of the spec's server; the batch answer (a
/// restore drill's verification query).
pub(crate) fn query(
    c: &Ctx,
    spec: &MysqlSpec,
    db: &str,
    sql: &str,
) -> Result<String, ComponentError> {
    My::new(c, spec)?.sql(&format!("USE {};\n{sql};\n", ident(db)))
}

/// Drops database `db` if it exists (a restore drill's scratch database).
pub(crate) fn drop_database(c: &Ctx, spec: &MysqlSpec, db: &str) -> Result<(), ComponentError> {
    My::new(c, spec)?
        .sql(&format!("DROP DATABASE IF EXISTS {};\n", ident(db)))
        .map(|_| ())
}
