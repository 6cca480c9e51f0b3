//! Restore drills: a READY backup restored, component by component, into
//! scratch places beside the live ones (see [`coffer_components::drill`])
//! and proved there; the scratch places are removed whatever happens, and
//! again at the next start after a crash. A drill that proves every
//! drillable component marks the backup `verified_at`; its duration is the
//! measured recovery time (RTO), per component and in total.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use coffer_components::drill::{self, remove_scratch, scratch_spec};
use coffer_components::{RestoreContext, RestoreOptions, RestoreSource};
use coffer_engine::{RestoreMode, SnapshotInfo};
use coffer_model::access::{BackupStatus, Scope};
use serde::Serialize;

use crate::access::Principal;
use crate::catalog::{DrillRow, DrillStatus, now};
use crate::error::{ServiceError, ServiceResult};
use crate::jobs::registry::{Reservation, backup_key};
use crate::jobs::runner::spawn_job;
use crate::lookup::{backup_snapshots, find_backup, is_sensitive};
use crate::state::{AppState, Shared};

/// What happened to one component in a drill.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentDrill {
    /// The component.
    pub component: String,
    /// `READY` (proved), `ERROR` or `SKIPPED` (cannot be drilled).
    pub status: String,
    /// Seconds from the start of its restore to the end of its proof (its
    /// measured recovery time; the removal of the scratch copy after it is
    /// not counted).
    pub seconds: f64,
    /// What was proved.
    pub proof: Option<String>,
    /// Why it failed or was skipped.
    pub error: Option<String>,
}

/// The scratch directory of drill `tag`.
fn scratch_dir(state: &AppState, tag: &str) -> PathBuf {
    state.config.staging_dir.join("drills").join(tag)
}

/// Starts a drill of backup `backup_id` as `p`: `restore` on each of its
/// components (and `sensitive` on sensitive ones). `schedule` names the
/// schedule that asked for it. Returns the drill's id.
pub fn start(
    state: &Shared,
    p: &Principal,
    backup_id: &str,
    schedule: Option<String>,
) -> ServiceResult<String> {
    p.require(Scope::Restore)?;
    let b = find_backup(state, backup_id)?;
    let comps = state.catalog.backup_components(backup_id)?;
    for c in &comps {
        p.require_component(Scope::Restore, &c.component, is_sensitive(state, c))?;
    }
    if b.status != BackupStatus::Ready {
        return Err(ServiceError::Conflict(format!(
            "backup {backup_id} is {}: only a READY backup can be drilled",
            b.status
        )));
    }
    let uuid = uuid::Uuid::new_v4().simple().to_string();
    let id = format!("drill-{uuid}");
    let tag = uuid[..16].to_owned();
    let reservation = state.jobs.reserve(&id, vec![backup_key(backup_id)])?;
    let row = DrillRow {
        id: id.clone(),
        backup_id: backup_id.to_owned(),
        schedule,
        tag,
        components: comps.iter().map(|c| c.component.clone()).collect(),
        status: DrillStatus::Drilling,
        error: None,
        report: None,
        seconds: None,
        created_at: now(),
        finished_at: None,
    };
    state.catalog.insert_drill(&row)?;
    let st = Arc::clone(state);
    let target = b.target;
    spawn_job(&id, move || run(&st, row, target, reservation))?;
    Ok(id)
}

/// Runs a recorded drill to its end; never panics the server.
fn run(state: &Shared, row: DrillRow, target: String, reservation: Reservation) {
    let _reservation = reservation;
    let started = Instant::now();
    let log = |line: String| state.log(&row.id, &line);
    log(format!(
        "drill of backup {} started: {}",
        row.backup_id,
        row.components.join(", ")
    ));
    let results = match snapshots(state, &target, &row.backup_id) {
        Err(e) => row
            .components
            .iter()
            .map(|c| ComponentDrill {
                component: c.clone(),
                status: "ERROR".into(),
                seconds: 0.0,
                proof: None,
                error: Some(e.message()),
            })
            .collect(),
        Ok(snaps) => row
            .components
            .iter()
            .map(|c| drill_component(state, &row, &target, c, snaps.get(c)))
            .collect::<Vec<_>>(),
    };
    for r in &results {
        match (&r.proof, &r.error) {
            (Some(p), _) => log(format!(
                "{} {}: {p} ({:.1} s)",
                r.component, r.status, r.seconds
            )),
            (None, Some(e)) => log(format!("{} {}: {e}", r.component, r.status)),
            _ => {}
        }
    }
    let failures: Vec<String> = results
        .iter()
        .filter(|r| r.status == "ERROR")
        .map(|r| {
            format!(
                "backup {}: component {}: {}",
                row.backup_id,
                r.component,
                r.error.as_deref().unwrap_or("failed")
            )
        })
        .collect();
    let proved = results.iter().filter(|r| r.status == "READY").count();
    let error = if !failures.is_empty() {
        Some(failures.join("; "))
    } else if proved == 0 {
        Some(format!(
            "backup {}: no component of it can be drilled",
            row.backup_id
        ))
    } else {
        None
    };
    let seconds = started.elapsed().as_secs_f64();
    let verified_at = error.is_none().then(|| state.clock.now().as_second());
    let report = serde_json::to_string(&results).unwrap_or_default();
    log(format!(
        "drill {} after {seconds:.1} s{}",
        if error.is_none() { "READY" } else { "ERROR" },
        error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default()
    ));
    state.logs.flush();
    if let Err(e) =
        state
            .catalog
            .finish_drill(&row.id, error.as_deref(), &report, seconds, verified_at)
    {
        tracing::error!(drill = %row.id, "recording the end of the drill: {e}");
    }
    for r in results.iter().filter(|r| r.status == "READY") {
        state.metrics.drilled(&r.component, r.seconds, verified_at);
    }
    crate::notify::watch::drill_ended(state, &row.id, &row.backup_id, error.as_deref());
    // A drill schedule's next run may have waited for this one.
    state.scheduler.wake();
    tracing::info!(drill = %row.id, backup = %row.backup_id, ok = error.is_none(), "drill finished in {seconds:.1} s");
}

/// The backup's snapshots by component.
fn snapshots(
    state: &AppState,
    target: &str,
    backup_id: &str,
) -> ServiceResult<BTreeMap<String, SnapshotInfo>> {
    Ok(backup_snapshots(state, target, backup_id)?
        .into_iter()
        .filter_map(|s| {
            let name = s.backup.as_ref()?.component.to_string();
            Some((name, s))
        })
        .collect())
}

/// Restores one component into its scratch place, proves it, removes it.
fn drill_component(
    state: &Shared,
    row: &DrillRow,
    target: &str,
    component: &str,
    snapshot: Option<&SnapshotInfo>,
) -> ComponentDrill {
    let started = Instant::now();
    let done = |status: &str, proof: Option<String>, error: Option<String>| ComponentDrill {
        component: component.to_owned(),
        status: status.to_owned(),
        seconds: started.elapsed().as_secs_f64(),
        proof,
        error,
    };
    let Some(spec) = state.config.component(component) else {
        return done(
            "SKIPPED",
            None,
            Some("not configured on this server any more".into()),
        );
    };
    let Some(snapshot) = snapshot else {
        return done(
            "ERROR",
            None,
            Some("its snapshot is no longer in the repository".into()),
        );
    };
    if snapshot.sealed {
        return done(
            "SKIPPED",
            None,
            Some(
                "sealed: restoring it needs the age identity, which the server never holds".into(),
            ),
        );
    }
    let dir = scratch_dir(state, &row.tag);
    let scratch = match scratch_spec(spec, &row.tag, &dir) {
        Ok(s) => s,
        Err(e) => return done("SKIPPED", None, Some(e.to_string())),
    };
    let result = (|| -> Result<String, String> {
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let repo = state.repo(target).map_err(|e| e.message())?;
        let options = RestoreOptions {
            mode: RestoreMode::RefuseNonEmpty,
            clean: false,
            create_database: true,
            no_owner: true,
            role: None,
        };
        let ctx = RestoreContext {
            source: RestoreSource::Snapshot {
                repo: &repo,
                snapshot,
            },
            // The drill's own directory: whatever a restore stages there
            // (a temporary redis-server's files) goes with it, also after a crash.
            staging_dir: &dir,
            options: &options,
            progress: None,
            part: None,
        };
        drill::run(&scratch, &ctx, snapshot).map_err(|e| e.to_string())
    })();
    // Restored and proved; the scratch copy is still there.
    coffer_model::crash::crash_point("drill.restored");
    // The recovery time: the restore and its proof, not the removal after.
    let seconds = started.elapsed().as_secs_f64();
    let cleanup = remove_scratch(&scratch).map_err(|e| e.to_string());
    if let Err(e) = std::fs::remove_dir_all(&dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        state.log(&row.id, &format!("removing {}: {e}", dir.display()));
    }
    let (status, proof, error) = match (result, cleanup) {
        (Ok(proof), Ok(())) => ("READY", Some(proof), None),
        (Ok(_), Err(e)) => (
            "ERROR",
            None,
            Some(format!("removing the scratch copy: {e}")),
        ),
        (Err(e), _) => ("ERROR", None, Some(e)),
    };
    ComponentDrill {
        seconds,
        ..done(status, proof, error)
    }
}

/// Removes the scratch places of drills a previous process left running
/// and records them `ERROR`. Called at start.
pub fn clean_interrupted(state: &AppState) -> ServiceResult<usize> {
    let running = state.catalog.running_drills()?;
    for d in &running {
        let dir = scratch_dir(state, &d.tag);
        for c in &d.components {
            if let Some(spec) = state.config.component(c)
                && let Ok(scratch) = scratch_spec(spec, &d.tag, &dir)
                && let Err(e) = remove_scratch(&scratch)
            {
                tracing::warn!(drill = %d.id, "removing the scratch copy of {c}: {e}");
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(drill = %d.id, "removing {}: {e}", dir.display());
        }
        state.catalog.finish_drill(
            &d.id,
            Some("interrupted by restart; its scratch copies were removed"),
            "[]",
            0.0,
            None,
        )?;
    }
    Ok(running.len())
}

/// A drill as `p` may see it: `backups:read` on every component.
pub fn show(state: &AppState, p: &Principal, id: &str) -> ServiceResult<DrillRow> {
    p.require(Scope::BackupsRead)?;
    let d = state
        .catalog
        .drill(id)?
        .ok_or_else(|| ServiceError::NotFound(format!("no drill with id {id:?}")))?;
    // The drill's own list: it outlives a deleted backup.
    let sealed: Vec<String> = state
        .catalog
        .backup_components(&d.backup_id)?
        .into_iter()
        .filter(|c| is_sensitive(state, c))
        .map(|c| c.component)
        .collect();
    for c in &d.components {
        let sensitive =
            sealed.contains(c) || state.config.component(c).is_some_and(|s| s.sensitive);
        p.require_component(Scope::BackupsRead, c, sensitive)?;
    }
    Ok(d)
}
