//! The scheduler: one thread that looks at every schedule when the next
//! one is due (or when a schedule changes or a scheduled backup ends),
//! decides what each due time becomes — started, skipped, missed, failed —
//! and records it with the schedule's new position in one transaction.
//!
//! It reads the server's [`crate::clock::Clock`]: the system clock, or a
//! test's fake one, which it reads again every few milliseconds. A
//! schedule's run is an ordinary backup (labels, states, logs) linked to
//! it; never two runs of one schedule at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use coffer_schedule::{Outcome, SignedDuration, State, Timestamp, decide};

use crate::catalog::{RunOutcome, ScheduleRow, ScheduleRunRow};
use crate::error::ServiceError;
use crate::jobs::prune;
use crate::schedules::service::{checked, jitter, next_due, open_spec, start_run};
use crate::schedules::spec::{Checked, ScheduleSpec, Task};
use crate::state::Shared;

/// The longest the scheduler sleeps without looking (a changed clock, a
/// schedule added behind its back).
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// Starts the scheduler's thread.
pub fn spawn(state: Shared) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("coffer-scheduler".into())
        .spawn(move || {
            let since = state.clock.now();
            let mut watched: Option<Timestamp> = None;
            let mut probed: Option<Timestamp> = None;
            let probing = Arc::new(AtomicBool::new(false));
            let mut parsed = Parsed::default();
            while !state.scheduler.stopped() {
                let now = state.clock.now();
                let next = tick(&state, now, &mut parsed);
                // Conditions on the clock, at most once a (clock) minute.
                if watched.is_none_or(|w| now.duration_since(w) >= SignedDuration::from_mins(1)) {
                    crate::notify::watch::stale(&state, now, since);
                    watched = Some(now);
                }
                // Targets and free space, every `alerts.probe_every_secs`, on
                // a thread of their own (a target that is down answers slowly)
                // and never two probes at once.
                let every = SignedDuration::try_from(state.config.probe_every)
                    .unwrap_or(SignedDuration::from_mins(5));
                if probed.is_none_or(|p| now.duration_since(p) >= every)
                    && !probing.swap(true, Ordering::SeqCst)
                {
                    probed = Some(now);
                    let (st, flag) = (Arc::clone(&state), Arc::clone(&probing));
                    let started = std::thread::Builder::new()
                        .name("coffer-probe".into())
                        .spawn(move || {
                            crate::notify::watch::probe(&st);
                            flag.store(false, Ordering::SeqCst);
                        });
                    if let Err(e) = started {
                        tracing::error!("starting the target probe: {e}");
                        probing.store(false, Ordering::SeqCst);
                    }
                }
                state.scheduler.decided_until(now);
                let until = next.map_or(now + MAX_SLEEP, |n| n.min(now + MAX_SLEEP));
                state.scheduler.sleep(state.clock.wait_for(now, until));
            }
        })
        .map(|_| ())
}

/// Schedules as parsed at the last look: one is unsealed and parsed again
/// only when its stored spec changes, so an idle scheduler with a thousand
/// schedules costs a catalog read and a comparison per schedule.
#[derive(Default)]
pub struct Parsed {
    by_name: HashMap<String, ParsedSchedule>,
}

/// One schedule as parsed: its sealed spec (to notice a change), the spec,
/// and the checked form or why it cannot run.
type ParsedSchedule = (Vec<u8>, ScheduleSpec, Result<Checked, String>);

/// Decides every schedule's due times up to `now`; returns when the next
/// one is due.
pub fn tick(state: &Shared, now: Timestamp, parsed: &mut Parsed) -> Option<Timestamp> {
    let rows = match state.catalog.schedules() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("scheduler: {e}");
            return None;
        }
    };
    parsed
        .by_name
        .retain(|name, _| rows.iter().any(|r| &r.name == name));
    let mut earliest: Option<Timestamp> = None;
    for row in rows {
        let fresh = parsed
            .by_name
            .get(&row.name)
            .is_some_and(|(sealed, _, _)| *sealed == row.spec_sealed);
        if !fresh {
            let spec = match open_spec(state, &row) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(schedule = %row.name, "scheduler: {e}");
                    continue;
                }
            };
            let c = checked(&row, &spec);
            if let Err(e) = &c {
                tracing::error!(schedule = %row.name, "cannot run: {e}");
            }
            parsed
                .by_name
                .insert(row.name.clone(), (row.spec_sealed.clone(), spec, c));
        }
        let Some((_, spec, c)) = parsed.by_name.get(&row.name) else {
            continue;
        };
        if let Some(next) = tick_one(state, &row, spec, c.as_ref(), now) {
            earliest = Some(earliest.map_or(next, |e| e.min(next)));
        }
    }
    earliest
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The prune running on the target a backup schedule writes to, if any.
fn pruning(state: &Shared, spec: &ScheduleSpec) -> Option<String> {
    let target = match &spec.target {
        Some(t) => t.clone(),
        None => state.catalog.default_target().ok().flatten()?,
    };
    state.jobs.holder(&prune::target_key(&target))
}

/// One schedule's due times up to `now`; returns its next one.
fn tick_one(
    state: &Shared,
    row: &ScheduleRow,
    spec: &ScheduleSpec,
    checked: Result<&Checked, &String>,
    now: Timestamp,
) -> Option<Timestamp> {
    let name = row.name.as_str();
    let Ok(checked) = checked else {
        state.metrics.schedule_next_run(name, None);
        return None;
    };
    let handled = at(row.handled_at);
    if !checked.enabled {
        // Paused: due times pass unrecorded (enabling it again moves it to
        // that moment, see `service::update`).
        state.metrics.schedule_next_run(name, None);
        return None;
    }
    // Nothing due yet: no more work than this.
    if let Some(next) = next_due(name, checked, handled)
        && next > now
    {
        state
            .metrics
            .schedule_next_run(name, Some(next.as_second()));
        return Some(next);
    }
    // A backup due while its target is being pruned (the prune holds the
    // repository's exclusive lock) waits for the prune, then runs late —
    // within the catch-up window — instead of failing to lock.
    if checked.task == Task::Backup
        && let Some(prune) = pruning(state, spec)
        && checked.when.next_after(handled).is_some_and(|n| n <= now)
    {
        tracing::info!(schedule = %name, "due, waiting for {prune} on its target");
        return Some(now + SignedDuration::from_secs(5));
    }
    let running = match state.catalog.schedule_running(name) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(schedule = %name, "{e}");
            return None;
        }
    };
    // The next due time is decided once its own jitter has passed.
    let shift = checked
        .when
        .next_after(handled)
        .map_or(SignedDuration::ZERO, |n| {
            jitter(name, n, checked.jitter_secs)
        });
    let (outcomes, new_handled) = decide(
        &checked.when,
        State {
            handled,
            running: running.is_some(),
        },
        now - shift,
        checked.catch_up,
    );
    let mut runs = Vec::new();
    for o in outcomes {
        let run = |due: Timestamp, outcome, backup_id, reason| ScheduleRunRow {
            schedule: name.to_owned(),
            due_at: due.as_second(),
            last_due_at: None,
            missed_count: None,
            decided_at: now.as_second(),
            outcome,
            backup_id,
            reason: Some(reason),
            by_hand: false,
        };
        let r = match o {
            Outcome::Missed { first, last, count } => ScheduleRunRow {
                last_due_at: Some(last.as_second()),
                missed_count: Some(count),
                ..run(
                    first,
                    RunOutcome::Missed,
                    None,
                    format!(
                        "{count} due time(s) from {first} to {last} passed while the server was \
                         not running, more than catch_up_window_secs ({} s) ago: not run",
                        checked.catch_up.as_secs()
                    ),
                )
            },
            Outcome::Skipped { due } => run(
                due,
                RunOutcome::Skipped,
                None,
                format!(
                    "the previous run ({}) was still going",
                    running.as_deref().unwrap_or("?")
                ),
            ),
            Outcome::Run { due } => match start_run(state, row, spec, due) {
                Ok(s) => {
                    let late = now.duration_since(due);
                    let why = if late > SignedDuration::from_mins(1) {
                        format!("started {} s after its due time", late.as_secs())
                    } else {
                        "started on time".to_owned()
                    };
                    run(due, RunOutcome::Started, Some(s.id), why)
                }
                Err(ServiceError::Conflict(m)) => run(
                    due,
                    RunOutcome::Skipped,
                    None,
                    format!("{m}; retried at the next due time"),
                ),
                Err(e) => run(due, RunOutcome::Failed, None, e.message()),
            },
        };
        match r.outcome {
            RunOutcome::Started => {
                tracing::info!(schedule = %name, backup = ?r.backup_id, "scheduled backup started")
            }
            _ => {
                tracing::warn!(schedule = %name, outcome = %r.outcome, "{}", r.reason.as_deref().unwrap_or(""))
            }
        }
        runs.push(r);
    }
    if (new_handled != handled || !runs.is_empty())
        && let Err(e) = state
            .catalog
            .record_schedule_runs(name, new_handled.as_second(), &runs)
    {
        tracing::error!(schedule = %name, "recording runs: {e}");
    }
    for r in &runs {
        state.metrics.schedule_run(name, r.outcome.as_str());
    }
    crate::notify::watch::runs_recorded(state, &runs);
    let next = next_due(name, checked, new_handled);
    state
        .metrics
        .schedule_next_run(name, next.map(|t| t.as_second()));
    next
}
