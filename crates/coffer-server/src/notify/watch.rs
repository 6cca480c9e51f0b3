//! What raises alerts: a backup's end, what a schedule's due times became,
//! a drill's end, and — on the scheduler's clock — components whose newest
//! READY backup is older than `alerts.backup_max_age_secs`.

use coffer_model::access::BackupStatus;
use serde_json::json;

use crate::catalog::{RunOutcome, ScheduleRunRow};
use crate::notify::handle::{Alert, EventKind};
use crate::state::AppState;

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
