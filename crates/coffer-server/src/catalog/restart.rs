//! What a restart does to the catalog: jobs left running become `ERROR`.

use rusqlite::params;

use super::db::{Catalog, CatalogResult, Ctx, now};

impl Catalog {
    /// Marks every job still running as `ERROR` ("interrupted by restart"):
    /// a job found running at start was cut short. Returns how many.
    pub fn interrupt_running_jobs(&self) -> CatalogResult<usize> {
        self.end_running_jobs("interrupted by restart")
    }

    /// Marks every job still running as `ERROR` with `reason` (drills
    /// excepted: their scratch copies are removed at the next start, which
    /// records them). Returns how many.
    pub fn end_running_jobs(&self, reason: &str) -> CatalogResult<usize> {
        let mut conn = self.conn();
        let tx = conn.transaction().ctx("marking interrupted jobs")?;
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
        n += tx
            .execute(
                "UPDATE prunes SET status = 'ERROR', error = ?1, finished_at = ?2 WHERE status = 'PRUNING'",
                params![reason, t],
            )
            .ctx("marking interrupted prunes")?;
        n += tx
            .execute(
                "UPDATE backup_copies SET status = 'ERROR', error = ?1, finished_at = ?2 WHERE status = 'COPYING'",
                params![reason, t],
            )
            .ctx("marking interrupted copies")?;
        n += tx
            .execute(
                "UPDATE checks SET status = 'ERROR', error = ?1, finished_at = ?2 WHERE status = 'CHECKING'",
                params![reason, t],
            )
            .ctx("marking interrupted checks")?;
        tx.commit().ctx("marking interrupted jobs")?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use coffer_model::access::BackupStatus;

    use super::*;
    use crate::catalog::backups::{BackupRow, NewBackupComponent};

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
            schedule: None,
            due_at: None,
            pinned: false,
            verified_at: None,
            seq: 0,
        }
    }

    #[test]
    fn running_jobs_become_errors_at_restart() {
        let c = Catalog::in_memory().unwrap();
        let comps =
            [("db", "postgres"), ("files", "files")].map(|(name, kind)| NewBackupComponent {
                name: name.into(),
                kind: kind.into(),
                sealed: false,
            });
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
