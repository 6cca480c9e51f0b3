//! The retention preview as the API and the CLI show it: per policy, the
//! backups kept (with why) and those that would be deleted.

use coffer_schedule::retention::{Policy, Reason};
use serde::Serialize;
use utoipa::ToSchema;

use crate::clock::rfc3339;
use crate::retention::{Governor, GroupPreview};

/// A backup and the decision about it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetainedView {
    /// The backup.
    pub id: String,
    /// Its label.
    pub label: String,
    /// `BACKING_UP`, `READY` or `ERROR`.
    pub status: String,
    /// The time retention counts by (its due time when scheduled), RFC 3339.
    pub taken_at: String,
    /// Why it is kept: `pinned`, `running`, `busy: …`, `sole_copy`,
    /// `newest_ready`, `newest_verified`, `latest_failure`, `last`,
    /// `hourly`, `daily`, `weekly`, `monthly`, `yearly`, `within`. Empty
    /// for a backup that would be deleted.
    pub reasons: Vec<String>,
}

/// One policy and what it decides.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetentionGroupView {
    /// The schedule whose policy this is.
    pub schedule: Option<String>,
    /// Or the label whose policy this is.
    pub label: Option<String>,
    /// The policy.
    #[schema(value_type = Object)]
    pub policy: Policy,
    /// Backups it keeps, newest first.
    pub keep: Vec<RetainedView>,
    /// Backups it would delete now, newest first.
    pub delete: Vec<RetainedView>,
}

/// Every policy's preview.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetentionPreview {
    /// One entry per policy in force.
    pub policies: Vec<RetentionGroupView>,
}

fn reason_text(r: &Reason) -> String {
    match r {
        Reason::Busy(why) => format!("busy: {why}"),
        other => serde_json::to_value(other)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("{other:?}")),
    }
}

fn group_view(g: GroupPreview) -> RetentionGroupView {
    let (schedule, label) = match g.governor {
        Governor::Schedule(s) => (Some(s), None),
        Governor::Label(l) => (None, Some(l)),
    };
    let (mut keep, mut delete) = (Vec::new(), Vec::new());
    for (b, v) in g.backups {
        let view = RetainedView {
            taken_at: rfc3339(b.taken_at()),
            id: b.id,
            label: b.label,
            status: b.status.to_string(),
            reasons: v.reasons.iter().map(reason_text).collect(),
        };
        if v.keep() {
            keep.push(view);
        } else {
            delete.push(view);
        }
    }
    RetentionGroupView {
        schedule,
        label,
        policy: g.policy,
        keep,
        delete,
    }
}

/// Every group's view.
pub fn preview_view(groups: Vec<GroupPreview>) -> RetentionPreview {
    RetentionPreview {
        policies: groups.into_iter().map(group_view).collect(),
    }
}
