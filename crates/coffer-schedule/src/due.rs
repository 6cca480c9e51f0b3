//! What a scheduler does at a given moment: which due times (slots) since
//! the last one it handled run now, which are skipped because the previous
//! run is still going, and which were missed while the server was down.
//! Pure: the clock is an argument, so tests walk months in milliseconds.

use jiff_cron::jiff::{SignedDuration, Timestamp};

use crate::when::When;

/// One decision about one due time (or a range of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Start a backup for this due time (possibly late, within the
    /// catch-up window, after downtime).
    Run {
        /// The due time it is for.
        due: Timestamp,
    },
    /// Not started: the schedule's previous run is still going.
    Skipped {
        /// The due time skipped.
        due: Timestamp,
    },
    /// Not started: the due times from `first` to `last` (`count` of them)
    /// passed while nothing ran them (the server was down), too long ago to
    /// catch up.
    Missed {
        /// The oldest missed due time.
        first: Timestamp,
        /// The newest.
        last: Timestamp,
        /// How many.
        count: u64,
    },
}

/// What a scheduler knows about one schedule.
#[derive(Debug, Clone, Copy)]
pub struct State {
    /// The newest due time already decided (run, skipped or missed); the
    /// schedule's creation time before its first.
    pub handled: Timestamp,
    /// A run of this schedule is still going.
    pub running: bool,
}

/// Decides every due time in (`state.handled`, `now`]: the newest runs if
/// it is at most `catch_up` old (skipped if a run is going), every older
/// one is missed — except that due times passing while the scheduler was
/// awake are never "missed": a caller that ticks often sees each slot as it
/// comes. Returns the outcomes oldest first and the new `handled`.
pub fn decide(
    when: &When,
    state: State,
    now: Timestamp,
    catch_up: SignedDuration,
) -> (Vec<Outcome>, Timestamp) {
    // Only the oldest, the newest and the one before it matter, and how
    // many there were: a long downtime of a frequent schedule costs time,
    // not memory.
    let (mut first, mut previous, mut newest, mut count) = (None, None, None, 0u64);
    let mut at = state.handled;
    while let Some(next) = when.next_after(at) {
        if next > now {
            break;
        }
        first.get_or_insert(next);
        previous = newest;
        newest = Some(next);
        count += 1;
        at = next;
    }
    let (Some(first), Some(newest)) = (first, newest) else {
        return (Vec::new(), state.handled);
    };
    let mut out = Vec::new();
    let runs_now = now.duration_since(newest) <= catch_up;
    let missed = if runs_now { count - 1 } else { count };
    let last_missed = if runs_now { previous } else { Some(newest) };
    if let Some(last) = last_missed.filter(|_| missed > 0) {
        out.push(Outcome::Missed {
            first,
            last,
            count: missed,
        });
    }
    if runs_now {
        out.push(if state.running {
            Outcome::Skipped { due: newest }
        } else {
            Outcome::Run { due: newest }
        });
    }
    (out, newest)
}
