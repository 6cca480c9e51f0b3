//! Rebuilding the catalog from the repositories: the catalog is a cache, and
//! a fresh server given a target and its repository password lists and
//! restores every backup found there.
//!
//! Every component snapshot carries `coffer-backup=<id>`, `coffer-label=`,
//! `coffer-component=` and `coffer-components=<count>` tags. A backup whose
//! distinct components number `count` is complete (`READY`); fewer means the
//! backup was interrupted or a component failed (`ERROR`, with the numbers).

use std::collections::BTreeMap;

use coffer_engine::{ContentKind, SnapshotFilter, SnapshotInfo};
use coffer_model::access::BackupStatus;
use serde::Serialize;
use utoipa::ToSchema;

use crate::catalog::{BackupRow, now};
use crate::error::{ServiceError, ServiceResult};
use crate::state::AppState;

/// What a rebuild found.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct RebuildReport {
    /// The target read.
    pub target: String,
    /// Coffer backups found in its repository.
    pub found: usize,
    /// Of those, added to the catalog now.
    pub added: usize,
    /// Added as `READY`: every component present.
    pub complete: usize,
    /// Added as `ERROR`: components missing.
    pub incomplete: usize,
    /// Already in the catalog (left as they are).
    pub already_known: usize,
    /// Snapshots without Coffer tags (e.g. written by plain restic), ignored.
    pub foreign_snapshots: usize,
}

fn seconds(rfc3339: &str) -> i64 {
    rfc3339
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_second())
        .unwrap_or_else(|_| now())
}

/// Adds every backup found in `target`'s repository that the catalog lacks.
/// Blocking (reads the repository).
pub fn rebuild_target(state: &AppState, target: &str) -> ServiceResult<RebuildReport> {
    let repo = state.repo(target)?;
    let snaps = repo
        .snapshots(&SnapshotFilter::default())
        .map_err(|e| ServiceError::Upstream(format!("target {target}: {e}")))?;
    let mut report = RebuildReport {
        target: target.to_owned(),
        ..RebuildReport::default()
    };
    // backup id → component name → newest snapshot of it.
    let mut backups: BTreeMap<String, BTreeMap<String, SnapshotInfo>> = BTreeMap::new();
    for s in snaps {
        let Some(b) = s.backup.clone() else {
            report.foreign_snapshots += 1;
            continue;
        };
        let comps = backups.entry(b.backup_id.to_string()).or_default();
        let newer = comps
            .get(b.component.as_str())
            .is_none_or(|old| seconds(&old.time) <= seconds(&s.time));
        if newer {
            comps.insert(b.component.to_string(), s);
        }
    }
    report.found = backups.len();
    for (id, comps) in backups {
        if state.catalog.backup(&id)?.is_some() {
            report.already_known += 1;
            continue;
        }
        let Some(first) = comps.values().next().and_then(|s| s.backup.clone()) else {
            continue;
        };
        let count = first.component_count;
        let found = u32::try_from(comps.len()).unwrap_or(u32::MAX);
        let times: Vec<i64> = comps.values().map(|s| seconds(&s.time)).collect();
        let complete = found >= count;
        let row = BackupRow {
            id: id.clone(),
            label: first.label.to_string(),
            target: target.to_owned(),
            status: if complete {
                BackupStatus::Ready
            } else {
                BackupStatus::Error
            },
            error: (!complete).then(|| {
                format!(
                    "incomplete: {found} of {count} components are in the repository \
                     (the backup was interrupted or a component failed)"
                )
            }),
            component_count: count,
            created_at: times.iter().copied().min().unwrap_or_else(now),
            finished_at: times.iter().copied().max(),
            // The repository does not say which schedule took it.
            schedule: None,
            due_at: None,
            pinned: false,
            verified_at: None,
            seq: 0,
        };
        let rows: Vec<(String, String, SnapshotInfo)> = comps
            .into_iter()
            .map(|(name, snap)| {
                let kind = match state.config.component(&name) {
                    Some(spec) => spec.kind.name().to_owned(),
                    None => snap.kind.unwrap_or(ContentKind::Stream).as_str().to_owned(),
                };
                (name, kind, snap)
            })
            .collect();
        state.catalog.insert_rebuilt_backup(&row, &rows)?;
        state.catalog.log(
            &id,
            &format!("recorded from the repository of target {target} by a catalog rebuild"),
        );
        report.added += 1;
        if complete {
            report.complete += 1;
        } else {
            report.incomplete += 1;
        }
    }
    tracing::info!(
        target,
        found = report.found,
        added = report.added,
        incomplete = report.incomplete,
        "catalog rebuilt from target"
    );
    Ok(report)
}
