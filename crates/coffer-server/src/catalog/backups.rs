//! The `backups` and `backup_components` tables.

use coffer_model::access::BackupStatus;
use std::collections::BTreeSet;

use rusqlite::{OptionalExtension, params};

use super::db::{Catalog, CatalogResult, Ctx, now, status, to_i64, to_u64};

/// The `backups` columns [`Catalog::backup_from`] reads, in its order.
const COLUMNS: &str = "id, label, target, status, error, component_count, created_at, \
    finished_at, schedule, due_at, pinned, verified_at, rowid";

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
    /// The schedule that took it, if one did.
    pub schedule: Option<String>,
    /// The due time it was taken for (a scheduled backup), on the
    /// scheduler's clock: what retention counts by.
    pub due_at: Option<i64>,
    /// Kept whatever retention says.
    pub pinned: bool,
    /// When a verification or drill last passed on it.
    pub verified_at: Option<i64>,
    /// The order backups were recorded in (SQLite's rowid): breaks ties of
    /// the whole-second times.
    pub seq: i64,
}

impl BackupRow {
    /// The time retention counts by: the due time of a scheduled backup,
    /// else its start.
    pub fn taken_at(&self) -> i64 {
        self.due_at.unwrap_or(self.created_at)
    }
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
    /// Sealed to the `[sensitive]` recipients: touching it needs the
    /// `sensitive` scope whatever the configuration says now.
    pub sealed: bool,
}

/// A component of a new backup.
#[derive(Debug, Clone)]
pub struct NewBackupComponent {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: String,
    /// Whether it is sealed (a sensitive component).
    pub sealed: bool,
}

impl Catalog {
    /// Records a new backup and its components, all `BACKING_UP`.
    pub fn insert_backup(
        &self,
        b: &BackupRow,
        components: &[NewBackupComponent],
    ) -> CatalogResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction().ctx("recording a backup")?;
        tx.execute(
            "INSERT INTO backups (id, label, target, status, error, component_count, created_at,
               finished_at, schedule, due_at)
             VALUES (?1, ?2, ?3, ?4, NULL, ?5, ?6, NULL, ?7, ?8)",
            params![
                b.id,
                b.label,
                b.target,
                b.status.as_str(),
                b.component_count,
                b.created_at,
                b.schedule,
                b.due_at
            ],
        )
        .ctx("recording a backup")?;
        for c in components {
            tx.execute(
                "INSERT INTO backup_components (backup_id, component, kind, status, sealed)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![b.id, c.name, c.kind, b.status.as_str(), c.sealed],
            )
            .ctx("recording a backup component")?;
        }
        tx.commit().ctx("recording a backup")?;
        coffer_model::crash::crash_point("backup.recorded");
        Ok(())
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
                   files, bytes, bytes_added, started_at, finished_at, sealed)
                 VALUES (?1, ?2, ?3, 'READY', ?4, ?5, ?6, ?7, ?8, ?8, ?9)",
                params![
                    b.id,
                    name,
                    kind,
                    s.id,
                    to_i64(s.files),
                    to_i64(s.bytes),
                    to_i64(s.bytes_added),
                    t,
                    s.sealed
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
        coffer_model::crash::crash_point("backup.component.started");
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
        coffer_model::crash::crash_point("backup.component.recorded");
        Ok(())
    }

    /// A backup whose deletion starts: `ERROR` until its record goes, so an
    /// interrupted deletion never leaves it `READY` without its snapshots.
    pub fn mark_backup_deleting(&self, id: &str) -> CatalogResult<()> {
        self.set_backup_state(
            id,
            BackupStatus::Error,
            Some(
                "being deleted (if this stays, the deletion was interrupted: delete the backup \
                 again)",
            ),
        )
    }

    /// Puts a backup's state back (a deletion that could not start).
    pub fn set_backup_state(
        &self,
        id: &str,
        status: BackupStatus,
        error: Option<&str>,
    ) -> CatalogResult<()> {
        self.conn()
            .execute(
                "UPDATE backups SET status = ?2, error = ?3 WHERE id = ?1",
                params![id, status.as_str(), error],
            )
            .ctx("restoring a backup's state")?;
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
        self.audit_job_end("backup", id, status.as_str(), error);
        coffer_model::crash::crash_point("backup.finished");
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
            schedule: r.get(8)?,
            due_at: r.get(9)?,
            pinned: r.get(10)?,
            verified_at: r.get(11)?,
            seq: r.get(12)?,
        })
    }

    /// Pins or unpins a backup; false when there is no such backup.
    pub fn set_pinned(&self, id: &str, pinned: bool) -> CatalogResult<bool> {
        let n = self
            .conn()
            .execute(
                "UPDATE backups SET pinned = ?2 WHERE id = ?1",
                params![id, pinned],
            )
            .ctx("pinning a backup")?;
        Ok(n == 1)
    }

    /// Backups a schedule took, newest first.
    pub fn backups_of_schedule(&self, schedule: &str) -> CatalogResult<Vec<BackupRow>> {
        let conn = self.conn();
        let mut q = conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM backups WHERE schedule = ?1 ORDER BY created_at DESC, id"
            ))
            .ctx("listing a schedule's backups")?;
        let rows = q
            .query_map([schedule], Self::backup_from)
            .ctx("listing a schedule's backups")?;
        rows.collect::<Result<_, _>>()
            .ctx("listing a schedule's backups")
    }

    /// Each component's newest READY backup time (its due time when
    /// scheduled, else its start).
    pub fn newest_ready_by_component(&self) -> CatalogResult<Vec<(String, i64)>> {
        let conn = self.conn();
        let mut q = conn
            .prepare(
                "SELECT bc.component, MAX(COALESCE(b.due_at, b.created_at))
                 FROM backups b JOIN backup_components bc ON bc.backup_id = b.id
                 WHERE b.status = 'READY' GROUP BY bc.component",
            )
            .ctx("reading the newest backups")?;
        let rows = q
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .ctx("reading the newest backups")?;
        rows.collect::<Result<_, _>>()
            .ctx("reading the newest backups")
    }

    /// The run of `schedule` still going, if one is: a backup being taken,
    /// a drill, a check or a prune.
    pub fn schedule_running(&self, schedule: &str) -> CatalogResult<Option<String>> {
        self.conn()
            .query_row(
                "SELECT id FROM backups WHERE schedule = ?1 AND status = 'BACKING_UP'
                 UNION ALL
                 SELECT id FROM drills WHERE schedule = ?1 AND status = 'DRILLING'
                 UNION ALL
                 SELECT id FROM checks WHERE schedule = ?1 AND status = 'CHECKING'
                 UNION ALL
                 SELECT id FROM prunes WHERE status = 'PRUNING'
                   AND id IN (SELECT backup_id FROM schedule_runs WHERE schedule = ?1)
                 LIMIT 1",
                [schedule],
                |r| r.get(0),
            )
            .optional()
            .ctx("reading a schedule's running backup")
    }

    /// Backups, newest first, optionally by label and state.
    pub fn backups(
        &self,
        label: Option<&str>,
        st: Option<BackupStatus>,
    ) -> CatalogResult<Vec<BackupRow>> {
        let conn = self.conn();
        let mut q = conn
            .prepare(&format!(
                "SELECT {COLUMNS}
                 FROM backups WHERE (?1 IS NULL OR label = ?1) AND (?2 IS NULL OR status = ?2)
                 ORDER BY created_at DESC, id"
            ))
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
                &format!("SELECT {COLUMNS} FROM backups WHERE id = ?1"),
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
                        started_at, finished_at, sealed
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
                    sealed: r.get(10)?,
                })
            })
            .ctx("reading backup components")?;
        rows.collect::<Result<_, _>>()
            .ctx("reading backup components")
    }

    /// Every backup's components as (name, stored sealed), by backup id:
    /// what retention and its preview need of thousands of backups in one
    /// query.
    pub fn component_names_by_backup(
        &self,
    ) -> CatalogResult<std::collections::HashMap<String, Vec<(String, bool)>>> {
        let conn = self.conn();
        let mut q = conn
            .prepare(
                "SELECT backup_id, component, sealed FROM backup_components
                 ORDER BY backup_id, component",
            )
            .ctx("reading backup components")?;
        let mut out: std::collections::HashMap<String, Vec<(String, bool)>> =
            std::collections::HashMap::new();
        let rows = q
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?)))
            .ctx("reading backup components")?;
        for row in rows {
            let (id, name, sealed) = row.ctx("reading backup components")?;
            out.entry(id).or_default().push((name, sealed));
        }
        Ok(out)
    }

    /// The backups with a failed copy (they are the only copy).
    pub fn backups_with_failed_copies(&self) -> CatalogResult<BTreeSet<String>> {
        let conn = self.conn();
        let mut q = conn
            .prepare("SELECT DISTINCT backup_id FROM backup_copies WHERE status = 'ERROR'")
            .ctx("reading failed copies")?;
        let rows = q.query_map([], |r| r.get(0)).ctx("reading failed copies")?;
        rows.collect::<Result<_, _>>().ctx("reading failed copies")
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
}
