//! Copies of backups to a schedule's extra targets (`copy_to`): after a
//! scheduled backup is READY, on its own thread and before retention, its
//! snapshots are copied into each extra target's repository and verified
//! there (see [`coffer_engine::Repo::copy_to`]). A failed copy is recorded,
//! told (`copy_failed`), and keeps the backup from retention (it is the
//! only copy). Deleting a backup deletes its copies' snapshots too.

use coffer_model::access::BackupStatus;
use serde_json::json;

use crate::catalog::BackupRow;
use crate::notify::handle::{Alert, EventKind};
use crate::schedules::service::open_spec;
use crate::state::AppState;

/// Copies backup `id` to its schedule's `copy_to` targets, if it is READY
/// and has any. Never fails the backup: outcomes are recorded and logged.
pub fn after_backup(state: &AppState, id: &str) {
    let Ok(Some(b)) = state.catalog.backup(id) else {
        return;
    };
    if b.status != BackupStatus::Ready {
        return;
    }
    let Some(schedule) = &b.schedule else {
        return;
    };
    let targets = match state.catalog.schedule(schedule) {
        Ok(Some(row)) => match open_spec(state, &row) {
            Ok(spec) => spec.copy_to.unwrap_or_default(),
            Err(e) => {
                state.log(id, &format!("copies: {}", e.message()));
                return;
            }
        },
        _ => return,
    };
    for t in &targets {
        copy_one(state, &b, t);
    }
    state.logs.flush();
}

fn copy_one(state: &AppState, b: &BackupRow, target: &str) {
    if let Err(e) = state.catalog.start_copy(&b.id, target) {
        tracing::error!(backup = %b.id, "recording a copy: {e}");
        return;
    }
    state.log(&b.id, &format!("copy to target {target} started"));
    let outcome = (|| -> Result<Vec<String>, String> {
        if target == b.target {
            return Err(format!("{target} is the backup's own target"));
        }
        let ids: Vec<String> = state
            .catalog
            .backup_components(&b.id)
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter_map(|c| c.snapshot_id)
            .collect();
        let src = state.repo(&b.target).map_err(|e| e.message())?;
        let dest = state.repo(target).map_err(|e| e.message())?;
        let copied = src.copy_to(&dest, &ids).map_err(|e| e.to_string())?;
        Ok(copied.into_iter().map(|s| s.id).collect())
    })();
    let recorded = match &outcome {
        Ok(snaps) => {
            state.log(
                &b.id,
                &format!(
                    "copy to target {target} READY: {} snapshot(s), verified",
                    snaps.len()
                ),
            );
            state.catalog.finish_copy(&b.id, target, Ok(snaps))
        }
        Err(e) => {
            state.log(&b.id, &format!("copy to target {target} ERROR: {e}"));
            state.notifier.raise(Alert {
                kind: EventKind::CopyFailed,
                condition: None,
                summary: format!(
                    "backup {} could not be copied to target {target}: {e}",
                    b.id
                ),
                details: json!({ "backup_id": b.id, "target": target, "error": e }),
            });
            state.catalog.finish_copy(&b.id, target, Err(e))
        }
    };
    if let Err(e) = recorded {
        tracing::error!(backup = %b.id, "recording the end of a copy: {e}");
    }
}

/// Deletes the copies of backup `id` from their targets (before the backup
/// itself goes). Best effort: a copy target that cannot be reached keeps
/// its snapshots, which is logged (they are data, never a loss).
pub fn delete_copies(state: &AppState, id: &str) {
    let Ok(copies) = state.catalog.copies(id) else {
        return;
    };
    for c in copies.iter().filter(|c| !c.snapshots.is_empty()) {
        let result = state
            .repo(&c.target)
            .map_err(|e| e.message())
            .and_then(|r| r.forget(&c.snapshots).map_err(|e| e.to_string()));
        if let Err(e) = result {
            tracing::warn!(backup = %id, target = %c.target, "the copy's snapshots stay: {e}");
        }
    }
}
