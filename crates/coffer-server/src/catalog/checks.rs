//! The `checks` table: repository checks and what they found.

use rusqlite::{OptionalExtension, params};

use super::db::{Catalog, CatalogResult, Ctx, now};

/// A check of a target's repository.
#[derive(Debug, Clone)]
pub struct CheckRow {
    /// `check-<uuid>`.
    pub id: String,
    /// The target checked.
    pub target: String,
    /// The schedule that asked for it.
    pub schedule: Option<String>,
    /// What part of the packs' content was read.
    pub read_data: Option<String>,
    /// `CHECKING`, `READY` (nothing wrong) or `ERROR`.
    pub status: String,
    /// What was wrong, in one line.
    pub error: Option<String>,
    /// Errors, warnings, damaged packs and affected backups (JSON).
    pub report: Option<String>,
    /// Start.
    pub created_at: i64,
    /// End.
    pub finished_at: Option<i64>,
}

impl Catalog {
    /// Records a check that is starting.
    pub fn insert_check(&self, c: &CheckRow) -> CatalogResult<()> {
        self.conn()
            .execute(
                "INSERT INTO checks (id, target, schedule, read_data, status, created_at)
                 VALUES (?1, ?2, ?3, ?4, 'CHECKING', ?5)",
                params![c.id, c.target, c.schedule, c.read_data, c.created_at],
            )
            .ctx("recording a check")?;
        coffer_model::crash::crash_point("check.recorded");
        Ok(())
    }

    /// Records how a check ended.
    pub fn finish_check(&self, id: &str, error: Option<&str>, report: &str) -> CatalogResult<()> {
        let status = if error.is_some() { "ERROR" } else { "READY" };
        self.conn()
            .execute(
                "UPDATE checks SET status = ?2, error = ?3, report = ?4, finished_at = ?5 WHERE id = ?1",
                params![id, status, error, report, now()],
            )
            .ctx("finishing a check")?;
        self.audit_job_end("check", id, status, error);
        coffer_model::crash::crash_point("check.finished");
        Ok(())
    }

    /// One check.
    pub fn check(&self, id: &str) -> CatalogResult<Option<CheckRow>> {
        self.conn()
            .query_row(
                "SELECT id, target, schedule, read_data, status, error, report, created_at, finished_at
                 FROM checks WHERE id = ?1",
                [id],
                |r| {
                    Ok(CheckRow {
                        id: r.get(0)?,
                        target: r.get(1)?,
                        schedule: r.get(2)?,
                        read_data: r.get(3)?,
                        status: r.get(4)?,
                        error: r.get(5)?,
                        report: r.get(6)?,
                        created_at: r.get(7)?,
                        finished_at: r.get(8)?,
                    })
                },
            )
            .optional()
            .ctx("reading a check")
    }

    /// How many runs `schedule` started (a check schedule's rotation).
    pub fn schedule_started_count(&self, schedule: &str) -> CatalogResult<u64> {
        let n: i64 = self
            .conn()
            .query_row(
                "SELECT count(*) FROM schedule_runs WHERE schedule = ?1 AND outcome = 'STARTED'",
                [schedule],
                |r| r.get(0),
            )
            .ctx("counting a schedule's runs")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
