//! Schedules as a service: list, show, create, change, delete and run now,
//! each checked against the caller; and the principal a schedule's runs
//! act as — never more than its creator held.
//!
//! A caller sees a schedule only when it may see every component the
//! schedule backs up (a schedule of every component: only an unlimited
//! caller). Schedules declared in coffer.toml are read-only over the API.

use std::collections::BTreeSet;

use coffer_model::access::{BackupStatus, Scope};
use coffer_model::secret::{Secret, reveal_secrets};
use coffer_schedule::Timestamp;

use crate::access::Principal;
use crate::catalog::{DrillStatus, RunOutcome, ScheduleRow, ScheduleRunRow, TargetMode};
use crate::error::{ServiceError, ServiceResult};
use crate::jobs::backup::{self, ScheduledBackup, Started};
use crate::jobs::check::{self, CheckRequest};
use crate::jobs::drill;
use crate::jobs::prune::{self, PruneRequest};
use crate::schedules::spec::{Checked, ScheduleSpec, Task, check_name};
use crate::state::{AppState, Shared};

/// The sealing context of schedule specs.
const SEAL: &str = "schedule-spec";
/// Runs shown with one schedule.
const RUNS_SHOWN: u32 = 100;

/// A schedule as a caller may see it.
#[derive(Debug)]
pub struct ScheduleDetail {
    /// The stored row.
    pub row: ScheduleRow,
    /// Its spec (secrets redacted when serialized).
    pub spec: ScheduleSpec,
    /// When it is next due (Unix seconds); `None`: disabled or never.
    pub next_run: Option<i64>,
    /// Its newest run, with the state of the backup it started.
    pub last_run: Option<(ScheduleRunRow, Option<String>)>,
    /// Its newest READY backup: (id, finished).
    pub last_success: Option<(String, i64)>,
    /// Its newest runs, newest first (filled by [`show`] only).
    pub runs: Vec<ScheduleRunRow>,
}

/// Opens a stored spec.
pub fn open_spec(state: &AppState, row: &ScheduleRow) -> ServiceResult<ScheduleSpec> {
    let plain = state
        .key
        .open(SEAL, &row.spec_sealed)
        .map_err(|e| ServiceError::internal(format!("schedule {}: {e}", row.name)))?;
    serde_json::from_slice(&plain)
        .map_err(|e| ServiceError::internal(format!("schedule {}: {e}", row.name)))
}

pub(crate) fn seal_spec(state: &AppState, spec: &ScheduleSpec) -> ServiceResult<Vec<u8>> {
    let json = reveal_secrets(|| serde_json::to_vec(spec)).map_err(ServiceError::internal)?;
    Ok(state.key.seal(SEAL, &json))
}

/// The components a schedule's runs touch: those it names, else every
/// configured one.
fn components_of(state: &AppState, spec: &ScheduleSpec) -> Vec<(String, bool)> {
    match &spec.components {
        Some(names) => names
            .iter()
            .map(|n| {
                let sensitive = state.config.component(n).is_some_and(|c| c.sensitive);
                (n.clone(), sensitive)
            })
            .collect(),
        None => state
            .config
            .components
            .iter()
            .map(|c| (c.name.to_string(), c.sensitive))
            .collect(),
    }
}

/// Forbidden unless `p` may see the schedule: every component it touches,
/// and — for a schedule of every component — no component limit at all.
fn require_sees(state: &AppState, p: &Principal, spec: &ScheduleSpec) -> ServiceResult<()> {
    if spec.components.is_none()
        && let Some(mine) = &p.components
    {
        return Err(ServiceError::Forbidden(format!(
            "this token is limited to components {} and may not touch a schedule of every \
             component",
            mine.iter().cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    for (c, sensitive) in components_of(state, spec) {
        p.require_reach(&c, sensitive)?;
    }
    Ok(())
}

/// The principal a schedule's runs act as: backups (and the export and
/// retention its spec names, which its creator had to hold) of no more
/// components than its creator was limited to, sensitive ones only if its
/// creator held `sensitive`.
pub fn acting(row: &ScheduleRow, task: Task) -> Principal {
    let mut scopes: BTreeSet<Scope> = match task {
        Task::Backup => [Scope::BackupsWrite, Scope::Export, Scope::BackupsDelete].into(),
        Task::Drill => [Scope::Restore].into(),
        Task::Check | Task::Prune => [Scope::Maintenance].into(),
    };
    if row.owner_sensitive {
        scopes.insert(Scope::Sensitive);
    }
    Principal {
        id: "system".into(),
        name: format!("schedule {}", row.name),
        scopes,
        components: row
            .owner_components
            .as_ref()
            .map(|c| c.iter().cloned().collect()),
        expires_at: None,
    }
}

/// When a checked schedule is next due after `handled`, with its jitter.
pub fn next_due(name: &str, checked: &Checked, handled: Timestamp) -> Option<Timestamp> {
    if !checked.enabled {
        return None;
    }
    let next = checked.when.next_after(handled)?;
    Some(next + jitter(name, next, checked.jitter_secs))
}

/// The delay of one due time: the same for a given schedule and due time
/// (a restart does not move it), spread evenly over `0..=max` seconds
/// across schedules and due times (FNV-1a of both).
pub fn jitter(name: &str, due: Timestamp, max: u64) -> coffer_schedule::SignedDuration {
    if max == 0 {
        return coffer_schedule::SignedDuration::ZERO;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes().chain(due.as_second().to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let secs = h % (max + 1);
    coffer_schedule::SignedDuration::from_secs(i64::try_from(secs).unwrap_or(0))
}

fn detail(state: &AppState, row: ScheduleRow, spec: ScheduleSpec) -> ServiceResult<ScheduleDetail> {
    let handled = Timestamp::from_second(row.handled_at).unwrap_or(Timestamp::UNIX_EPOCH);
    let created = Timestamp::from_second(row.created_at).unwrap_or(Timestamp::UNIX_EPOCH);
    let next_run = spec
        .check(created)
        .ok()
        .and_then(|c| next_due(&row.name, &c, handled))
        .map(|t| t.as_second());
    let last_run = match state.catalog.schedule_runs(&row.name, 1)?.pop() {
        None => None,
        Some(run) => {
            // The run's job: a backup, or a drill, check or prune (by its
            // id's prefix) for the other tasks.
            let status = match &run.backup_id {
                Some(id) if id.starts_with("drill-") => {
                    state.catalog.drill(id)?.map(|d| d.status.to_string())
                }
                Some(id) if id.starts_with("check-") => state.catalog.check(id)?.map(|c| c.status),
                Some(id) if id.starts_with("prune-") => {
                    state.catalog.prune(id)?.map(|p| p.status.to_string())
                }
                Some(id) => state.catalog.backup(id)?.map(|b| b.status.to_string()),
                None => None,
            };
            Some((run, status))
        }
    };
    Ok(ScheduleDetail {
        last_success: state.catalog.schedule_last_success(&row.name)?,
        next_run,
        last_run,
        row,
        spec,
        runs: Vec::new(),
    })
}

/// Schedules `p` may see, by name.
pub fn list(state: &AppState, p: &Principal) -> ServiceResult<Vec<ScheduleDetail>> {
    p.require(Scope::SchedulesRead)?;
    let mut out = Vec::new();
    for row in state.catalog.schedules()? {
        let spec = open_spec(state, &row)?;
        if require_sees(state, p, &spec).is_ok() {
            out.push(detail(state, row, spec)?);
        }
    }
    Ok(out)
}

/// The schedule and spec called `name`, if `p` may see it.
fn find(state: &AppState, p: &Principal, name: &str) -> ServiceResult<(ScheduleRow, ScheduleSpec)> {
    let row = state
        .catalog
        .schedule(name)?
        .ok_or_else(|| ServiceError::NotFound(format!("no schedule named {name:?}")))?;
    let spec = open_spec(state, &row)?;
    require_sees(state, p, &spec)?;
    Ok((row, spec))
}

/// One schedule with its newest runs.
pub fn show(state: &AppState, p: &Principal, name: &str) -> ServiceResult<ScheduleDetail> {
    p.require(Scope::SchedulesRead)?;
    let (row, spec) = find(state, p, name)?;
    let runs = state.catalog.schedule_runs(&row.name, RUNS_SHOWN)?;
    let mut d = detail(state, row, spec)?;
    d.runs = runs;
    Ok(d)
}

/// Checks a spec against the configuration and `p`: the components it
/// backs up must be within `p`'s (a schedule is a backup arranged in
/// advance: `schedules:write` on them is enough), its export needs
/// `export` and its retention `backups:delete`. Returns the checked spec.
fn authorize(state: &AppState, p: &Principal, spec: &ScheduleSpec) -> ServiceResult<Checked> {
    p.require(Scope::SchedulesWrite)?;
    // Who may do what first: a caller learns nothing of the configuration
    // from a refusal it could not get past anyway.
    match spec.task {
        // Its runs restore (into scratch places) whatever the label's
        // backups hold, checked against the creator's limits at each run.
        Some(Task::Drill) => p.require(Scope::Restore)?,
        // A whole repository: unlimited callers with `maintenance` only.
        Some(Task::Check | Task::Prune) => {
            p.require(Scope::Maintenance)?;
            if let Some(mine) = &p.components {
                return Err(ServiceError::Forbidden(format!(
                    "this token is limited to components {}: checks and prunes work on whole \
                     repositories",
                    mine.iter().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        _ => {}
    }
    match &spec.components {
        None if matches!(spec.task, Some(Task::Drill | Task::Check | Task::Prune)) => {}
        None => {
            if let Some(mine) = &p.components {
                return Err(ServiceError::Forbidden(format!(
                    "this token is limited to components {}: a schedule it makes must name some \
                     of them (give \"components\")",
                    mine.iter().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        Some(names) => {
            for n in names {
                let sensitive = state.config.component(n).is_some_and(|c| c.sensitive);
                p.require_component(Scope::SchedulesWrite, n, sensitive)?;
            }
        }
    }
    if spec.export.is_some() {
        p.require(Scope::Export)?;
    }
    if spec.retention.is_some() {
        p.require(Scope::BackupsDelete)?;
    }
    if let Some(e) = &spec.export
        && matches!(e.password, Some(Secret::Env(_) | Secret::File(_)))
    {
        return Err(ServiceError::Invalid(
            "export.password: over the API only the password itself (environment variables and \
             files of the server are for coffer.toml)"
                .into(),
        ));
    }
    let checked = spec
        .check(state.clock.now())
        .map_err(|e| ServiceError::Invalid(e.to_string()))?;
    if let Some(n) = spec
        .components
        .iter()
        .flatten()
        .find(|n| state.config.component(n).is_none())
    {
        return Err(ServiceError::Invalid(format!(
            "components: unknown component {n:?}: the ones you may name are {}",
            state
                .config
                .components
                .iter()
                .filter(|c| p.sees(c.name.as_str(), c.sensitive))
                .map(|c| c.name.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let copies = spec.copy_to.iter().flatten().map(|t| ("copy_to", t));
    for (field, t) in spec.target.iter().map(|t| ("target", t)).chain(copies) {
        let row = state
            .catalog
            .target(t)?
            .ok_or_else(|| ServiceError::Invalid(format!("{field}: no target named {t:?}")))?;
        if row.mode != TargetMode::Own {
            return Err(ServiceError::Invalid(format!(
                "{field}: {t} is attached read-only (mode attach): backups cannot be written to it"
            )));
        }
    }
    Ok(checked)
}

/// Creates a schedule made by `p`; its runs act with no more than `p` holds.
pub fn create(
    state: &AppState,
    p: &Principal,
    spec: ScheduleSpec,
) -> ServiceResult<ScheduleDetail> {
    authorize(state, p, &spec)?;
    let now = state.clock.now().as_second();
    let row = ScheduleRow {
        name: spec.name.clone(),
        spec_sealed: seal_spec(state, &spec)?,
        declared: false,
        owner_components: p.components.as_ref().map(|c| c.iter().cloned().collect()),
        owner_sensitive: p.has(Scope::Sensitive),
        created_at: now,
        handled_at: now,
    };
    if !state.catalog.insert_schedule(&row)? {
        return Err(ServiceError::Conflict(format!(
            "a schedule named {:?} exists: change it with PUT /api/v1/schedules/{}",
            spec.name, spec.name
        )));
    }
    tracing::info!(schedule = %row.name, by = %p.id, "schedule created");
    state.scheduler.wake();
    detail(state, row, spec)
}

fn writable(row: &ScheduleRow) -> ServiceResult<()> {
    if row.declared {
        return Err(ServiceError::Conflict(format!(
            "schedule {} is declared in the configuration file: change it there",
            row.name
        )));
    }
    Ok(())
}

/// Replaces a schedule's spec (its history and position stay). `p` must
/// be able to see the schedule as it is and to make the new one.
pub fn update(
    state: &AppState,
    p: &Principal,
    name: &str,
    spec: ScheduleSpec,
) -> ServiceResult<ScheduleDetail> {
    p.require(Scope::SchedulesWrite)?;
    let (row, _) = find(state, p, name)?;
    writable(&row)?;
    if spec.name != name {
        return Err(ServiceError::Invalid(format!(
            "name: {:?} differs from the schedule's name {name:?} (a schedule cannot be renamed)",
            spec.name
        )));
    }
    authorize(state, p, &spec)?;
    let was_enabled = open_spec(state, &row)?.enabled.unwrap_or(true);
    let row = ScheduleRow {
        spec_sealed: seal_spec(state, &spec)?,
        owner_components: p.components.as_ref().map(|c| c.iter().cloned().collect()),
        owner_sensitive: p.has(Scope::Sensitive),
        ..row
    };
    state.catalog.update_schedule(&row)?;
    resume_if_enabled(state, &row.name, was_enabled, &spec)?;
    tracing::info!(schedule = %name, by = %p.id, "schedule changed");
    state.scheduler.wake();
    detail(state, row, spec)
}

/// Deletes a schedule and its history (its backups stay).
pub fn delete(state: &AppState, p: &Principal, name: &str) -> ServiceResult<()> {
    p.require(Scope::SchedulesWrite)?;
    let (row, _) = find(state, p, name)?;
    writable(&row)?;
    state.catalog.delete_schedule(name)?;
    state.metrics.schedule_next_run(name, None);
    tracing::info!(schedule = %name, by = %p.id, "schedule deleted");
    Ok(())
}

/// Starts a run now, by hand: `p` needs `backups:write` on every component
/// the schedule backs up; refused while a run of it is going.
pub fn run_now(state: &Shared, p: &Principal, name: &str) -> ServiceResult<Started> {
    p.require(Scope::BackupsWrite)?;
    let (row, spec) = find(state, p, name)?;
    for (c, sensitive) in components_of(state, &spec) {
        p.require_component(Scope::BackupsWrite, &c, sensitive)?;
    }
    if let Some(b) = state.catalog.schedule_running(name)? {
        return Err(ServiceError::Conflict(format!(
            "schedule {name}'s run {b} is still going: one run at a time"
        )));
    }
    let now = state.clock.now();
    let started = start_run(state, &row, &spec, now)?;
    let run = ScheduleRunRow {
        schedule: name.to_owned(),
        due_at: now.as_second(),
        last_due_at: None,
        missed_count: None,
        decided_at: now.as_second(),
        outcome: RunOutcome::Started,
        backup_id: Some(started.id.clone()),
        reason: Some(format!("started by hand by {}", p.name)),
        by_hand: true,
    };
    state.catalog.record_schedule_runs(name, 0, &[run])?;
    state
        .metrics
        .schedule_run(name, RunOutcome::Started.as_str());
    Ok(started)
}

/// Starts the backup of one due time of a schedule, acting as its own
/// principal; retention follows it, as it follows every backup (see
/// [`crate::retention`]).
pub fn start_run(
    state: &Shared,
    row: &ScheduleRow,
    spec: &ScheduleSpec,
    due: Timestamp,
) -> ServiceResult<Started> {
    let checked = spec
        .check(Timestamp::from_second(row.created_at).unwrap_or(Timestamp::UNIX_EPOCH))
        .map_err(|e| ServiceError::Invalid(e.to_string()))?;
    let target = || -> ServiceResult<String> {
        match &spec.target {
            Some(t) => Ok(t.clone()),
            None => state.catalog.default_target()?.ok_or_else(|| {
                ServiceError::Invalid("target: there is no default target: name one".into())
            }),
        }
    };
    if checked.task == Task::Check {
        let days = u64::from(spec.read_all_every_days.unwrap_or(30));
        let read_data = rotation(state, row, &checked, due, days)?;
        let id = check::start(
            state,
            &acting(row, Task::Check),
            &target()?,
            CheckRequest {
                read_data: Some(read_data),
            },
            Some(row.name.clone()),
        )?;
        return Ok(Started {
            id,
            status: "CHECKING",
            export_id: None,
        });
    }
    if checked.task == Task::Prune {
        let id = prune::start(
            state,
            &acting(row, Task::Prune),
            &target()?,
            PruneRequest {
                grace_secs: spec.grace_secs,
            },
        )?;
        return Ok(Started {
            id,
            status: "PRUNING",
            export_id: None,
        });
    }
    if checked.task == Task::Drill {
        let label = checked
            .label
            .as_ref()
            .map(|l| l.as_str().to_owned())
            .unwrap_or_default();
        let label = label.as_str();
        let newest = state
            .catalog
            .backups(Some(label), Some(BackupStatus::Ready))?
            .into_iter()
            // Newest by the time it was taken for, then recording order.
            .max_by_key(|b| (b.taken_at(), b.seq))
            .ok_or_else(|| {
                ServiceError::Invalid(format!("no READY backup with label {label:?} to drill"))
            })?;
        let id = drill::start(
            state,
            &acting(row, Task::Drill),
            &newest.id,
            Some(row.name.clone()),
        )?;
        return Ok(Started {
            id,
            status: DrillStatus::Drilling.as_str(),
            export_id: None,
        });
    }
    let export = match &spec.export {
        None => None,
        Some(e) => {
            let password = e
                .password
                .as_ref()
                .map(Secret::resolve)
                .transpose()
                .map_err(|err| ServiceError::Invalid(format!("export.password: {err}")))?;
            let recipients = e
                .age_recipient
                .clone()
                .map(crate::exports::Recipients::Many);
            Some((password, recipients, e.keep))
        }
    };
    backup::start_scheduled(
        state,
        &acting(row, Task::Backup),
        ScheduledBackup {
            schedule: row.name.clone(),
            due_at: due.as_second(),
            label: checked
                .label
                .ok_or_else(|| ServiceError::internal("a backup schedule without a label"))?,
            components: spec.components.clone(),
            target: spec.target.clone(),
            export,
        },
    )
}

/// The part of the packs a check schedule's run reads: with `m` runs in
/// `days` (from the gap between this due time and the next), run `k` reads
/// part `k % m + 1` of `m`, so every pack is read at least once per period.
fn rotation(
    state: &AppState,
    row: &ScheduleRow,
    checked: &Checked,
    due: Timestamp,
    days: u64,
) -> ServiceResult<String> {
    let gap = checked
        .when
        .next_after(due)
        .map_or(86_400, |n| n.duration_since(due).as_secs().max(1))
        .unsigned_abs();
    let parts = (days * 86_400).div_ceil(gap).clamp(1, 10_000);
    if parts == 1 {
        return Ok("all".into());
    }
    let k = state.catalog.schedule_started_count(&row.name)? % parts + 1;
    Ok(format!("{k}/{parts}"))
}

/// Makes the catalog's declared schedules what coffer.toml says: added,
/// changed, and removed when no longer declared. A schedule made over the
/// API with a declared one's name is replaced by it (with a warning).
pub fn apply_declared(state: &AppState) -> ServiceResult<()> {
    let now = state.clock.now().as_second();
    let declared: BTreeSet<&str> = state
        .config
        .schedules
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    for row in state.catalog.schedules()? {
        if row.declared && !declared.contains(row.name.as_str()) {
            state.catalog.delete_schedule(&row.name)?;
            tracing::info!(schedule = %row.name, "no longer declared in the configuration: removed");
        }
    }
    for spec in &state.config.schedules {
        check_name(&spec.name).map_err(|e| ServiceError::Invalid(e.to_string()))?;
        if let Some(c) = spec
            .components
            .iter()
            .flatten()
            .find(|c| state.config.component(c).is_none())
        {
            return Err(ServiceError::Invalid(format!(
                "schedules ({}): components: unknown component {c:?}",
                spec.name
            )));
        }
        let row = ScheduleRow {
            name: spec.name.clone(),
            spec_sealed: seal_spec(state, spec)?,
            declared: true,
            owner_components: None,
            owner_sensitive: true,
            created_at: now,
            handled_at: now,
        };
        match state.catalog.schedule(&spec.name)? {
            None => {
                state.catalog.insert_schedule(&row)?;
            }
            Some(old) => {
                let was_enabled = open_spec(state, &old)?.enabled.unwrap_or(true);
                if !old.declared {
                    tracing::warn!(
                        schedule = %spec.name,
                        "a schedule made over the API has this name: the configuration's replaces it"
                    );
                }
                state.catalog.update_schedule(&row)?;
                resume_if_enabled(state, &row.name, was_enabled, spec)?;
            }
        }
    }
    Ok(())
}

/// A paused schedule enabled again starts from now: the due times it slept
/// through are neither run nor reported missed.
fn resume_if_enabled(
    state: &AppState,
    name: &str,
    was_enabled: bool,
    spec: &ScheduleSpec,
) -> ServiceResult<()> {
    if !was_enabled && spec.enabled.unwrap_or(true) {
        state
            .catalog
            .record_schedule_runs(name, state.clock.now().as_second(), &[])?;
    }
    Ok(())
}

/// The checked form of a stored schedule, or why it cannot run.
pub fn checked(row: &ScheduleRow, spec: &ScheduleSpec) -> Result<Checked, String> {
    spec.check(Timestamp::from_second(row.created_at).unwrap_or(Timestamp::UNIX_EPOCH))
        .map_err(|e| e.to_string())
}
