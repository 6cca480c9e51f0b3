//! The catalog: what the server knows about targets, backups, restores,
//! tokens and job logs, in SQLite (`<data_dir>/catalog.sqlite`).
//!
//! It is a cache of the repositories plus the server's own records: the
//! backups themselves live in the targets, and each component snapshot
//! carries its backup id, label and component count as tags.
//!
//! Migrations are numbered SQL scripts applied in order inside a transaction;
//! `PRAGMA user_version` records how many ran.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use coffer_model::access::{BackupStatus, RestoreStatus, Scope};
use rusqlite::{Connection, OptionalExtension, params};

/// Catalog failures. The message names the operation.
#[derive(Debug, thiserror::Error)]
#[error("catalog: {context}: {source}")]
pub struct CatalogError {
    context: String,
    source: rusqlite::Error,
}

/// Catalog result.
pub type CatalogResult<T> = Result<T, CatalogError>;

trait Ctx<T> {
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

const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE targets (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        spec_sealed BLOB NOT NULL,
        password_sealed BLOB NOT NULL,
        mode TEXT NOT NULL CHECK (mode IN ('own', 'attach')),
        is_default INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE backups (
        id TEXT PRIMARY KEY,
        label TEXT NOT NULL,
        target TEXT NOT NULL,
        status TEXT NOT NULL,
        error TEXT,
        component_count INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        finished_at INTEGER
    );
    CREATE INDEX backups_label ON backups(label);
    CREATE TABLE backup_components (
        backup_id TEXT NOT NULL REFERENCES backups(id) ON DELETE CASCADE,
        component TEXT NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        error TEXT,
        snapshot_id TEXT,
        files INTEGER,
        bytes INTEGER,
        bytes_added INTEGER,
        started_at INTEGER,
        finished_at INTEGER,
        PRIMARY KEY (backup_id, component)
    );
    CREATE TABLE restores (
        id TEXT PRIMARY KEY,
        backup_id TEXT NOT NULL,
        status TEXT NOT NULL,
        error TEXT,
        created_at INTEGER NOT NULL,
        finished_at INTEGER
    );
    CREATE TABLE restore_components (
        restore_id TEXT NOT NULL REFERENCES restores(id) ON DELETE CASCADE,
        component TEXT NOT NULL,
        status TEXT NOT NULL,
        error TEXT,
        notes TEXT,
        started_at INTEGER,
        finished_at INTEGER,
        PRIMARY KEY (restore_id, component)
    );
    CREATE TABLE job_log (
        job_id TEXT NOT NULL,
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        line TEXT NOT NULL
    );
    CREATE INDEX job_log_job ON job_log(job_id, seq);
    CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        scopes TEXT NOT NULL,
        components TEXT,
        expires_at INTEGER,
        created_at INTEGER NOT NULL,
        revoked_at INTEGER
    );",
    // 2: users with passwords.
    "CREATE TABLE users (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        scopes TEXT NOT NULL,
        components TEXT,
        created_at INTEGER NOT NULL,
        disabled_at INTEGER
    );",
    // 3: exports (spooled files in <data_dir>/exports).
    "CREATE TABLE exports (
        id TEXT PRIMARY KEY,
        backup_id TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('EXPORTING', 'READY', 'ERROR', 'EXPIRED')),
        error TEXT,
        sensitive INTEGER NOT NULL,
        protection TEXT NOT NULL,
        file_name TEXT NOT NULL,
        components TEXT NOT NULL,
        size INTEGER,
        sha256 TEXT,
        md5 TEXT,
        created_at INTEGER NOT NULL,
        finished_at INTEGER,
        expires_at INTEGER
    );
    CREATE INDEX exports_backup ON exports(backup_id);",
];

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// A stored target: its spec and repository password are sealed.
#[derive(Debug, Clone)]
pub struct TargetRow {
    /// Unique name.
    pub name: String,
    /// `local`, `s3`, `sftp`, `ftp`.
    pub kind: String,
    /// The spec as JSON, sealed with the server key.
    pub spec_sealed: Vec<u8>,
    /// The repository password, sealed with the server key.
    pub password_sealed: Vec<u8>,
    /// `own` (this server writes and prunes) or `attach` (read only).
    pub mode: String,
    /// The target used when a request names none.
    pub is_default: bool,
    /// Creation time.
    pub created_at: i64,
}

/// A backup.
#[derive(Debug, Clone)]
pub struct BackupRow {
    /// `<label>-<uuid>`.
    pub id: String,
    /// Its label.
    pub label: String,
    /// The target it was written to.
    pub target: String,
    /// Overall state.
    pub status: BackupStatus,
    /// Why it is `ERROR`.
    pub error: Option<String>,
    /// How many components it has.
    pub component_count: u32,
    /// Start.
    pub created_at: i64,
    /// End.
    pub finished_at: Option<i64>,
}

/// One component of a backup.
#[derive(Debug, Clone)]
pub struct BackupComponentRow {
    /// Component name.
    pub component: String,
    /// Its kind (`files`, `postgres`, …).
    pub kind: String,
    /// Its state.
    pub status: BackupStatus,
    /// Why it is `ERROR`.
    pub error: Option<String>,
    /// The snapshot holding it, once `READY`.
    pub snapshot_id: Option<String>,
    /// Files in the snapshot.
    pub files: Option<u64>,
    /// Bytes of content.
    pub bytes: Option<u64>,
    /// Bytes added to the repository.
    pub bytes_added: Option<u64>,
    /// Start.
    pub started_at: Option<i64>,
    /// End.
    pub finished_at: Option<i64>,
}

/// A restore.
#[derive(Debug, Clone)]
pub struct RestoreRow {
    /// `restore-<uuid>`.
    pub id: String,
    /// The backup restored.
    pub backup_id: String,
    /// Overall state.
    pub status: RestoreStatus,
    /// Why it is `ERROR` (or a warning, for a tolerated post-hook failure).
    pub error: Option<String>,
    /// Start.
    pub created_at: i64,
    /// End.
    pub finished_at: Option<i64>,
}

/// One component of a restore.
#[derive(Debug, Clone)]
pub struct RestoreComponentRow {
    /// Component name.
    pub component: String,
    /// Its state.
    pub status: RestoreStatus,
    /// Why it is `ERROR`.
    pub error: Option<String>,
    /// What the driver reported (keys copied, database created, …).
    pub notes: Vec<String>,
    /// Start.
    pub started_at: Option<i64>,
    /// End.
    pub finished_at: Option<i64>,
}

/// A stored token (the secret itself is never stored).
#[derive(Debug, Clone)]
pub struct TokenRow {
    /// Public id (`tok-<uuid>`).
    pub id: String,
    /// What it is for.
    pub name: String,
    /// SHA-256 of the secret.
    pub hash: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// The components it is limited to (`None`: all).
    pub components: Option<Vec<String>>,
    /// Expiry.
    pub expires_at: Option<i64>,
    /// Creation.
    pub created_at: i64,
    /// Revocation.
    pub revoked_at: Option<i64>,
}

/// A user (the password only as its argon2id hash).
#[derive(Debug, Clone)]
pub struct UserRow {
    /// Public id (`usr-<uuid>`).
    pub id: String,
    /// Login name.
    pub name: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// What the user may do.
    pub scopes: Vec<Scope>,
    /// The components the user is limited to (`None`: all).
    pub components: Option<Vec<String>>,
    /// Creation.
    pub created_at: i64,
    /// When it was disabled (it can no longer log in; its login tokens stop working).
    pub disabled_at: Option<i64>,
}

/// An export: a spooled `<backup-id>.coffer` file.
#[derive(Debug, Clone)]
pub struct ExportRow {
    /// `export-<uuid>`.
    pub id: String,
    /// The backup exported.
    pub backup_id: String,
    /// `EXPORTING`, `READY`, `ERROR` or `EXPIRED` (the file was removed).
    pub status: String,
    /// Why it is `ERROR`.
    pub error: Option<String>,
    /// Only the sensitive components (still sealed).
    pub sensitive: bool,
    /// `password` or `age`.
    pub protection: String,
    /// The download's name: `<backup-id>.coffer` (`.sensitive.coffer`).
    pub file_name: String,
    /// The components it holds.
    pub components: Vec<String>,
    /// Bytes, once READY.
    pub size: Option<u64>,
    /// SHA-256 (hex), once READY.
    pub sha256: Option<String>,
    /// MD5 (hex), once READY.
    pub md5: Option<String>,
    /// Start.
    pub created_at: i64,
    /// End.
    pub finished_at: Option<i64>,
    /// When the file is removed (READY exports).
    pub expires_at: Option<i64>,
}

/// The catalog handle. One connection behind a mutex: every statement is
/// short, and SQLite serialises writers anyway.
pub struct Catalog {
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Catalog")
    }
}

fn status<T: std::str::FromStr<Err = String>>(s: String) -> rusqlite::Result<T> {
    s.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
    })
}

/// The `scopes` and `components` columns of tokens and users (JSON arrays).
fn access_columns(scopes: &[Scope], components: Option<&[String]>) -> (String, Option<String>) {
    // Serializing strings and scope names cannot fail.
    (
        serde_json::to_string(scopes).unwrap_or_default(),
        components.map(|c| serde_json::to_string(c).unwrap_or_default()),
    )
}

/// Reads what [`access_columns`] wrote, from columns `scopes_col` and `comps_col`.
fn access_from_columns(
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

fn to_u64(v: Option<i64>) -> Option<u64> {
    v.and_then(|v| u64::try_from(v).ok())
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Catalog {
    /// Opens (creating if needed) `<data_dir>/catalog.sqlite` and migrates it.
    pub fn open(path: &Path) -> CatalogResult<Self> {
        let conn = Connection::open(path).ctx(&format!("opening {}", path.display()))?;
        Self::setup(conn)
    }

    /// An in-memory catalog (tests).
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

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ---------------------------------------------------------------- targets

    /// Adds a target. The first target added becomes the default.
    pub fn insert_target(&self, t: &TargetRow) -> CatalogResult<()> {
        self.conn()
            .execute(
                "INSERT INTO targets (name, kind, spec_sealed, password_sealed, mode, is_default, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![t.name, t.kind, t.spec_sealed, t.password_sealed, t.mode, t.is_default, t.created_at],
            )
            .ctx("adding a target")?;
        Ok(())
    }

    /// Replaces a target's spec (and password, mode).
    pub fn update_target(&self, t: &TargetRow) -> CatalogResult<bool> {
        let n = self
            .conn()
            .execute(
                "UPDATE targets SET kind = ?2, spec_sealed = ?3, password_sealed = ?4, mode = ?5
                 WHERE name = ?1",
                params![t.name, t.kind, t.spec_sealed, t.password_sealed, t.mode],
            )
            .ctx("updating a target")?;
        Ok(n == 1)
    }

    /// Removes a target; false if there was none.
    pub fn delete_target(&self, name: &str) -> CatalogResult<bool> {
        let n = self
            .conn()
            .execute("DELETE FROM targets WHERE name = ?1", [name])
            .ctx("deleting a target")?;
        Ok(n == 1)
    }

    fn target_from(r: &rusqlite::Row) -> rusqlite::Result<TargetRow> {
        Ok(TargetRow {
            name: r.get(0)?,
            kind: r.get(1)?,
            spec_sealed: r.get(2)?,
            password_sealed: r.get(3)?,
            mode: r.get(4)?,
            is_default: r.get(5)?,
            created_at: r.get(6)?,
        })
    }

    /// Every target, by name.
    pub fn targets(&self) -> CatalogResult<Vec<TargetRow>> {
        let conn = self.conn();
        let mut st = conn
            .prepare(
                "SELECT name, kind, spec_sealed, password_sealed, mode, is_default, created_at
                 FROM targets ORDER BY name",
            )
            .ctx("listing targets")?;
        let rows = st.query_map([], Self::target_from).ctx("listing targets")?;
        rows.collect::<Result<_, _>>().ctx("listing targets")
    }

    /// One target.
    pub fn target(&self, name: &str) -> CatalogResult<Option<TargetRow>> {
        self.conn()
            .query_row(
                "SELECT name, kind, spec_sealed, password_sealed, mode, is_default, created_at
                 FROM targets WHERE name = ?1",
                [name],
                Self::target_from,
            )
            .optional()
            .ctx("reading a target")
    }

    /// The default target's name.
    pub fn default_target(&self) -> CatalogResult<Option<String>> {
        self.conn()
            .query_row("SELECT name FROM targets WHERE is_default = 1", [], |r| {
                r.get(0)
            })
            .optional()
            .ctx("reading the default target")
    }

    /// Makes `name` the only default target.
    pub fn set_default_target(&self, name: &str) -> CatalogResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction().ctx("changing the default target")?;
        tx.execute("UPDATE targets SET is_default = (name = ?1)", [name])
            .ctx("changing the default target")?;
        tx.commit().ctx("changing the default target")
    }

    /// Backups recorded on a target (any state).
    pub fn backups_on_target(&self, target: &str) -> CatalogResult<u64> {
        self.conn()
            .query_row(
                "SELECT COUNT(*) FROM backups WHERE target = ?1",
                [target],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
            .ctx("counting backups")
    }

    // ---------------------------------------------------------------- backups

    /// Records a new backup and its components, all `BACKING_UP`.
    pub fn insert_backup(
        &self,
        b: &BackupRow,
        components: &[(String, String)],
    ) -> CatalogResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction().ctx("recording a backup")?;
        tx.execute(
            "INSERT INTO backups (id, label, target, status, error, component_count, created_at, finished_at)
             VALUES (?1, ?2, ?3, ?4, NULL, ?5, ?6, NULL)",
            params![b.id, b.label, b.target, b.status.as_str(), b.component_count, b.created_at],
        )
        .ctx("recording a backup")?;
        for (name, kind) in components {
            tx.execute(
                "INSERT INTO backup_components (backup_id, component, kind, status) VALUES (?1, ?2, ?3, ?4)",
                params![b.id, name, kind, b.status.as_str()],
            )
            .ctx("recording a backup component")?;
        }
        tx.commit().ctx("recording a backup")
    }

    /// Records a backup found in a repository (catalog rebuild), with its
    /// components as found: `(name, kind, snapshot)`.
    pub fn insert_rebuilt_backup(
        &self,
        b: &BackupRow,
        components: &[(String, String, coffer_engine::SnapshotInfo)],
    ) -> CatalogResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction().ctx("recording a rebuilt backup")?;
        tx.execute(
            "INSERT INTO backups (id, label, target, status, error, component_count, created_at, finished_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![b.id, b.label, b.target, b.status.as_str(), b.error, b.component_count, b.created_at, b.finished_at],
        )
        .ctx("recording a rebuilt backup")?;
        for (name, kind, s) in components {
            let t = s
                .time
                .parse::<jiff::Timestamp>()
                .map(|t| t.as_second())
                .ok();
            tx.execute(
                "INSERT INTO backup_components (backup_id, component, kind, status, snapshot_id,
                   files, bytes, bytes_added, started_at, finished_at)
                 VALUES (?1, ?2, ?3, 'READY', ?4, ?5, ?6, ?7, ?8, ?8)",
                params![
                    b.id,
                    name,
                    kind,
                    s.id,
                    to_i64(s.files),
                    to_i64(s.bytes),
                    to_i64(s.bytes_added),
                    t
                ],
            )
            .ctx("recording a rebuilt backup component")?;
        }
        tx.commit().ctx("recording a rebuilt backup")
    }

    /// A component started.
    pub fn backup_component_started(&self, id: &str, component: &str) -> CatalogResult<()> {
        self.conn()
            .execute(
                "UPDATE backup_components SET started_at = ?3 WHERE backup_id = ?1 AND component = ?2",
                params![id, component, now()],
            )
            .ctx("updating a backup component")?;
        Ok(())
    }

    /// A component ended: `READY` with its snapshot, or `ERROR` with the reason.
    pub fn finish_backup_component(
        &self,
        id: &str,
        component: &str,
        outcome: Result<&coffer_engine::SnapshotInfo, &str>,
    ) -> CatalogResult<()> {
        let conn = self.conn();
        match outcome {
            Ok(s) => conn.execute(
                "UPDATE backup_components SET status = 'READY', error = NULL, snapshot_id = ?3,
                   files = ?4, bytes = ?5, bytes_added = ?6, finished_at = ?7
                 WHERE backup_id = ?1 AND component = ?2",
                params![
                    id,
                    component,
                    s.id,
                    to_i64(s.files),
                    to_i64(s.bytes),
                    to_i64(s.bytes_added),
                    now()
                ],
            ),
            Err(reason) => conn.execute(
                "UPDATE backup_components SET status = 'ERROR', error = ?3, finished_at = ?4
                 WHERE backup_id = ?1 AND component = ?2",
                params![id, component, reason, now()],
            ),
        }
        .ctx("updating a backup component")?;
        Ok(())
    }

    /// The backup ended.
    pub fn finish_backup(
        &self,
        id: &str,
        status: BackupStatus,
        error: Option<&str>,
    ) -> CatalogResult<()> {
        self.conn()
            .execute(
                "UPDATE backups SET status = ?2, error = ?3, finished_at = ?4 WHERE id = ?1",
                params![id, status.as_str(), error, now()],
            )
            .ctx("finishing a backup")?;
        Ok(())
    }

    fn backup_from(r: &rusqlite::Row) -> rusqlite::Result<BackupRow> {
        Ok(BackupRow {
            id: r.get(0)?,
            label: r.get(1)?,
            target: r.get(2)?,
            status: status(r.get(3)?)?,
            error: r.get(4)?,
            component_count: r.get(5)?,
            created_at: r.get(6)?,
            finished_at: r.get(7)?,
        })
    }

    /// Backups, newest first, optionally by label and state.
    pub fn backups(
        &self,
        label: Option<&str>,
        st: Option<BackupStatus>,
    ) -> CatalogResult<Vec<BackupRow>> {
        let conn = self.conn();
        let mut q = conn
            .prepare(
                "SELECT id, label, target, status, error, component_count, created_at, finished_at
                 FROM backups WHERE (?1 IS NULL OR label = ?1) AND (?2 IS NULL OR status = ?2)
                 ORDER BY created_at DESC, id",
            )
            .ctx("listing backups")?;
        let rows = q
            .query_map(params![label, st.map(|s| s.as_str())], Self::backup_from)
            .ctx("listing backups")?;
        rows.collect::<Result<_, _>>().ctx("listing backups")
    }

    /// One backup.
    pub fn backup(&self, id: &str) -> CatalogResult<Option<BackupRow>> {
        self.conn()
            .query_row(
                "SELECT id, label, target, status, error, component_count, created_at, finished_at
                 FROM backups WHERE id = ?1",
                [id],
                Self::backup_from,
            )
            .optional()
            .ctx("reading a backup")
    }

    /// A backup's components, by name.
    pub fn backup_components(&self, id: &str) -> CatalogResult<Vec<BackupComponentRow>> {
        let conn = self.conn();
        let mut q = conn
            .prepare(
                "SELECT component, kind, status, error, snapshot_id, files, bytes, bytes_added,
                        started_at, finished_at
                 FROM backup_components WHERE backup_id = ?1 ORDER BY component",
            )
            .ctx("reading backup components")?;
        let rows = q
            .query_map([id], |r| {
                Ok(BackupComponentRow {
                    component: r.get(0)?,
                    kind: r.get(1)?,
                    status: status(r.get(2)?)?,
                    error: r.get(3)?,
                    snapshot_id: r.get(4)?,
                    files: to_u64(r.get(5)?),
                    bytes: to_u64(r.get(6)?),
                    bytes_added: to_u64(r.get(7)?),
                    started_at: r.get(8)?,
                    finished_at: r.get(9)?,
                })
            })
            .ctx("reading backup components")?;
        rows.collect::<Result<_, _>>()
            .ctx("reading backup components")
    }

    /// Forgets a backup (and its components and log).
    pub fn delete_backup(&self, id: &str) -> CatalogResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction().ctx("deleting a backup")?;
        tx.execute("DELETE FROM backups WHERE id = ?1", [id])
            .ctx("deleting a backup")?;
        tx.execute("DELETE FROM job_log WHERE job_id = ?1", [id])
            .ctx("deleting a backup's log")?;
        tx.commit().ctx("deleting a backup")
    }

    // ---------------------------------------------------------------- restores

    /// Records a new restore and its components, all `RESTORING`.
    pub fn insert_restore(&self, r: &RestoreRow, components: &[String]) -> CatalogResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction().ctx("recording a restore")?;
        tx.execute(
            "INSERT INTO restores (id, backup_id, status, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![r.id, r.backup_id, r.status.as_str(), r.created_at],
        )
        .ctx("recording a restore")?;
        for c in components {
            tx.execute(
                "INSERT INTO restore_components (restore_id, component, status) VALUES (?1, ?2, ?3)",
                params![r.id, c, r.status.as_str()],
            )
            .ctx("recording a restore component")?;
        }
        tx.commit().ctx("recording a restore")
    }

    /// A restore component started.
    pub fn restore_component_started(&self, id: &str, component: &str) -> CatalogResult<()> {
        self.conn()
            .execute(
                "UPDATE restore_components SET started_at = ?3 WHERE restore_id = ?1 AND component = ?2",
                params![id, component, now()],
            )
            .ctx("updating a restore component")?;
        Ok(())
    }

    /// A restore component ended.
    pub fn finish_restore_component(
        &self,
        id: &str,
        component: &str,
        outcome: Result<&[String], &str>,
    ) -> CatalogResult<()> {
        let conn = self.conn();
        match outcome {
            Ok(notes) => conn.execute(
                "UPDATE restore_components SET status = 'READY', notes = ?3, finished_at = ?4
                 WHERE restore_id = ?1 AND component = ?2",
                params![
                    id,
                    component,
                    serde_json::to_string(notes).unwrap_or_default(),
                    now()
                ],
            ),
            Err(reason) => conn.execute(
                "UPDATE restore_components SET status = 'ERROR', error = ?3, finished_at = ?4
                 WHERE restore_id = ?1 AND component = ?2",
                params![id, component, reason, now()],
            ),
        }
        .ctx("updating a restore component")?;
        Ok(())
    }

    /// The restore ended.
    pub fn finish_restore(
        &self,
        id: &str,
        status: RestoreStatus,
        error: Option<&str>,
    ) -> CatalogResult<()> {
        self.conn()
            .execute(
                "UPDATE restores SET status = ?2, error = ?3, finished_at = ?4 WHERE id = ?1",
                params![id, status.as_str(), error, now()],
            )
            .ctx("finishing a restore")?;
        Ok(())
    }

    /// One restore and its components.
    pub fn restore(
        &self,
        id: &str,
    ) -> CatalogResult<Option<(RestoreRow, Vec<RestoreComponentRow>)>> {
        let conn = self.conn();
        let Some(row) = conn
            .query_row(
                "SELECT id, backup_id, status, error, created_at, finished_at FROM restores WHERE id = ?1",
                [id],
                |r| {
                    Ok(RestoreRow {
                        id: r.get(0)?,
                        backup_id: r.get(1)?,
                        status: status(r.get(2)?)?,
                        error: r.get(3)?,
                        created_at: r.get(4)?,
                        finished_at: r.get(5)?,
                    })
                },
            )
            .optional()
            .ctx("reading a restore")?
        else {
            return Ok(None);
        };
        let mut q = conn
            .prepare(
                "SELECT component, status, error, notes, started_at, finished_at
                 FROM restore_components WHERE restore_id = ?1 ORDER BY component",
            )
            .ctx("reading restore components")?;
        let comps = q
            .query_map([id], |r| {
                let notes: Option<String> = r.get(3)?;
                Ok(RestoreComponentRow {
                    component: r.get(0)?,
                    status: status(r.get(1)?)?,
                    error: r.get(2)?,
                    notes: notes
                        .and_then(|n| serde_json::from_str(&n).ok())
                        .unwrap_or_default(),
                    started_at: r.get(4)?,
                    finished_at: r.get(5)?,
                })
            })
            .ctx("reading restore components")?
            .collect::<Result<_, _>>()
            .ctx("reading restore components")?;
        Ok(Some((row, comps)))
    }

    // ---------------------------------------------------------------- exports

    /// Records a new export (`EXPORTING`).
    pub fn insert_export(&self, e: &ExportRow) -> CatalogResult<()> {
        self.conn()
            .execute(
                "INSERT INTO exports (id, backup_id, status, sensitive, protection, file_name, components, created_at)
                 VALUES (?1, ?2, 'EXPORTING', ?3, ?4, ?5, ?6, ?7)",
                params![
                    e.id,
                    e.backup_id,
                    e.sensitive,
                    e.protection,
                    e.file_name,
                    serde_json::to_string(&e.components).unwrap_or_default(),
                    e.created_at
                ],
            )
            .ctx("recording an export")?;
        Ok(())
    }

    /// An export ended: READY with its digests and expiry, or ERROR.
    pub fn finish_export(
        &self,
        id: &str,
        outcome: Result<(&coffer_export::Digests, i64), &str>,
    ) -> CatalogResult<()> {
        let conn = self.conn();
        match outcome {
            Ok((d, expires_at)) => conn.execute(
                "UPDATE exports SET status = 'READY', size = ?2, sha256 = ?3, md5 = ?4,
                 finished_at = ?5, expires_at = ?6 WHERE id = ?1",
                params![id, to_i64(d.size), d.sha256, d.md5, now(), expires_at],
            ),
            Err(reason) => conn.execute(
                "UPDATE exports SET status = 'ERROR', error = ?2, finished_at = ?3 WHERE id = ?1",
                params![id, reason, now()],
            ),
        }
        .ctx("finishing an export")?;
        Ok(())
    }

    fn export_rows(
        &self,
        filter: &str,
        arg: &dyn rusqlite::ToSql,
    ) -> CatalogResult<Vec<ExportRow>> {
        let conn = self.conn();
        let mut q = conn
            .prepare(&format!(
                "SELECT id, backup_id, status, error, sensitive, protection, file_name, size, sha256,
                 md5, created_at, finished_at, expires_at, components FROM exports WHERE {filter} ORDER BY created_at, id"
            ))
            .ctx("reading exports")?;
        q.query_map([arg], |r| {
            Ok(ExportRow {
                id: r.get(0)?,
                backup_id: r.get(1)?,
                status: r.get(2)?,
                error: r.get(3)?,
                sensitive: r.get(4)?,
                protection: r.get(5)?,
                file_name: r.get(6)?,
                size: to_u64(r.get(7)?),
                sha256: r.get(8)?,
                md5: r.get(9)?,
                created_at: r.get(10)?,
                finished_at: r.get(11)?,
                expires_at: r.get(12)?,
                components: serde_json::from_str(&r.get::<_, String>(13)?).unwrap_or_default(),
            })
        })
        .ctx("reading exports")?
        .collect::<Result<_, _>>()
        .ctx("reading exports")
    }

    /// One export.
    pub fn export(&self, id: &str) -> CatalogResult<Option<ExportRow>> {
        Ok(self.export_rows("id = ?1", &id)?.into_iter().next())
    }

    /// A backup's exports, oldest first.
    pub fn exports_of_backup(&self, backup_id: &str) -> CatalogResult<Vec<ExportRow>> {
        self.export_rows("backup_id = ?1", &backup_id)
    }

    /// READY exports whose time is up become EXPIRED; returns their ids
    /// (their files are the caller's to remove).
    pub fn expire_exports(&self, at: i64) -> CatalogResult<Vec<String>> {
        let conn = self.conn();
        let mut q = conn
            .prepare(
                "UPDATE exports SET status = 'EXPIRED'
                 WHERE status = 'READY' AND expires_at <= ?1 RETURNING id",
            )
            .ctx("expiring exports")?;
        q.query_map([at], |r| r.get(0))
            .ctx("expiring exports")?
            .collect::<Result<_, _>>()
            .ctx("expiring exports")
    }

    /// Forgets an export and its log.
    pub fn delete_export(&self, id: &str) -> CatalogResult<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction().ctx("deleting an export")?;
        let n = tx
            .execute("DELETE FROM exports WHERE id = ?1", [id])
            .ctx("deleting an export")?;
        tx.execute("DELETE FROM job_log WHERE job_id = ?1", [id])
            .ctx("deleting an export's log")?;
        tx.commit().ctx("deleting an export")?;
        Ok(n > 0)
    }

    // ---------------------------------------------------------------- restart

    /// Marks every job still running as `ERROR` ("interrupted by restart"):
    /// a job found running at start was cut short. Returns how many.
    pub fn interrupt_running_jobs(&self) -> CatalogResult<usize> {
        let mut conn = self.conn();
        let tx = conn.transaction().ctx("marking interrupted jobs")?;
        let reason = "interrupted by restart";
        let t = now();
        let mut n = tx
            .execute(
                "UPDATE backups SET status = 'ERROR', error = ?1, finished_at = ?2 WHERE status = 'BACKING_UP'",
                params![reason, t],
            )
            .ctx("marking interrupted backups")?;
        tx.execute(
            "UPDATE backup_components SET status = 'ERROR', error = ?1, finished_at = ?2 WHERE status = 'BACKING_UP'",
            params![reason, t],
        )
        .ctx("marking interrupted backup components")?;
        n += tx
            .execute(
                "UPDATE restores SET status = 'ERROR', error = ?1, finished_at = ?2 WHERE status = 'RESTORING'",
                params![reason, t],
            )
            .ctx("marking interrupted restores")?;
        tx.execute(
            "UPDATE restore_components SET status = 'ERROR', error = ?1, finished_at = ?2 WHERE status = 'RESTORING'",
            params![reason, t],
        )
        .ctx("marking interrupted restore components")?;
        n += tx
            .execute(
                "UPDATE exports SET status = 'ERROR', error = ?1, finished_at = ?2 WHERE status = 'EXPORTING'",
                params![reason, t],
            )
            .ctx("marking interrupted exports")?;
        tx.commit().ctx("marking interrupted jobs")?;
        Ok(n)
    }

    // ---------------------------------------------------------------- logs

    /// Appends a line to a job's log.
    pub fn log(&self, job_id: &str, line: &str) {
        let r = self.conn().execute(
            "INSERT INTO job_log (job_id, at, line) VALUES (?1, ?2, ?3)",
            params![job_id, now(), line],
        );
        if let Err(e) = r {
            tracing::warn!(job = job_id, "could not keep a log line: {e}");
        }
    }

    /// A job's log: (time, line), oldest first.
    pub fn job_log(&self, job_id: &str) -> CatalogResult<Vec<(i64, String)>> {
        let conn = self.conn();
        let mut q = conn
            .prepare("SELECT at, line FROM job_log WHERE job_id = ?1 ORDER BY seq")
            .ctx("reading a job log")?;
        let rows = q
            .query_map([job_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .ctx("reading a job log")?;
        rows.collect::<Result<_, _>>().ctx("reading a job log")
    }

    // ---------------------------------------------------------------- tokens

    /// Stores a token.
    pub fn insert_token(&self, t: &TokenRow) -> CatalogResult<()> {
        let (scopes, comps) = access_columns(&t.scopes, t.components.as_deref());
        self.conn()
            .execute(
                "INSERT INTO tokens (id, name, hash, scopes, components, expires_at, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    t.id,
                    t.name,
                    t.hash,
                    scopes,
                    comps,
                    t.expires_at,
                    t.created_at
                ],
            )
            .ctx("storing a token")?;
        Ok(())
    }

    fn token_from(r: &rusqlite::Row) -> rusqlite::Result<TokenRow> {
        let (scopes, components) = access_from_columns(r, 3, 4)?;
        Ok(TokenRow {
            id: r.get(0)?,
            name: r.get(1)?,
            hash: r.get(2)?,
            scopes,
            components,
            expires_at: r.get(5)?,
            created_at: r.get(6)?,
            revoked_at: r.get(7)?,
        })
    }

    /// The token with this hash, revoked or not.
    pub fn token_by_hash(&self, hash: &str) -> CatalogResult<Option<TokenRow>> {
        self.conn()
            .query_row(
                "SELECT id, name, hash, scopes, components, expires_at, created_at, revoked_at
                 FROM tokens WHERE hash = ?1",
                [hash],
                Self::token_from,
            )
            .optional()
            .ctx("looking up a token")
    }

    /// Every token, oldest first.
    pub fn tokens(&self) -> CatalogResult<Vec<TokenRow>> {
        let conn = self.conn();
        let mut q = conn
            .prepare(
                "SELECT id, name, hash, scopes, components, expires_at, created_at, revoked_at
                 FROM tokens ORDER BY created_at, id",
            )
            .ctx("listing tokens")?;
        let rows = q.query_map([], Self::token_from).ctx("listing tokens")?;
        rows.collect::<Result<_, _>>().ctx("listing tokens")
    }

    /// Stores a user.
    pub fn insert_user(&self, u: &UserRow) -> CatalogResult<()> {
        let (scopes, comps) = access_columns(&u.scopes, u.components.as_deref());
        self.conn()
            .execute(
                "INSERT INTO users (id, name, password_hash, scopes, components, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![u.id, u.name, u.password_hash, scopes, comps, u.created_at],
            )
            .ctx("storing a user")?;
        Ok(())
    }

    fn user_from(r: &rusqlite::Row) -> rusqlite::Result<UserRow> {
        let (scopes, components) = access_from_columns(r, 3, 4)?;
        Ok(UserRow {
            id: r.get(0)?,
            name: r.get(1)?,
            password_hash: r.get(2)?,
            scopes,
            components,
            created_at: r.get(5)?,
            disabled_at: r.get(6)?,
        })
    }

    fn user_where(&self, column: &str, value: &str) -> CatalogResult<Option<UserRow>> {
        self.conn()
            .query_row(
                &format!(
                    "SELECT id, name, password_hash, scopes, components, created_at, disabled_at
                     FROM users WHERE {column} = ?1"
                ),
                [value],
                Self::user_from,
            )
            .optional()
            .ctx("reading a user")
    }

    /// The user with this id.
    pub fn user(&self, id: &str) -> CatalogResult<Option<UserRow>> {
        self.user_where("id", id)
    }

    /// The user with this login name.
    pub fn user_by_name(&self, name: &str) -> CatalogResult<Option<UserRow>> {
        self.user_where("name", name)
    }

    /// Every user, oldest first.
    pub fn users(&self) -> CatalogResult<Vec<UserRow>> {
        let conn = self.conn();
        let mut q = conn
            .prepare(
                "SELECT id, name, password_hash, scopes, components, created_at, disabled_at
                 FROM users ORDER BY created_at, name",
            )
            .ctx("listing users")?;
        let rows = q.query_map([], Self::user_from).ctx("listing users")?;
        rows.collect::<Result<_, _>>().ctx("listing users")
    }

    /// Disables a user; false if there is no such user.
    pub fn disable_user(&self, id: &str) -> CatalogResult<bool> {
        let n = self
            .conn()
            .execute(
                "UPDATE users SET disabled_at = COALESCE(disabled_at, ?2) WHERE id = ?1",
                params![id, now()],
            )
            .ctx("disabling a user")?;
        Ok(n == 1)
    }

    /// Revokes a token; false if there is no such token.
    pub fn revoke_token(&self, id: &str) -> CatalogResult<bool> {
        let n = self
            .conn()
            .execute(
                "UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
                params![id, now()],
            )
            .ctx("revoking a token")?;
        Ok(n == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup(id: &str, label: &str) -> BackupRow {
        BackupRow {
            id: id.into(),
            label: label.into(),
            target: "local".into(),
            status: BackupStatus::BackingUp,
            error: None,
            component_count: 2,
            created_at: now(),
            finished_at: None,
        }
    }

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

    #[test]
    fn running_jobs_become_errors_at_restart() {
        let c = Catalog::in_memory().unwrap();
        let comps = [
            ("db".to_owned(), "postgres".to_owned()),
            ("files".to_owned(), "files".to_owned()),
        ];
        c.insert_backup(&backup("a-1", "nightly"), &comps).unwrap();
        c.insert_backup(&backup("b-1", "weekly"), &comps).unwrap();
        c.finish_backup("b-1", BackupStatus::Ready, None).unwrap();
        assert_eq!(c.interrupt_running_jobs().unwrap(), 1);
        let a = c.backup("a-1").unwrap().unwrap();
        assert_eq!(a.status, BackupStatus::Error);
        assert_eq!(a.error.as_deref(), Some("interrupted by restart"));
        assert!(
            c.backup_components("a-1")
                .unwrap()
                .iter()
                .all(|x| x.status == BackupStatus::Error)
        );
        assert_eq!(
            c.backup("b-1").unwrap().unwrap().status,
            BackupStatus::Ready
        );
        assert_eq!(c.backups(Some("weekly"), None).unwrap().len(), 1);
        assert_eq!(c.backups(None, Some(BackupStatus::Error)).unwrap().len(), 1);
    }
}
