//! The `schedules` and `schedule_runs` tables: schedules (their specs
//! sealed), what each of their due times became, and where the scheduler
//! stands with each.

use rusqlite::{OptionalExtension, params};

use super::db::{Catalog, CatalogResult, Ctx, status};

/// A schedule as stored.
#[derive(Debug, Clone)]
pub struct ScheduleRow {
    /// Its name.
    pub name: String,
    /// Its spec as JSON, sealed with the server key.
    pub spec_sealed: Vec<u8>,
    /// Declared in coffer.toml (read-only over the API).
    pub declared: bool,
    /// What its creator was limited to (`None`: every component).
    pub owner_components: Option<Vec<String>>,
    /// Whether its creator held `sensitive`.
    pub owner_sensitive: bool,
    /// Creation, on the scheduler's clock.
    pub created_at: i64,
    /// The newest due time decided.
    pub handled_at: i64,
}

/// What a due time became.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// A backup was started.
    Started,
    /// Not started: the previous run was still going, or a component was busy.
    Skipped,
    /// Passed while the server was down, too long ago to catch up.
    Missed,
    /// The backup could not start (the reason is recorded).
    Failed,
}

super::db::stored_enum!(RunOutcome, "outcome", Started => "STARTED", Skipped => "SKIPPED",
    Missed => "MISSED", Failed => "FAILED");

/// One due time of a schedule (or a range of missed ones).
#[derive(Debug, Clone)]
pub struct ScheduleRunRow {
    /// The schedule.
    pub schedule: String,
    /// The due time (the oldest of a missed range).
    pub due_at: i64,
    /// The newest of a missed range.
    pub last_due_at: Option<i64>,
    /// How many due times a missed range holds.
    pub missed_count: Option<u64>,
    /// When the scheduler decided, on its clock.
    pub decided_at: i64,
    /// What it became.
    pub outcome: RunOutcome,
    /// The backup started.
    pub backup_id: Option<String>,
    /// Why it was skipped, missed or failed.
    pub reason: Option<String>,
    /// Started by hand (`POST /api/v1/schedules/{name}/run`).
    pub by_hand: bool,
}

fn schedule_from(r: &rusqlite::Row) -> rusqlite::Result<ScheduleRow> {
    let comps: Option<String> = r.get(3)?;
    Ok(ScheduleRow {
        name: r.get(0)?,
        spec_sealed: r.get(1)?,
        declared: r.get(2)?,
        owner_components: comps
            .map(|c| serde_json::from_str(&c))
            .transpose()
            .map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, e.into())
            })?,
        owner_sensitive: r.get(4)?,
        created_at: r.get(5)?,
        handled_at: r.get(6)?,
    })
}

const SCHEDULE_COLUMNS: &str =
    "name, spec_sealed, declared, owner_components, owner_sensitive, created_at, handled_at";

impl Catalog {
    /// Records a new schedule; false when one has its name.
    pub fn insert_schedule(&self, s: &ScheduleRow) -> CatalogResult<bool> {
        let comps = s
            .owner_components
            .as_ref()
            .map(|c| serde_json::to_string(c).unwrap_or_default());
        let n = self
            .conn()
            .execute(
                "INSERT OR IGNORE INTO schedules (name, spec_sealed, declared, owner_components,
                   owner_sensitive, created_at, handled_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    s.name,
                    s.spec_sealed,
                    s.declared,
                    comps,
                    s.owner_sensitive,
                    s.created_at,
                    s.handled_at
                ],
            )
            .ctx("recording a schedule")?;
        Ok(n == 1)
    }

    /// Replaces a schedule's spec and owner; its history and where the
    /// scheduler stands stay.
    pub fn update_schedule(&self, s: &ScheduleRow) -> CatalogResult<bool> {
        let comps = s
            .owner_components
            .as_ref()
            .map(|c| serde_json::to_string(c).unwrap_or_default());
        let n = self
            .conn()
            .execute(
                "UPDATE schedules SET spec_sealed = ?2, declared = ?3, owner_components = ?4,
                   owner_sensitive = ?5 WHERE name = ?1",
                params![s.name, s.spec_sealed, s.declared, comps, s.owner_sensitive],
            )
            .ctx("changing a schedule")?;
        Ok(n == 1)
    }

    /// Deletes a schedule and its history; false when there is none.
    pub fn delete_schedule(&self, name: &str) -> CatalogResult<bool> {
        let n = self
            .conn()
            .execute("DELETE FROM schedules WHERE name = ?1", [name])
            .ctx("deleting a schedule")?;
        Ok(n == 1)
    }

    /// Every schedule, by name.
    pub fn schedules(&self) -> CatalogResult<Vec<ScheduleRow>> {
        let conn = self.conn();
        let mut q = conn
            .prepare(&format!(
                "SELECT {SCHEDULE_COLUMNS} FROM schedules ORDER BY name"
            ))
            .ctx("listing schedules")?;
        let rows = q.query_map([], schedule_from).ctx("listing schedules")?;
        rows.collect::<Result<_, _>>().ctx("listing schedules")
    }

    /// One schedule.
    pub fn schedule(&self, name: &str) -> CatalogResult<Option<ScheduleRow>> {
        self.conn()
            .query_row(
                &format!("SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE name = ?1"),
                [name],
                schedule_from,
            )
            .optional()
            .ctx("reading a schedule")
    }

    /// Records what due times up to `handled_at` became: the runs and the
    /// scheduler's new position, in one transaction (a crash never runs a
    /// due time twice, nor loses one).
    pub fn record_schedule_runs(
        &self,
        name: &str,
        handled_at: i64,
        runs: &[ScheduleRunRow],
    ) -> CatalogResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction().ctx("recording schedule runs")?;
        for r in runs {
            tx.execute(
                "INSERT INTO schedule_runs (schedule, due_at, last_due_at, missed_count,
                   decided_at, outcome, backup_id, reason, by_hand)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    r.schedule,
                    r.due_at,
                    r.last_due_at,
                    r.missed_count.and_then(|c| i64::try_from(c).ok()),
                    r.decided_at,
                    r.outcome.as_str(),
                    r.backup_id,
                    r.reason,
                    r.by_hand
                ],
            )
            .ctx("recording a schedule run")?;
        }
        tx.execute(
            "UPDATE schedules SET handled_at = MAX(handled_at, ?2) WHERE name = ?1",
            params![name, handled_at],
        )
        .ctx("recording where a schedule stands")?;
        tx.commit().ctx("recording schedule runs")
    }

    /// A schedule's newest runs, newest first.
    pub fn schedule_runs(&self, name: &str, limit: u32) -> CatalogResult<Vec<ScheduleRunRow>> {
        let conn = self.conn();
        let mut q = conn
            .prepare(
                "SELECT schedule, due_at, last_due_at, missed_count, decided_at, outcome,
                        backup_id, reason, by_hand
                 FROM schedule_runs WHERE schedule = ?1 ORDER BY seq DESC LIMIT ?2",
            )
            .ctx("listing schedule runs")?;
        let rows = q
            .query_map(params![name, limit], |r| {
                let missed: Option<i64> = r.get(3)?;
                Ok(ScheduleRunRow {
                    schedule: r.get(0)?,
                    due_at: r.get(1)?,
                    last_due_at: r.get(2)?,
                    missed_count: missed.and_then(|m| u64::try_from(m).ok()),
                    decided_at: r.get(4)?,
                    outcome: status(r.get(5)?)?,
                    backup_id: r.get(6)?,
                    reason: r.get(7)?,
                    by_hand: r.get(8)?,
                })
            })
            .ctx("listing schedule runs")?;
        rows.collect::<Result<_, _>>().ctx("listing schedule runs")
    }

    /// The newest READY backup a schedule took: (id, finished_at).
    pub fn schedule_last_success(&self, name: &str) -> CatalogResult<Option<(String, i64)>> {
        self.conn()
            .query_row(
                "SELECT id, COALESCE(finished_at, created_at) FROM backups
                 WHERE schedule = ?1 AND status = 'READY'
                 ORDER BY COALESCE(due_at, created_at) DESC, created_at DESC LIMIT 1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .ctx("reading a schedule's last success")
    }
}
