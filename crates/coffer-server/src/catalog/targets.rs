//! The `targets` table: where repositories live, sealed.

use rusqlite::{OptionalExtension, params};

use super::db::{Catalog, CatalogResult, Ctx, status};

/// How a server uses a target's repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetMode {
    /// This server writes, deletes and prunes.
    Own,
    /// Read only: list, restore, export — no backups, deletes or pruning
    /// (another installation owns it).
    Attach,
}

super::db::stored_enum!(TargetMode, "mode", Own => "own", Attach => "attach");

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
    /// Whether this server owns it or only reads it.
    pub mode: TargetMode,
    /// The target used when a request names none.
    pub is_default: bool,
    /// Creation time.
    pub created_at: i64,
    /// Declared under `[[targets]]` in coffer.toml: read-only over the API.
    pub declared: bool,
}

impl Catalog {
    /// Adds a target. The first target added becomes the default.
    pub fn insert_target(&self, t: &TargetRow) -> CatalogResult<()> {
        self.conn()
            .execute(
                "INSERT INTO targets (name, kind, spec_sealed, password_sealed, mode, is_default, created_at, declared)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![t.name, t.kind, t.spec_sealed, t.password_sealed, t.mode.as_str(), t.is_default, t.created_at, t.declared],
            )
            .ctx("adding a target")?;
        Ok(())
    }

    /// Replaces a target's spec (and password, mode).
    pub fn update_target(&self, t: &TargetRow) -> CatalogResult<bool> {
        let n = self
            .conn()
            .execute(
                "UPDATE targets SET kind = ?2, spec_sealed = ?3, password_sealed = ?4, mode = ?5,
                 declared = ?6 WHERE name = ?1",
                params![
                    t.name,
                    t.kind,
                    t.spec_sealed,
                    t.password_sealed,
                    t.mode.as_str(),
                    t.declared
                ],
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
            mode: status(r.get(4)?)?,
            is_default: r.get(5)?,
            created_at: r.get(6)?,
            declared: r.get(7)?,
        })
    }

    /// Every target, by name.
    pub fn targets(&self) -> CatalogResult<Vec<TargetRow>> {
        let conn = self.conn();
        let mut st = conn
            .prepare(
                "SELECT name, kind, spec_sealed, password_sealed, mode, is_default, created_at,
                 declared FROM targets ORDER BY name",
            )
            .ctx("listing targets")?;
        let rows = st.query_map([], Self::target_from).ctx("listing targets")?;
        rows.collect::<Result<_, _>>().ctx("listing targets")
    }

    /// One target.
    pub fn target(&self, name: &str) -> CatalogResult<Option<TargetRow>> {
        self.conn()
            .query_row(
                "SELECT name, kind, spec_sealed, password_sealed, mode, is_default, created_at,
                 declared FROM targets WHERE name = ?1",
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
}
