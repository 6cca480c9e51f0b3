//! `postgres`: `pg_dump --format=custom` streamed into the engine (one
//! consistent snapshot of the database, taken by pg_dump's own transaction);
//! restored with `pg_restore --single-transaction`, so a failed restore
//! changes nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use coffer_model::component::PostgresSpec;

use crate::error::{ComponentError, Ctx};
use crate::secret::resolve_opt;
use crate::sink::Sink;
use crate::tools::{find_program, output};
use crate::{RestoreContext, RestoreReport};

/// The database `psql` connects to for `CREATE DATABASE` and existence checks.
const MAINTENANCE_DB: &str = "postgres";

/// Connection settings and tool locations for one spec.
struct Pg<'a> {
    c: &'a Ctx,
    spec: &'a PostgresSpec,
    password: Option<String>,
}

impl<'a> Pg<'a> {
    fn new(c: &'a Ctx, spec: &'a PostgresSpec) -> Result<Self, ComponentError> {
        Ok(Self {
            c,
            spec,
            password: resolve_opt(c, spec.password.as_ref())?,
        })
    }

    fn program(&self, name: &str) -> Result<PathBuf, ComponentError> {
        find_program(self.c, self.spec.bin_dir.as_deref(), &[name])
    }

    /// A command for `program` connected through libpq's environment, so
    /// the password never appears in a process listing.
    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("PGHOST", &self.spec.host)
            .env("PGPORT", self.spec.port.to_string())
            .env("PGUSER", &self.spec.user)
            .env("PGCONNECT_TIMEOUT", "15")
            .env_remove("PGDATABASE")
            .env_remove("PGSERVICE")
            .arg("--no-password");
        match &self.password {
            Some(pw) => cmd.env("PGPASSWORD", pw),
            None => cmd.env_remove("PGPASSWORD"),
        };
        if let Some(mode) = &self.spec.sslmode {
            cmd.env("PGSSLMODE", mode);
        }
        cmd
    }

    fn server(&self) -> String {
        format!("{}:{}", self.spec.host, self.spec.port)
    }

    /// Runs an SQL script with `psql` (variables `-v name=value` are
    /// interpolated safely with `:'name'` and `:"name"`), returning the
    /// unaligned, tuples-only output.
    fn psql(
        &self,
        db: &str,
        vars: &[(&str, &str)],
        script: &str,
    ) -> Result<String, ComponentError> {
        let mut cmd = self.command(&self.program("psql")?);
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .arg(format!("--dbname={db}"));
        for (k, v) in vars {
            cmd.arg("-v").arg(format!("{k}={v}"));
        }
        output(self.c, &mut cmd, script.as_bytes())
    }

    /// `pg_dump (PostgreSQL) 15.18 (Debian …)` → `("15.18", 15)`.
    fn tool_version(&self, program: &Path) -> Result<(String, u32), ComponentError> {
        let text = output(self.c, Command::new(program).arg("--version"), b"")?;
        let version = text
            .split_whitespace()
            .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
            .unwrap_or_default()
            .to_owned();
        let major = major_of(&version).ok_or_else(|| {
            self.c.tool(format!(
                "cannot read the version of {}: {text:?}",
                program.display()
            ))
        })?;
        Ok((version, major))
    }

    /// `(server_version, major)` of the server, connecting to `db`; also
    /// proves the credentials work before a long dump starts.
    fn server_version(&self, db: &str) -> Result<(String, u32), ComponentError> {
        let out = self.psql(
            db,
            &[],
            "SELECT current_setting('server_version_num') || '|' || current_setting('server_version');\n",
        )?;
        let line = out.trim();
        let (num, text) = line.split_once('|').unwrap_or((line, line));
        let num: u32 = num.parse().map_err(|_| {
            self.c
                .tool(format!("unexpected server version answer {line:?}"))
        })?;
        Ok((text.to_owned(), num / 10_000))
    }
}

/// `pg_database_size` of the spec's database: what a dump of it reads at
/// most (the dump itself is usually smaller: no indexes, no bloat).
pub(crate) fn database_size(c: &Ctx, spec: &PostgresSpec) -> Result<u64, ComponentError> {
    let out = Pg::new(c, spec)?.psql(
        &spec.database,
        &[],
        "SELECT pg_database_size(current_database());\n",
    )?;
    out.trim().parse().map_err(|_| {
        c.tool(format!(
            "unexpected pg_database_size answer {:?}",
            out.trim()
        ))
    })
}

fn major_of(version: &str) -> Option<u32> {
    version
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|m| m.parse().ok())
}

pub(crate) fn backup<T>(
    c: &Ctx,
    spec: &PostgresSpec,
    name: &str,
    _staging_dir: &std::path::Path,
    sink: impl Sink<Out = T>,
) -> Result<T, ComponentError> {
    let pg = Pg::new(c, spec)?;
    let pg_dump = pg.program("pg_dump")?;
    let (client, client_major) = pg.tool_version(&pg_dump)?;
    let (server, server_major) = pg.server_version(&spec.database)?;
    // pg_dump refuses a newer server; say which versions and what to do.
    if client_major < server_major {
        return Err(c.invalid(format!(
            "pg_dump {client} cannot dump the PostgreSQL {server} server at {}: pg_dump must be \
             at least the server's major version ({server_major}); set bin_dir to a newer \
             PostgreSQL client",
            pg.server()
        )));
    }
    let mut cmd = pg.command(&pg_dump);
    cmd.args(["--format=custom"])
        .arg(format!("--dbname={}", spec.database));
    sink.command(&mut cmd, name).map_err(|e| c.engine(e))
}

pub(crate) fn restore(
    c: &Ctx,
    spec: &PostgresSpec,
    ctx: &RestoreContext,
) -> Result<RestoreReport, ComponentError> {
    let pg = Pg::new(c, spec)?;
    let opts = ctx.options;
    let pg_restore = pg.program("pg_restore")?;
    let (client, _) = pg.tool_version(&pg_restore)?;
    let db = spec.database.as_str();
    let mut notes = Vec::new();

    let exists = pg.psql(
        MAINTENANCE_DB,
        &[("db", db)],
        "SELECT count(*) FROM pg_database WHERE datname = :'db';\n",
    )?;
    let created = match exists.trim() {
        "1" => false,
        "0" if opts.create_database => {
            pg.psql(MAINTENANCE_DB, &[("db", db)], "CREATE DATABASE :\"db\";\n")?;
            notes.push(format!("created database {db:?} on {}", pg.server()));
            true
        }
        "0" => {
            return Err(c.invalid(format!(
                "database {db:?} does not exist on {} (allow creating it, or create it first)",
                pg.server()
            )));
        }
        other => return Err(c.tool(format!("unexpected answer {other:?} from psql"))),
    };

    let mut cmd = pg.command(&pg_restore);
    cmd.arg(format!("--dbname={db}"))
        .args(["--exit-on-error", "--single-transaction"]);
    if opts.clean {
        cmd.args(["--clean", "--if-exists"]);
    }
    if opts.no_owner {
        cmd.args(["--no-owner", "--no-privileges"]);
    }
    if let Some(role) = &opts.role {
        cmd.arg(format!("--role={role}"));
    }
    let result = ctx.stream_into_command(c, &mut cmd, "restore.postgres.loading");
    if let Err(e) = result {
        // Leave the server as it was: drop the database we created.
        if created
            && let Err(drop_err) = pg.psql(
                MAINTENANCE_DB,
                &[("db", db)],
                "DROP DATABASE IF EXISTS :\"db\";\n",
            )
        {
            log::warn!(
                "could not drop the database {db:?} created for a failed restore: {drop_err}"
            );
        }
        return Err(match e {
            ComponentError::Tool { component, message } => ComponentError::Tool {
                component,
                message: format!(
                    "pg_restore {client} into {db:?} on {}: {message}",
                    pg.server()
                ),
            },
            other => other,
        });
    }
    notes.push(format!(
        "pg_restore {client} restored {db:?} on {}",
        pg.server()
    ));
    Ok(RestoreReport { notes })
}

/// Runs `sql` in database `db` of the spec's server; the unaligned,
/// tuples-only answer (a restore drill's verification query).
pub(crate) fn query(
    c: &Ctx,
    spec: &PostgresSpec,
    db: &str,
    sql: &str,
) -> Result<String, ComponentError> {
    Pg::new(c, spec)?.psql(db, &[], &format!("{sql};\n"))
}

/// Drops database `db` if it exists, ending its sessions first (a restore
/// drill's scratch database).
pub(crate) fn drop_database(c: &Ctx, spec: &PostgresSpec, db: &str) -> Result<(), ComponentError> {
    let pg = Pg::new(c, spec)?;
    pg.psql(
        MAINTENANCE_DB,
        &[("db", db)],
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :'db';\n\
         DROP DATABASE IF EXISTS :\"db\";\n",
    )
    .map(|_| ())
}
