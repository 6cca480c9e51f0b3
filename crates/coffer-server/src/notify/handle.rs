//! What the rest of the server hands the notifier: an [`Alert`] — an
//! occurrence (a missed schedule) or a condition that starts or stops
//! holding (a component's backups failing) — through the state's
//! [`Notifier`]. Kept apart so jobs and the scheduler depend on nothing
//! the notifier uses.

use std::sync::Mutex;
use std::sync::mpsc::Sender;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The kinds of events a destination subscribes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Backups of a schedule (or a label) fail; resolved by the next READY one.
    BackupFailed,
    /// A backup is READY (opt-in: not in the default set).
    BackupSucceeded,
    /// Due times of a schedule passed while the server was down.
    ScheduleMissed,
    /// A due time was skipped (the previous run going, a component busy).
    ScheduleSkipped,
    /// A due run could not start (its target gone, no backup to drill).
    ScheduleFailed,
    /// Restore drills of a label's backups fail; resolved by a passing one.
    DrillFailed,
    /// Checks of a target's repository find damage; resolved by a clean one.
    CheckFailed,
    /// A backup's copy to an extra target failed (the backup is then kept
    /// as the only copy).
    CopyFailed,
    /// A component's newest READY backup is older than
    /// `alerts.backup_max_age_secs` (a dead-man switch); resolved by a new one.
    BackupStale,
    /// A target cannot be reached (or holds no repository any more);
    /// resolved when a probe reaches it again.
    TargetUnreachable,
    /// A local target or the staging area has less free space than
    /// `alerts.free_space_min_mib`; resolved when it has enough again.
    FreeSpaceLow,
    /// A test message (`POST /api/v1/notifications/{name}/test`).
    Test,
}

impl EventKind {
    /// Every kind a destination gets when it names none: all but
    /// `backup_succeeded` and `test`.
    pub const DEFAULT: [EventKind; 10] = [
        EventKind::BackupFailed,
        EventKind::CheckFailed,
        EventKind::ScheduleMissed,
        EventKind::ScheduleSkipped,
        EventKind::ScheduleFailed,
        EventKind::DrillFailed,
        EventKind::CopyFailed,
        EventKind::BackupStale,
        EventKind::TargetUnreachable,
        EventKind::FreeSpaceLow,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BackupFailed => "backup_failed",
            Self::BackupSucceeded => "backup_succeeded",
            Self::ScheduleMissed => "schedule_missed",
            Self::ScheduleSkipped => "schedule_skipped",
            Self::ScheduleFailed => "schedule_failed",
            Self::DrillFailed => "drill_failed",
            Self::CopyFailed => "copy_failed",
            Self::CheckFailed => "check_failed",
            Self::BackupStale => "backup_stale",
            Self::TargetUnreachable => "target_unreachable",
            Self::FreeSpaceLow => "free_space_low",
            Self::Test => "test",
        }
    }
}

/// Something to tell operators.
#[derive(Debug, Clone)]
pub struct Alert {
    /// Its kind.
    pub kind: EventKind,
    /// For a condition: what it is about (`schedule nightly`, `component
    /// db`), and whether it holds now. A condition is told once when it
    /// starts holding and once when it stops; `None`: an occurrence, told
    /// every time.
    pub condition: Option<(String, bool)>,
    /// One line for people.
    pub summary: String,
    /// Ids and figures (never a secret).
    pub details: serde_json::Value,
}

/// The notifier's inbox.
#[derive(Debug, Default)]
pub struct Notifier {
    tx: Mutex<Option<Sender<Alert>>>,
}

impl Notifier {
    /// Connects the inbox to the notifier's thread.
    pub fn connect(&self, tx: Sender<Alert>) {
        *self.tx.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
    }

    /// Hands `alert` to the notifier (dropped when none runs, as in the
    /// offline CLI).
    pub fn raise(&self, alert: Alert) {
        if let Some(tx) = self.tx.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            let _ = tx.send(alert);
        }
    }
}
