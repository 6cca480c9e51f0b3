//! The catalog's connection, schema migrations and the helpers every
//! table's queries share.

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use coffer_model::access::Scope;
use rusqlite::Connection;

/// Catalog failures. The message names the operation.
#[derive(Debug, thiserror::Error)]
#[error("catalog: {context}: {source}")]
pub struct CatalogError {
    context: String,
    source: rusqlite::Error,
}

/// Catalog result.
pub type CatalogResult<T> = Result<T, CatalogError>;

pub(super) trait Ctx<T> {
    fn ctx(self, context: &str) -> CatalogResult<T>;
}

impl<T> Ctx<T> for rusqlite::Result<T> {
    fn ctx(self, context: &str) -> CatalogResult<T> {
        self.map_err(|source| CatalogError {
            context: context.to_owned(),
            source,
        })
    }
}

/// The schema, one script per version, in order.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_initial.sql"),
    include_str!("migrations/0002_users.sql"),
    include_str!("migrations/0003_exports.sql"),
    include_str!("migrations/0004_sensitivity.sql"),
    include_str!("migrations/0005_declared_targets.sql"),
    include_str!("migrations/0006_prunes.sql"),
    include_str!("migrations/0007_schedules.sql"),
    include_str!("migrations/0008_drills.sql"),
    include_str!("migrations/0009_notifications.sql"),
    include_str!("migrations/0010_copies.sql"),
    include_str!("migrations/0011_checks.sql"),
    include_str!("migrations/0012_audit.sql"),
];

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// The catalog handle. One connection behind a mutex: every statement is
/// short, and SQLite serialises writers anyway. Every call blocks: async
/// code reaches the catalog through `spawn_blocking` or a job's own thread.
pub struct Catalog {
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Catalog")
    }
}

pub(super) fn status<T: std::str::FromStr<Err = String>>(s: String) -> rusqlite::Result<T> {
    s.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
    })
}

/// The `scopes` and `components` columns of tokens and users (JSON arrays).
pub(super) fn access_columns(
    scopes: &[Scope],
    components: Option<&[String]>,
) -> (String, Option<String>) {
    // Serializing strings and scope names cannot fail.
    (
        serde_json::to_string(scopes).unwrap_or_default(),
        components.map(|c| serde_json::to_string(c).unwrap_or_default()),
    )
}

/// Reads what [`access_columns`] wrote, from columns `scopes_col` and `comps_col`.
pub(super) fn access_from_columns(
    r: &rusqlite::Row,
    scopes_col: usize,
    comps_col: usize,
) -> rusqlite::Result<(Vec<Scope>, Option<Vec<String>>)> {
    let bad = |col: usize| {
        move |e: serde_json::Error| {
            rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, e.into())
        }
    };
    let scopes: String = r.get(scopes_col)?;
    let comps: Option<String> = r.get(comps_col)?;
    Ok((
        serde_json::from_str(&scopes).map_err(bad(scopes_col))?,
        comps
            .map(|c| serde_json::from_str(&c))
            .transpose()
            .map_err(bad(comps_col))?,
    ))
}

/// `as_str`, `FromStr` (the error names `$field` and the valid values) and
/// `Display` for an enum stored as text.
macro_rules! stored_enum {
    ($t:ty, $field:literal, $($v:ident => $s:literal),+) => {
        impl $t {
            /// The wire and catalog form.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),+ }
            }
        }
        impl std::str::FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($s => Ok(Self::$v),)+
                    other => Err(format!(
                        "{} {other:?}: use {}", $field, [$($s),+].join(" or ")
                    )),
                }
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(super) use stored_enum;

pub(super) fn to_u64(v: Option<i64>) -> Option<u64> {
    v.and_then(|v| u64::try_from(v).ok())
}

pub(super) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Creates the database file readable by its owner only, or narrows the
/// mode of one a previous version left open to others (with its WAL and
/// shared-memory files), before SQLite opens it.
fn owner_only(path: &Path) -> CatalogResult<()> {
    let io = |what: &str, e: std::io::Error| CatalogError {
        context: format!("{what} {}", path.display()),
        source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
    };
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| io("creating", e))?;
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        match std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("securing", e)),
        }
    }
    Ok(())
}

impl Catalog {
    /// Opens (creating if needed, mode 0600) `<data_dir>/catalog.sqlite` and migrates it.
    pub fn open(path: &Path) -> CatalogResult<Self> {
        owner_only(path)?;
        let conn = Connection::open(path).ctx(&format!("opening {}", path.display()))?;
        Self::setup(conn)
    }

    /// An in-memory catalog (tests).
    #[cfg(test)]
    pub fn in_memory() -> CatalogResult<Self> {
        Self::setup(Connection::open_in_memory().ctx("opening in memory")?)
    }

    fn setup(mut conn: Connection) -> CatalogResult<Self> {
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;
             PRAGMA busy_timeout = 5000;",
        )
        .ctx("configuring")?;
        let version: usize = conn
            .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
            .ctx("reading the schema version")?
            .try_into()
            .unwrap_or(0);
        if version > MIGRATIONS.len() {
            return Err(CatalogError {
                context: format!(
                    "the catalog has schema version {version}, newer than this Coffer knows ({}); \
                     upgrade Coffer",
                    MIGRATIONS.len()
                ),
                source: rusqlite::Error::InvalidQuery,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = conn.transaction().ctx("starting a migration")?;
            tx.execute_batch(sql).ctx(&format!("migration {}", i + 1))?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .ctx("recording the schema version")?;
            tx.commit().ctx("committing a migration")?;
        }
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    pub(super) fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_applied_once_and_a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        Catalog::open(&path).unwrap();
        Catalog::open(&path).unwrap();
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let e = Catalog::open(&path).unwrap_err().to_string();
        assert!(e.contains("newer than this Coffer knows"), "{e}");
    }
}
