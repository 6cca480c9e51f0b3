//! Retention as a service: which policy governs a backup, what each policy
//! keeps and why (the preview), and the forget after each backup.
//!
//! A backup is governed by its schedule's policy when that schedule has
//! one, else by its label's (`[retention.labels]` in coffer.toml); others
//! are never deleted by retention. The decisions are
//! [`coffer_schedule::retention`]'s, on the server's clock; the deletes go
//! through the same path as `DELETE /api/v1/backups/{id}`, so a backup
//! being restored or exported is never removed from under its job.

pub mod view;

use std::collections::{BTreeSet, HashMap};

use coffer_model::access::{BackupStatus, Scope};
use coffer_schedule::Timestamp;
use coffer_schedule::retention::{self, Candidate, Health, Policy, Verdict};

use crate::access::Principal;
use crate::backups;
use crate::catalog::BackupRow;
use crate::error::{ServiceError, ServiceResult};
use crate::jobs::registry::backup_key;
use crate::schedules::service::open_spec;
use crate::state::AppState;

/// What governs a group of backups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Governor {
    /// A schedule with a retention policy.
    Schedule(String),
    /// A label with a policy in `[retention.labels]`.
    Label(String),
}

/// One governed group and the decision about each of its backups.
#[derive(Debug)]
pub struct GroupPreview {
    /// What governs it.
    pub governor: Governor,
    /// Its policy.
    pub policy: Policy,
    /// Its backups, newest first, each with the decision.
    pub backups: Vec<(BackupRow, Verdict)>,
}

/// Every policy in force: schedules' (by name), then labels'.
fn policies(state: &AppState) -> ServiceResult<Vec<(Governor, Policy)>> {
    let mut out = Vec::new();
    for row in state.catalog.schedules()? {
        if let Some(p) = open_spec(state, &row)?.retention {
            out.push((Governor::Schedule(row.name), p));
        }
    }
    for (label, p) in &state.config.label_retention {
        out.push((Governor::Label(label.clone()), p.clone()));
    }
    Ok(out)
}

/// The backups `governor` governs, newest first.
fn governed(
    state: &AppState,
    governor: &Governor,
    scheduled_with_policy: &BTreeSet<String>,
) -> ServiceResult<Vec<BackupRow>> {
    Ok(match governor {
        Governor::Schedule(name) => state.catalog.backups_of_schedule(name)?,
        Governor::Label(label) => state
            .catalog
            .backups(Some(label), None)?
            .into_iter()
            .filter(|b| {
                b.schedule
                    .as_ref()
                    .is_none_or(|s| !scheduled_with_policy.contains(s))
            })
            .collect(),
    })
}

/// What retention needs of every backup, loaded once per decision.
struct Known {
    /// Components (name, stored sealed) by backup.
    components: HashMap<String, Vec<(String, bool)>>,
    /// Backups whose copy to an extra target failed.
    sole_copies: BTreeSet<String>,
}

impl Known {
    fn load(state: &AppState) -> ServiceResult<Self> {
        Ok(Self {
            components: state.catalog.component_names_by_backup()?,
            sole_copies: state.catalog.backups_with_failed_copies()?,
        })
    }
}

/// What retention needs to know about a backup.
fn candidate(state: &AppState, known: &Known, b: &BackupRow) -> Candidate {
    let set = known
        .components
        .get(&b.id)
        .map(|c| {
            c.iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    Candidate {
        id: b.id.clone(),
        set,
        at: Timestamp::from_second(b.taken_at()).unwrap_or(Timestamp::UNIX_EPOCH),
        seq: b.seq,
        health: match b.status {
            BackupStatus::Ready => Health::Ready,
            BackupStatus::Error => Health::Failed,
            BackupStatus::BackingUp => Health::Running,
        },
        pinned: b.pinned,
        verified: b.verified_at.is_some(),
        busy: state
            .jobs
            .holder(&backup_key(&b.id))
            .map(|job| format!("in use by {job}")),
        // Its copy to an extra target failed: it is the only copy.
        sole_copy: known.sole_copies.contains(&b.id),
    }
}

fn decide_group(
    state: &AppState,
    known: &Known,
    governor: Governor,
    policy: Policy,
    scheduled_with_policy: &BTreeSet<String>,
) -> ServiceResult<GroupPreview> {
    let mut rows = governed(state, &governor, scheduled_with_policy)?;
    // Newest first by the time retention counts by.
    rows.sort_by_key(|b| std::cmp::Reverse((b.taken_at(), b.seq)));
    let candidates: Vec<Candidate> = rows.iter().map(|b| candidate(state, known, b)).collect();
    let verdicts = retention::decide(&policy, &candidates, state.clock.now());
    Ok(GroupPreview {
        governor,
        policy,
        backups: rows.into_iter().zip(verdicts).collect(),
    })
}

fn with_policy(groups: &[(Governor, Policy)]) -> BTreeSet<String> {
    groups
        .iter()
        .filter_map(|(g, _)| match g {
            Governor::Schedule(n) => Some(n.clone()),
            Governor::Label(_) => None,
        })
        .collect()
}

/// What every policy (or the one of `schedule` / `label`) would delete
/// now and why each kept backup is kept — as `p` may see it: backups with
/// a component it may not see are left out of the answer.
pub fn preview(
    state: &AppState,
    p: &Principal,
    schedule: Option<&str>,
    label: Option<&str>,
) -> ServiceResult<Vec<GroupPreview>> {
    p.require(Scope::BackupsRead)?;
    let all = policies(state)?;
    let scheduled = with_policy(&all);
    let known = Known::load(state)?;
    let mut out = Vec::new();
    for (g, policy) in all {
        let wanted = match (&g, schedule, label) {
            (_, None, None) => true,
            (Governor::Schedule(n), Some(s), _) => n == s,
            (Governor::Label(l), _, Some(x)) => l == x,
            _ => false,
        };
        if !wanted {
            continue;
        }
        let mut group = decide_group(state, &known, g, policy, &scheduled)?;
        group.backups.retain(|(b, _)| {
            known
                .components
                .get(&b.id)
                .into_iter()
                .flatten()
                .all(|(c, sealed)| {
                    let sensitive =
                        *sealed || state.config.component(c).is_some_and(|s| s.sensitive);
                    p.sees(c, sensitive)
                })
        });
        out.push(group);
    }
    if out.is_empty() && (schedule.is_some() || label.is_some()) {
        return Err(ServiceError::NotFound(format!(
            "no retention policy for {}",
            schedule.map_or_else(
                || format!("label {:?}", label.unwrap_or_default()),
                |s| format!("schedule {s:?}")
            )
        )));
    }
    Ok(out)
}

/// The system principal retention deletes as.
fn retention_principal() -> Principal {
    Principal {
        id: "system".into(),
        name: "retention".into(),
        scopes: [Scope::BackupsDelete, Scope::Sensitive]
            .into_iter()
            .collect(),
        components: None,
        expires_at: None,
    }
}

/// Applies the policy governing backup `id` (which just ended), if any:
/// deletes what it does not keep and logs each delete in the backup's log.
/// Never fails the backup: problems are logged.
pub fn after_backup(state: &AppState, id: &str) {
    if let Err(e) = apply_for(state, id) {
        state.log(id, &format!("retention: {e}"));
        tracing::warn!(backup = %id, "retention: {e}");
    }
    state.logs.flush();
}

fn apply_for(state: &AppState, id: &str) -> ServiceResult<()> {
    let Some(b) = state.catalog.backup(id)? else {
        return Ok(());
    };
    let all = policies(state)?;
    let scheduled = with_policy(&all);
    let governor = match &b.schedule {
        Some(s) if scheduled.contains(s) => Governor::Schedule(s.clone()),
        _ => Governor::Label(b.label.clone()),
    };
    let Some((g, policy)) = all.into_iter().find(|(g, _)| *g == governor) else {
        return Ok(());
    };
    let known = Known::load(state)?;
    let group = decide_group(state, &known, g, policy, &scheduled)?;
    let who = retention_principal();
    let mut deleted = 0u64;
    for (row, verdict) in group.backups.iter().filter(|(_, v)| !v.keep()) {
        match backups::delete(state, &who, &row.id) {
            Ok(_) => {
                deleted += 1;
                state.log(id, &format!("retention: deleted backup {}", row.id));
            }
            // Taken by a restore or an export since the decision: kept.
            Err(ServiceError::Conflict(m)) => {
                state.log(id, &format!("retention: kept backup {}: {m}", verdict.id));
            }
            Err(e) => return Err(e),
        }
    }
    state.metrics.retention_deleted(deleted);
    Ok(())
}
