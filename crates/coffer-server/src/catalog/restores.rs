//! The `restores` and `restore_components` tables.

use coffer_model::access::RestoreStatus;
use rusqlite::{OptionalExtension, params};

use super::db::{Catalog, CatalogResult, Ctx, now, status};

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
    /// A sensitive component (sealed, or configured `sensitive = true`).
    pub sensitive: bool,
}

impl Catalog {
    /// Records a new restore and its components `(name, sensitive)`, all `RESTORING`.
    pub fn insert_restore(
        &self,
        r: &RestoreRow,
        components: &[(String, bool)],
    ) -> CatalogResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction().ctx("recording a restore")?;
        tx.execute(
            "INSERT INTO restores (id, backup_id, status, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![r.id, r.backup_id, r.status.as_str(), r.created_at],
        )
        .ctx("recording a restore")?;
        for (c, sensitive) in components {
            tx.execute(
                "INSERT INTO restore_components (restore_id, component, status, sensitive)
                 VALUES (?1, ?2, ?3, ?4)",
                params![r.id, c, r.status.as_str(), sensitive],
            )
            .ctx("recording a restore component")?;
        }
        tx.commit().ctx("recording a restore")?;
        coffer_model::crash::crash_point("restore.recorded");
        Ok(())
    }

    /// A restore component started.
    pub fn restore_component_started(&self, id: &str, component: &str) -> CatalogResult<()> {
        self.conn()
            .execute(
                "UPDATE restore_components SET started_at = ?3 WHERE restore_id = ?1 AND component = ?2",
                params![id, component, now()],
            )
            .ctx("updating a restore component")?;
        coffer_model::crash::crash_point("restore.component.started");
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
        coffer_model::crash::crash_point("restore.component.recorded");
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
        self.audit_job_end("restore", id, status.as_str(), error);
        coffer_model::crash::crash_point("restore.finished");
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
                "SELECT component, status, error, notes, started_at, finished_at, sensitive
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
                    sensitive: r.get(6)?,
                })
            })
            .ctx("reading restore components")?
            .collect::<Result<_, _>>()
            .ctx("reading restore components")?;
        Ok(Some((row, comps)))
    }

    /// Restores, newest first, optionally only those of one backup, each
    /// with its components.
    pub fn restores(
        &self,
        backup_id: Option<&str>,
    ) -> CatalogResult<Vec<(RestoreRow, Vec<RestoreComponentRow>)>> {
        let ids: Vec<String> = {
            let conn = self.conn();
            let mut q = conn
                .prepare(
                    "SELECT id FROM restores WHERE ?1 IS NULL OR backup_id = ?1
                     ORDER BY created_at DESC, rowid DESC",
                )
                .ctx("listing restores")?;
            q.query_map([backup_id], |r| r.get(0))
                .ctx("listing restores")?
                .collect::<Result<_, _>>()
                .ctx("listing restores")?
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            // A restore removed between the two reads is simply not listed.
            if let Some(r) = self.restore(&id)? {
                out.push(r);
            }
        }
        Ok(out)
    }
}
