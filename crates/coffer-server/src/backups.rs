//! Backups as a service: list, show, log, cancel and delete, each checked
//! against the caller. A caller limited to some components sees a backup
//! only through them: the others, their errors and the backup's log (which
//! mixes every component and the hooks' output) stay hidden. Every function
//! blocks (catalog, repository).

use coffer_engine::EngineError;
use coffer_model::access::{BackupStatus, Scope};

use crate::access::Principal;
use crate::catalog::{BackupComponentRow, BackupRow, CopyRow, DrillRow, ExportRow, TargetMode};
use crate::error::{ServiceError, ServiceResult};
use crate::exports::visible_of_backup;
use crate::jobs::registry::backup_key;
use crate::lookup::{backup_snapshots, find_backup, is_sensitive};
use crate::restores::{self, RestoreDetail};
use crate::state::AppState;

/// A backup as a caller may see it.
#[derive(Debug)]
pub struct BackupDetail {
    /// The backup; its `error` only speaks of components the caller sees.
    pub backup: BackupRow,
    /// The components the caller may see.
    pub components: Vec<BackupComponentRow>,
    /// The exports the caller may see.
    pub exports: Vec<ExportRow>,
    /// Its restores, newest first, as the caller may see them (filled by
    /// [`show`] only: a list of backups leaves them out).
    pub restores: Vec<RestoreDetail>,
    /// Its newest restore drill.
    pub last_drill: Option<DrillRow>,
    /// Its copies on extra targets.
    pub copies: Vec<CopyRow>,
}

/// Forbidden unless `p` may act with `scope` on every component of the
/// backup.
fn require_every(
    state: &AppState,
    p: &Principal,
    scope: Scope,
    comps: &[BackupComponentRow],
) -> ServiceResult<()> {
    for c in comps {
        p.require_component(scope, &c.component, is_sensitive(state, c))?;
    }
    Ok(())
}

/// The backup as `p` sees it; `None` when it sees none of its components.
fn detail(
    state: &AppState,
    p: &Principal,
    mut backup: BackupRow,
    comps: Vec<BackupComponentRow>,
) -> ServiceResult<Option<BackupDetail>> {
    let total = comps.len();
    let components: Vec<BackupComponentRow> = comps
        .into_iter()
        .filter(|c| p.sees(&c.component, is_sensitive(state, c)))
        .collect();
    if components.is_empty() && total > 0 {
        return Ok(None);
    }
    let hidden = total - components.len();
    if hidden > 0 && backup.error.is_some() {
        // The backup's own error names every component and the hooks: say
        // only what the caller's components report.
        let visible: Vec<String> = components
            .iter()
            .filter_map(|c| c.error.as_ref().map(|e| format!("{}: {e}", c.component)))
            .collect();
        backup.error = Some(if visible.is_empty() {
            format!("failed in {hidden} component(s) or hook(s) this token may not see")
        } else {
            visible.join("; ")
        });
    }
    Ok(Some(BackupDetail {
        exports: visible_of_backup(state, p, &backup.id)?,
        last_drill: state.catalog.last_drill(&backup.id)?,
        copies: state.catalog.copies(&backup.id)?,
        backup,
        components,
        restores: Vec::new(),
    }))
}

/// Backups, newest first, that `p` may see, optionally by label and state.
pub fn list(
    state: &AppState,
    p: &Principal,
    label: Option<&str>,
    status: Option<&str>,
) -> ServiceResult<Vec<BackupDetail>> {
    p.require(Scope::BackupsRead)?;
    let status = status
        .map(str::parse::<BackupStatus>)
        .transpose()
        .map_err(|e| ServiceError::Invalid(format!("status: {e}")))?;
    let mut out = Vec::new();
    for b in state.catalog.backups(label, status)? {
        let comps = state.catalog.backup_components(&b.id)?;
        if let Some(d) = detail(state, p, b, comps)? {
            out.push(d);
        }
    }
    Ok(out)
}

/// One backup, through the components `p` may see; `Forbidden` when it
/// may see none of them.
pub fn show(state: &AppState, p: &Principal, id: &str) -> ServiceResult<BackupDetail> {
    p.require(Scope::BackupsRead)?;
    let b = find_backup(state, id)?;
    let comps = state.catalog.backup_components(id)?;
    let first = comps.first().cloned();
    match detail(state, p, b, comps)? {
        Some(mut d) => {
            d.restores = restores::list(state, p, Some(id))?;
            Ok(d)
        }
        None => {
            let c = first.ok_or_else(|| ServiceError::internal("a backup without components"))?;
            p.require_reach(&c.component, is_sensitive(state, &c))?;
            Err(ServiceError::internal(
                "a hidden component passed the check",
            ))
        }
    }
}

/// A backup's log — hooks, components, timings, tool errors — for a caller
/// that may see every component of it.
pub fn log(state: &AppState, p: &Principal, id: &str) -> ServiceResult<Vec<(i64, String)>> {
    p.require(Scope::BackupsRead)?;
    find_backup(state, id)?;
    require_every(
        state,
        p,
        Scope::BackupsRead,
        &state.catalog.backup_components(id)?,
    )?;
    state.logs.flush();
    Ok(state.catalog.job_log(id)?)
}

/// Cancels a running backup: it ends `ERROR` ("cancelled") and keeps nothing.
pub fn cancel(state: &AppState, p: &Principal, id: &str) -> ServiceResult<()> {
    p.require(Scope::BackupsWrite)?;
    let b = find_backup(state, id)?;
    require_every(
        state,
        p,
        Scope::BackupsWrite,
        &state.catalog.backup_components(id)?,
    )?;
    if b.status != BackupStatus::BackingUp || !state.jobs.cancel(id) {
        return Err(ServiceError::Conflict(format!(
            "backup {id} is {}, not running",
            b.status
        )));
    }
    state.log(id, &format!("cancel requested by {} ({})", p.name, p.id));
    Ok(())
}

/// Pins or unpins a backup (retention never deletes a pinned one): `p`
/// needs `backups:delete` on every component, as pinning decides what
/// retention may delete. Returns the backup as `p` sees it.
pub fn set_pinned(
    state: &AppState,
    p: &Principal,
    id: &str,
    pinned: bool,
) -> ServiceResult<BackupDetail> {
    p.require(Scope::BackupsDelete)?;
    find_backup(state, id)?;
    require_every(
        state,
        p,
        Scope::BackupsDelete,
        &state.catalog.backup_components(id)?,
    )?;
    if !state.catalog.set_pinned(id, pinned)? {
        return Err(ServiceError::NotFound(format!("no backup {id}")));
    }
    tracing::info!(backup = %id, by = %p.id, pinned, "backup pin changed");
    let mut reader = p.clone();
    reader.scopes.insert(Scope::BackupsRead);
    show(state, &reader, id)
}

/// Deletes a backup from its repository and the catalog; returns how many
/// snapshots were removed. `p` needs `backups:delete` on every component.
pub fn delete(state: &AppState, p: &Principal, id: &str) -> ServiceResult<usize> {
    p.require(Scope::BackupsDelete)?;
    let b = find_backup(state, id)?;
    require_every(
        state,
        p,
        Scope::BackupsDelete,
        &state.catalog.backup_components(id)?,
    )?;
    if b.status == BackupStatus::BackingUp {
        return Err(ServiceError::Conflict(format!(
            "backup {id} is being backed up: cancel it first (POST /api/v1/backups/{id}/cancel)"
        )));
    }
    let target = state.target_row(&b.target)?;
    if target.mode != TargetMode::Own {
        return Err(ServiceError::Conflict(format!(
            "target {} is attached read-only: only the installation that owns it deletes backups",
            target.name
        )));
    }
    // Held while deleting, so no restore or export of it starts meanwhile.
    let _reservation = state
        .jobs
        .reserve(&format!("delete-{id}"), vec![backup_key(id)])?;
    let ids: Vec<String> = backup_snapshots(state, &b.target, id)?
        .into_iter()
        .map(|s| s.id)
        .collect();
    // Marked first: a crash between forgetting the snapshots and removing
    // the record must not leave a READY backup whose data is gone.
    state.catalog.mark_backup_deleting(id)?;
    coffer_model::crash::crash_point("delete.forgetting");
    let forgotten = if ids.is_empty() {
        Ok(0)
    } else {
        state.repo(&b.target).and_then(|r| {
            r.forget(&ids).map_err(|e| match e {
                EngineError::Locked { .. } => ServiceError::Conflict(e.to_string()),
                e => ServiceError::Upstream(e.to_string()),
            })
        })
    };
    let removed = match forgotten {
        Ok(n) => n,
        Err(e @ ServiceError::Conflict(_)) => {
            // Refused by a lock before anything was removed: the backup is
            // what it was.
            state
                .catalog
                .set_backup_state(id, b.status, b.error.as_deref())?;
            return Err(e);
        }
        // Some snapshots may be gone: it stays marked, to be deleted again.
        Err(e) => return Err(e),
    };
    coffer_model::crash::crash_point("delete.forgotten");
    crate::copies::delete_copies(state, id);
    state.catalog.delete_backup(id)?;
    tracing::info!(backup = %id, by = %p.id, snapshots = removed, "backup deleted");
    Ok(removed)
}
