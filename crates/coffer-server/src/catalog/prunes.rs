//! The `prunes` table: prunes started through the API, with their report.

use rusqlite::{OptionalExtension, params};

use super::db::{Catalog, CatalogResult, Ctx, now, status};

/// Where a prune is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneStatus {
    /// Running (it holds the repository's exclusive lock).
    Pruning,
    /// Finished; the report is recorded.
    Ready,
    /// Failed; the reason is recorded.
    Error,
}

super::db::stored_enum!(PruneStatus, "status", Pruning => "PRUNING", Ready => "READY",
    Error => "ERROR");

/// A prune of one target's repository.
#[derive(Debug, Clone)]
pub struct PruneRow {
    /// `prune-<uuid>`.
    pub id: String,
    /// The target pruned.
    pub target: String,
    /// Its state.
    pub status: PruneStatus,
    /// Why it failed.
    pub error: Option<String>,
    /// The engine's report, as JSON, once `READY`.
    pub report: Option<String>,
    /// The grace period asked for (seconds), if not the default.
    pub grace_secs: Option<u64>,
    /// Start.
    pub created_at: i64,
    /// End.
    pub finished_at: Option<i64>,
}

impl Catalog {
    /// Records a prune that is starting.
    pub fn insert_prune(&self, p: &PruneRow) -> CatalogResult<()> {
        self.conn()
            .execute(
                "INSERT INTO prunes (id, target, status, grace_secs, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    p.id,
                    p.target,
                    p.status.as_str(),
                    p.grace_secs.and_then(|g| i64::try_from(g).ok()),
                    p.created_at
                ],
            )
            .ctx("recording a prune")?;
        coffer_model::crash::crash_point("prune.recorded");
        Ok(())
    }

    /// Records how a prune ended: its report, or its error.
    pub fn finish_prune(&self, id: &str, outcome: Result<String, String>) -> CatalogResult<()> {
        let (status, report, error) = match outcome {
            Ok(r) => (PruneStatus::Ready, Some(r), None),
            Err(e) => (PruneStatus::Error, None, Some(e)),
        };
        self.conn()
            .execute(
                "UPDATE prunes SET status = ?2, report = ?3, error = ?4, finished_at = ?5 WHERE id = ?1",
                params![id, status.as_str(), report, error, now()],
            )
            .ctx("finishing a prune")?;
        self.audit_job_end("prune", id, status.as_str(), error.as_deref());
        coffer_model::crash::crash_point("prune.finished");
        Ok(())
    }

    /// One prune.
    pub fn prune(&self, id: &str) -> CatalogResult<Option<PruneRow>> {
        self.conn()
            .query_row(
                "SELECT id, target, status, error, report, grace_secs, created_at, finished_at
                 FROM prunes WHERE id = ?1",
                [id],
                |r| {
                    let grace: Option<i64> = r.get(5)?;
                    Ok(PruneRow {
                        id: r.get(0)?,
                        target: r.get(1)?,
                        status: status(r.get(2)?)?,
                        error: r.get(3)?,
                        report: r.get(4)?,
                        grace_secs: grace.and_then(|g| u64::try_from(g).ok()),
                        created_at: r.get(6)?,
                        finished_at: r.get(7)?,
                    })
                },
            )
            .optional()
            .ctx("reading a prune")
    }
}
