//! The `drills` table: restore drills, their per-component report, and
//! the backups they proved (`backups.verified_at`).

use rusqlite::{OptionalExtension, params};

use super::db::{Catalog, CatalogResult, Ctx, now, status};

/// Where a drill is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrillStatus {
    /// Restoring and proving.
    Drilling,
    /// Every drillable component was restored and proved.
    Ready,
    /// A component failed (the report says which and why).
    Error,
}

super::db::stored_enum!(DrillStatus, "status", Drilling => "DRILLING", Ready => "READY",
    Error => "ERROR");

/// A drill.
#[derive(Debug, Clone)]
pub struct DrillRow {
    /// `drill-<uuid>`.
    pub id: String,
    /// The backup drilled.
    pub backup_id: String,
    /// The schedule that asked for it.
    pub schedule: Option<String>,
    /// Names its scratch places.
    pub tag: String,
    /// The components drilled.
    pub components: Vec<String>,
    /// Its state.
    pub status: DrillStatus,
    /// Why it failed.
    pub error: Option<String>,
    /// Per component (JSON).
    pub report: Option<String>,
    /// The whole drill's duration: the measured recovery time.
    pub seconds: Option<f64>,
    /// Start.
    pub created_at: i64,
    /// End.
    pub finished_at: Option<i64>,
}

const COLUMNS: &str = "id, backup_id, schedule, tag, components, status, error, report, seconds, \
    created_at, finished_at";

fn drill_from(r: &rusqlite::Row) -> rusqlite::Result<DrillRow> {
    let comps: String = r.get(4)?;
    Ok(DrillRow {
        id: r.get(0)?,
        backup_id: r.get(1)?,
        schedule: r.get(2)?,
        tag: r.get(3)?,
        components: serde_json::from_str(&comps).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, e.into())
        })?,
        status: status(r.get(5)?)?,
        error: r.get(6)?,
        report: r.get(7)?,
        seconds: r.get(8)?,
        created_at: r.get(9)?,
        finished_at: r.get(10)?,
    })
}

impl Catalog {
    /// Records a drill that is starting.
    pub fn insert_drill(&self, d: &DrillRow) -> CatalogResult<()> {
        self.conn()
            .execute(
                "INSERT INTO drills (id, backup_id, schedule, tag, components, status, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    d.id,
                    d.backup_id,
                    d.schedule,
                    d.tag,
                    serde_json::to_string(&d.components).unwrap_or_default(),
                    d.status.as_str(),
                    d.created_at
                ],
            )
            .ctx("recording a drill")?;
        Ok(())
    }

    /// Records how a drill ended; a passing one marks its backup verified
    /// at `verified_at`.
    pub fn finish_drill(
        &self,
        id: &str,
        error: Option<&str>,
        report: &str,
        seconds: f64,
        verified_at: Option<i64>,
    ) -> CatalogResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction().ctx("finishing a drill")?;
        let st = if error.is_some() {
            DrillStatus::Error
        } else {
            DrillStatus::Ready
        };
        tx.execute(
            "UPDATE drills SET status = ?2, error = ?3, report = ?4, seconds = ?5, finished_at = ?6
             WHERE id = ?1",
            params![id, st.as_str(), error, report, seconds, now()],
        )
        .ctx("finishing a drill")?;
        if let Some(at) = verified_at {
            tx.execute(
                "UPDATE backups SET verified_at = ?2
                 WHERE id = (SELECT backup_id FROM drills WHERE id = ?1)",
                params![id, at],
            )
            .ctx("marking a backup verified")?;
        }
        tx.commit().ctx("finishing a drill")?;
        drop(conn);
        self.audit_job_end("drill", id, st.as_str(), error);
        coffer_model::crash::crash_point("drill.finished");
        Ok(())
    }

    /// One drill.
    pub fn drill(&self, id: &str) -> CatalogResult<Option<DrillRow>> {
        self.conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM drills WHERE id = ?1"),
                [id],
                drill_from,
            )
            .optional()
            .ctx("reading a drill")
    }

    /// The newest drill of a backup.
    pub fn last_drill(&self, backup_id: &str) -> CatalogResult<Option<DrillRow>> {
        self.conn()
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM drills WHERE backup_id = ?1
                     ORDER BY created_at DESC, rowid DESC LIMIT 1"
                ),
                [backup_id],
                drill_from,
            )
            .optional()
            .ctx("reading a backup's last drill")
    }

    /// Drills a previous process left running: their scratch places are to
    /// be removed, then [`Catalog::finish_drill`] records the interruption.
    pub fn running_drills(&self) -> CatalogResult<Vec<DrillRow>> {
        let conn = self.conn();
        let mut q = conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM drills WHERE status = 'DRILLING'"
            ))
            .ctx("listing running drills")?;
        let rows = q.query_map([], drill_from).ctx("listing running drills")?;
        rows.collect::<Result<_, _>>().ctx("listing running drills")
    }
}
