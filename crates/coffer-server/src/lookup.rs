//! Finding what a request names: a backup, its snapshots in the
//! repository, whether a component of it is sensitive. Shared by the
//! backup, restore and export services; blocking.

use coffer_engine::{SnapshotFilter, SnapshotInfo};

use crate::catalog::{BackupComponentRow, BackupRow};
use crate::error::{ServiceError, ServiceResult};
use crate::state::AppState;

/// The backup `id`, or `NotFound`.
pub fn find_backup(state: &AppState, id: &str) -> ServiceResult<BackupRow> {
    state
        .catalog
        .backup(id)?
        .ok_or_else(|| ServiceError::NotFound(format!("no backup with id {id:?}")))
}

/// Whether a backup's component needs the `sensitive` scope: stored
/// sealed, or configured `sensitive = true` now.
pub fn is_sensitive(state: &AppState, c: &BackupComponentRow) -> bool {
    c.sealed
        || state
            .config
            .component(&c.component)
            .is_some_and(|s| s.sensitive)
}

/// Every snapshot of `backup_id` in `target`'s repository.
pub fn backup_snapshots(
    state: &AppState,
    target: &str,
    backup_id: &str,
) -> ServiceResult<Vec<SnapshotInfo>> {
    state
        .repo(target)?
        .snapshots(&SnapshotFilter {
            backup_id: Some(backup_id.to_owned()),
            ..SnapshotFilter::default()
        })
        .map_err(|e| ServiceError::Upstream(format!("listing the backup's snapshots: {e}")))
}
