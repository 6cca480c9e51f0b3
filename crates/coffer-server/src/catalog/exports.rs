//! The `exports` table: spooled `.coffer` files.

use rusqlite::params;

use super::db::{Catalog, CatalogResult, Ctx, now, status, to_i64, to_u64};

/// Where an export is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportStatus {
    /// Being written.
    Exporting,
    /// The file is ready to download.
    Ready,
    /// Failed; the reason is recorded.
    Error,
    /// The file was removed after its time (`server.export_ttl_secs`).
    Expired,
}

super::db::stored_enum!(ExportStatus, "status", Exporting => "EXPORTING", Ready => "READY",
    Error => "ERROR", Expired => "EXPIRED");

/// What encrypts an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportProtection {
    /// A passphrase (age scrypt).
    Password,
    /// age X25519 recipients.
    Age,
}

super::db::stored_enum!(ExportProtection, "protection", Password => "password", Age => "age");

/// An export: a spooled `<backup-id>.coffer` file.
#[derive(Debug, Clone)]
pub struct ExportRow {
    /// `export-<uuid>`.
    pub id: String,
    /// The backup exported.
    pub backup_id: String,
    /// Where it is.
    pub status: ExportStatus,
    /// Why it is `ERROR`.
    pub error: Option<String>,
    /// Only the sensitive components (still sealed).
    pub sensitive: bool,
    /// What encrypts it.
    pub protection: ExportProtection,
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

impl Catalog {
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
                    e.protection.as_str(),
                    e.file_name,
                    serde_json::to_string(&e.components).unwrap_or_default(),
                    e.created_at
                ],
            )
            .ctx("recording an export")?;
        coffer_model::crash::crash_point("export.recorded");
        Ok(())
    }

    /// An export ended: READY with its digests and expiry, or ERROR.
    pub fn finish_export(
        &self,
        id: &str,
        outcome: Result<(&coffer_export::Digests, Option<i64>), &str>,
    ) -> CatalogResult<()> {
        let conn = self.conn();
        let (status, error) = match outcome {
            Ok(_) => ("READY", None),
            Err(reason) => ("ERROR", Some(reason)),
        };
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
        drop(conn);
        self.audit_job_end("export", id, status, error);
        coffer_model::crash::crash_point("export.finished");
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
                status: status(r.get(2)?)?,
                error: r.get(3)?,
                sensitive: r.get(4)?,
                protection: status(r.get(5)?)?,
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
}
