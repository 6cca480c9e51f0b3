//! The `backup_copies` table: each backup's copies to extra targets.

use rusqlite::params;

use super::db::{Catalog, CatalogResult, Ctx, now};

/// A copy of a backup on another target.
#[derive(Debug, Clone)]
pub struct CopyRow {
    /// The target holding the copy.
    pub target: String,
    /// `COPYING`, `READY` (verified) or `ERROR`.
    pub status: String,
    /// Why it failed.
    pub error: Option<String>,
    /// The copies' snapshot ids.
    pub snapshots: Vec<String>,
    /// End.
    pub finished_at: Option<i64>,
}

impl Catalog {
    /// Records a copy that is starting (again).
    pub fn start_copy(&self, backup_id: &str, target: &str) -> CatalogResult<()> {
        self.conn()
            .execute(
                "INSERT INTO backup_copies (backup_id, target, status, created_at)
                 VALUES (?1, ?2, 'COPYING', ?3)
                 ON CONFLICT (backup_id, target) DO UPDATE
                 SET status = 'COPYING', error = NULL, finished_at = NULL",
                params![backup_id, target, now()],
            )
            .ctx("recording a copy")?;
        Ok(())
    }

    /// Records how a copy ended: its snapshots, or why it failed.
    pub fn finish_copy(
        &self,
        backup_id: &str,
        target: &str,
        outcome: Result<&[String], &str>,
    ) -> CatalogResult<()> {
        let (status, error, snaps) = match outcome {
            Ok(s) => (
                "READY",
                None,
                Some(serde_json::to_string(s).unwrap_or_default()),
            ),
            Err(e) => ("ERROR", Some(e), None),
        };
        self.conn()
            .execute(
                "UPDATE backup_copies SET status = ?3, error = ?4, snapshots = ?5, finished_at = ?6
                 WHERE backup_id = ?1 AND target = ?2",
                params![backup_id, target, status, error, snaps, now()],
            )
            .ctx("finishing a copy")?;
        self.audit_job_end("copy", &format!("{backup_id} to {target}"), status, error);
        Ok(())
    }

    /// A backup's copies, by target.
    pub fn copies(&self, backup_id: &str) -> CatalogResult<Vec<CopyRow>> {
        let conn = self.conn();
        let mut q = conn
            .prepare(
                "SELECT target, status, error, snapshots, finished_at
                 FROM backup_copies WHERE backup_id = ?1 ORDER BY target",
            )
            .ctx("listing copies")?;
        let rows = q
            .query_map([backup_id], |r| {
                let snaps: Option<String> = r.get(3)?;
                Ok(CopyRow {
                    target: r.get(0)?,
                    status: r.get(1)?,
                    error: r.get(2)?,
                    snapshots: snaps
                        .and_then(|s| serde_json::from_str(&s).ok())
                        .unwrap_or_default(),
                    finished_at: r.get(4)?,
                })
            })
            .ctx("listing copies")?;
        rows.collect::<Result<_, _>>().ctx("listing copies")
    }
}
