//! What raises alerts: a backup's end, what a schedule's due times became,
//! a drill's end, and — on the scheduler's clock — components whose newest
//! READY backup is older than `alerts.backup_max_age_secs`, targets a probe
//! cannot reach, and places short of `alerts.free_space_min_mib`.

use coffer_model::access::BackupStatus;
use serde_json::json;

use crate::catalog::{RunOutcome, ScheduleRunRow};
use crate::notify::handle::{Alert, EventKind};
use crate::state::AppState;
use crate::targets::health;

/// A backup ended: its schedule's (or label's) backups failing starts or
/// stops; a READY one is also a `backup_succeeded` occurrence.
pub fn backup_ended(state: &AppState, id: &str) {
    let Ok(Some(b)) = state.catalog.backup(id) else {
        return;
    };
    let about = match &b.schedule {
        Some(s) => format!("schedule {s}"),
        None => format!("label {}", b.label),
    };
    let failed = b.status == BackupStatus::Error;
    let details = json!({
        "backup_id": b.id, "label": b.label, "schedule": b.schedule, "target": b.target,
        "status": b.status.as_str(), "error": b.error,
    });
    state.notifier.raise(Alert {
        kind: EventKind::BackupFailed,
        condition: Some((format!("backup_failed:{about}"), failed)),
        summary: if failed {
            format!(
                "backups of {about} fail: {} ended ERROR: {}",
                b.id,
                b.error.as_deref().unwrap_or("")
            )
        } else {
            format!("backups of {about} work again: {} is READY", b.id)
        },
        details: details.clone(),
    });
    if b.status == BackupStatus::Ready {
        state.notifier.raise(Alert {
            kind: EventKind::BackupSucceeded,
            condition: None,
            summary: format!("backup {} of {about} is READY", b.id),
            details,
        });
    }
}

/// A schedule's due times were decided: missed, skipped and failed ones
/// are told, each once.
pub fn runs_recorded(state: &AppState, runs: &[ScheduleRunRow]) {
    for r in runs {
        let kind = match r.outcome {
            RunOutcome::Missed => EventKind::ScheduleMissed,
            RunOutcome::Skipped => EventKind::ScheduleSkipped,
            RunOutcome::Failed => EventKind::ScheduleFailed,
            RunOutcome::Started => continue,
        };
        state.notifier.raise(Alert {
            kind,
            condition: None,
            summary: format!(
                "schedule {}: {} {}: {}",
                r.schedule,
                crate::clock::rfc3339(r.due_at),
                r.outcome,
                r.reason.as_deref().unwrap_or("")
            ),
            details: json!({
                "schedule": r.schedule, "due_at": crate::clock::rfc3339(r.due_at),
                "last_due_at": r.last_due_at.map(crate::clock::rfc3339),
                "missed_count": r.missed_count, "outcome": r.outcome.as_str(), "reason": r.reason,
            }),
        });
    }
}

/// A drill ended: drills of the backup's label failing starts or stops.
pub fn drill_ended(state: &AppState, drill_id: &str, backup_id: &str, error: Option<&str>) {
    let label = state
        .catalog
        .backup(backup_id)
        .ok()
        .flatten()
        .map_or_else(|| backup_id.to_owned(), |b| b.label);
    state.notifier.raise(Alert {
        kind: EventKind::DrillFailed,
        condition: Some((format!("drill_failed:label {label}"), error.is_some())),
        summary: match error {
            Some(e) => format!("restore drill {drill_id} of backup {backup_id} failed: {e}"),
            None => format!("restore drills of label {label} pass again ({drill_id})"),
        },
        details: json!({ "drill_id": drill_id, "backup_id": backup_id, "label": label, "error": error }),
    });
}

/// Components whose newest READY backup is older than
/// `alerts.backup_max_age_secs` at `now` (never backed up: once the
/// server has watched that long, from `since`).
pub fn stale(state: &AppState, now: jiff::Timestamp, since: jiff::Timestamp) {
    let Some(max_age) = state.config.backup_max_age else {
        return;
    };
    let newest = match state.catalog.newest_ready_by_component() {
        Ok(n) => n,
        Err(e) => {
            tracing::error!("notifications: {e}");
            return;
        }
    };
    let limit = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
    for c in &state.config.components {
        let name = c.name.as_str();
        let last = newest.iter().find(|(n, _)| n == name).map(|(_, t)| *t);
        let age = now.as_second() - last.unwrap_or(since.as_second());
        let too_old = age > limit;
        state.notifier.raise(Alert {
            kind: EventKind::BackupStale,
            condition: Some((format!("backup_stale:component {name}"), too_old)),
            summary: match (too_old, last) {
                (true, Some(t)) => format!(
                    "component {name}: newest READY backup is from {}, older than {limit} s",
                    crate::clock::rfc3339(t)
                ),
                (true, None) => format!("component {name}: no READY backup in {limit} s"),
                (false, _) => format!("component {name} has a recent READY backup again"),
            },
            details: json!({
                "component": name, "newest_ready_at": last.map(crate::clock::rfc3339),
                "max_age_secs": limit,
            }),
        });
    }
}

/// Probes every target and the staging area: a target that cannot be
/// reached, and a local target or staging area with less free space than
/// `alerts.free_space_min_mib`, are told once when that starts and once
/// when it ends; the metrics get each figure. Blocking (network).
pub fn probe(state: &AppState) {
    let targets = match state.catalog.targets() {
        Ok(t) => t,
        Err(e) => {
            tracing::error!("probing targets: {e}");
            return;
        }
    };
    for row in &targets {
        let h = health::probe(state, row);
        state.target_health.record(&h);
        let name = &h.name;
        state
            .metrics
            .target_probed(name, h.reached.as_ref().ok().copied());
        let error = h.reached.as_ref().err();
        state.notifier.raise(Alert {
            kind: EventKind::TargetUnreachable,
            condition: Some((format!("target_unreachable:target {name}"), error.is_some())),
            summary: match error {
                Some(e) => format!("target {name} cannot be reached: {e}"),
                None => format!("target {name} can be reached again"),
            },
            details: json!({ "target": name, "kind": row.kind, "error": error }),
        });
        if let Some((path, free)) = &h.free {
            let place = format!("target:{name}");
            state.metrics.free_space(&place, *free);
            space_condition(state, &place, path, *free);
        }
    }
    let staging = &state.config.staging_dir;
    let measured = staging.ancestors().find(|p| p.exists()).unwrap_or(staging);
    match coffer_targets::free_space_at(measured) {
        Ok(free) => {
            state.metrics.free_space("staging", free);
            space_condition(state, "staging", staging, free);
        }
        Err(e) => tracing::warn!("free space of {}: {e}", measured.display()),
    }
}

/// `free_space_low` for `place` (at `path`) with `free` bytes left.
fn space_condition(state: &AppState, place: &str, path: &std::path::Path, free: u64) {
    let min = state.config.free_space_min;
    if min == 0 {
        return;
    }
    let low = free < min;
    let what = match place.strip_prefix("target:") {
        Some(t) => format!("target {t} ({})", path.display()),
        None => format!("the staging area ({})", path.display()),
    };
    state.notifier.raise(Alert {
        kind: EventKind::FreeSpaceLow,
        condition: Some((format!("free_space_low:{place}"), low)),
        summary: if low {
            format!(
                "{what} has {} MiB free, less than alerts.free_space_min_mib ({} MiB)",
                free >> 20,
                min >> 20
            )
        } else {
            format!("{what} has {} MiB free again", free >> 20)
        },
        details: json!({
            "place": place, "path": path, "free_bytes": free, "min_bytes": min,
        }),
    });
}
