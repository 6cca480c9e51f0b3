//! Which backups a retention policy keeps, and why — decided on a clock
//! the caller passes in, so a preview and the forget after a backup give
//! the same answer, and tests walk a quarter of backups in milliseconds.
//!
//! The rules, per component set (backups of different component sets never
//! count against each other):
//!
//! * a backup is kept when **any** rule keeps it (restic's union): the
//!   `keep_last` newest; the newest in each of the `keep_hourly`, `_daily`,
//!   `_weekly` (ISO weeks), `_monthly` and `_yearly` newest periods (UTC)
//!   that have one; those younger than `keep_within_secs` or `keep_days`;
//! * only `READY` backups fill those counts; a failed backup is kept while
//!   it is younger than `keep_within_secs`/`keep_days`, or newer than the
//!   set's newest `READY` one (it says why the latest run failed);
//! * whatever the policy says, these are never deleted: a pinned backup;
//!   the newest `READY` backup of each set; the newest verified one of each
//!   set; one being restored, exported or copied (`busy`); one whose copy
//!   to a second target failed (the only copy); one still running.

use std::collections::{BTreeMap, HashSet};

use jiff_cron::jiff::civil::DateTime;
use jiff_cron::jiff::tz::TimeZone;
use jiff_cron::jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// A retention policy as written in `coffer.toml` and the API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Keep backups younger than this many days (Palette's retention period).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_days: Option<u32>,
    /// Keep the newest this many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    /// Keep the newest of each of this many hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_hourly: Option<u32>,
    /// Keep the newest of each of this many days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<u32>,
    /// Keep the newest of each of this many ISO weeks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<u32>,
    /// Keep the newest of each of this many months.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_monthly: Option<u32>,
    /// Keep the newest of each of this many years.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_yearly: Option<u32>,
    /// Keep backups younger than this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_within_secs: Option<u64>,
}

/// A policy that cannot be: the field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct PolicyError {
    /// The field at fault.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

impl Policy {
    /// Refuses a policy that keeps nothing (every rule absent or zero):
    /// it would delete every backup but the ones the invariants hold.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let counts = [
            self.keep_last,
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
            self.keep_days,
        ];
        let keeps = counts.iter().any(|c| c.is_some_and(|n| n > 0))
            || self.keep_within_secs.is_some_and(|s| s > 0);
        if keeps {
            Ok(())
        } else {
            Err(PolicyError {
                field: "retention",
                message: "keeps nothing: give at least one of keep_days, keep_last, keep_hourly, \
                          keep_daily, keep_weekly, keep_monthly, keep_yearly or keep_within_secs \
                          above 0"
                    .into(),
            })
        }
    }

    fn within(&self) -> Option<SignedDuration> {
        let days = self
            .keep_days
            .map(|d| SignedDuration::from_hours(i64::from(d) * 24));
        let secs = self
            .keep_within_secs
            .map(|s| SignedDuration::from_secs(i64::try_from(s).unwrap_or(i64::MAX / 2)));
        days.into_iter().chain(secs).max()
    }
}

/// Where a backup is, as far as retention cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Every component is stored.
    Ready,
    /// It failed.
    Failed,
    /// Still being taken.
    Running,
}

/// A backup retention decides about.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Its id.
    pub id: String,
    /// Its component set (the names, sorted and joined): GFS counts per set.
    pub set: String,
    /// When it was taken (its due time, for a scheduled backup).
    pub at: Timestamp,
    /// The order it was recorded in: breaks ties of `at` (times are whole
    /// seconds), so the newest is the one recorded last.
    pub seq: i64,
    /// Its state.
    pub health: Health,
    /// Pinned by an operator.
    pub pinned: bool,
    /// A verification or drill passed on it.
    pub verified: bool,
    /// Why something is using it now (a restore, an export), if anything is.
    pub busy: Option<String>,
    /// Its copy to a second target failed: it is the only copy.
    pub sole_copy: bool,
}

/// Why a backup is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Pinned.
    Pinned,
    /// Still running.
    Running,
    /// In use.
    Busy(String),
    /// The only copy (its copy to a second target failed).
    SoleCopy,
    /// The newest READY backup of its component set.
    NewestReady,
    /// The newest verified backup of its component set.
    NewestVerified,
    /// A failure newer than the set's newest READY backup.
    LatestFailure,
    /// One of the `keep_last` newest.
    Last,
    /// The newest of its hour.
    Hourly,
    /// The newest of its day.
    Daily,
    /// The newest of its week.
    Weekly,
    /// The newest of its month.
    Monthly,
    /// The newest of its year.
    Yearly,
    /// Younger than `keep_days` / `keep_within_secs`.
    Within,
}

impl Reason {
    /// Whether this reason is an invariant (kept whatever the policy says)
    /// rather than a rule of the policy.
    pub fn is_invariant(&self) -> bool {
        matches!(
            self,
            Reason::Pinned
                | Reason::Running
                | Reason::Busy(_)
                | Reason::SoleCopy
                | Reason::NewestReady
                | Reason::NewestVerified
        )
    }
}

/// The decision about one backup: kept (with every reason) or deleted
/// (no reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The backup.
    pub id: String,
    /// Why it is kept; empty: it is deleted.
    pub reasons: Vec<Reason>,
}

impl Verdict {
    /// Whether it is kept.
    pub fn keep(&self) -> bool {
        !self.reasons.is_empty()
    }
}

/// The calendar periods, newest first, that GFS rules count.
fn period(at: Timestamp, rule: Reason) -> (i16, i16, i16) {
    let dt: DateTime = at.to_zoned(TimeZone::UTC).datetime();
    let (y, m, d, h) = (
        dt.year(),
        i16::from(dt.month()),
        i16::from(dt.day()),
        i16::from(dt.hour()),
    );
    match rule {
        Reason::Hourly => (y, (m << 5) | d, h),
        Reason::Daily => (y, m, d),
        Reason::Weekly => {
            let w = dt.date().iso_week_date();
            (w.year(), i16::from(w.week()), 0)
        }
        Reason::Monthly => (y, m, 0),
        _ => (y, 0, 0),
    }
}

/// Decides about every candidate (in the order given). Backups of each
/// component set are judged together, newest first.
pub fn decide(policy: &Policy, candidates: &[Candidate], now: Timestamp) -> Vec<Verdict> {
    let mut reasons: BTreeMap<&str, Vec<Reason>> = BTreeMap::new();
    let mut sets: BTreeMap<&str, Vec<&Candidate>> = BTreeMap::new();
    for c in candidates {
        sets.entry(c.set.as_str()).or_default().push(c);
        let r = reasons.entry(c.id.as_str()).or_default();
        if c.pinned {
            r.push(Reason::Pinned);
        }
        if c.health == Health::Running {
            r.push(Reason::Running);
        }
        if let Some(why) = &c.busy {
            r.push(Reason::Busy(why.clone()));
        }
        if c.sole_copy {
            r.push(Reason::SoleCopy);
        }
    }
    let within = policy.within();
    let young = |c: &Candidate| within.is_some_and(|w| now.duration_since(c.at) < w);
    for mut set in sets.into_values() {
        // Newest first; ties broken by the recording order, then the id, so
        // the answer never depends on the order given.
        set.sort_by(|a, b| (b.at, b.seq, &b.id).cmp(&(a.at, a.seq, &a.id)));
        let ready: Vec<&Candidate> = set
            .iter()
            .copied()
            .filter(|c| c.health == Health::Ready)
            .collect();
        let mut add = |id: &str, why: Reason| {
            if let Some(r) = reasons.get_mut(id)
                && !r.contains(&why)
            {
                r.push(why);
            }
        };
        if let Some(newest) = ready.first() {
            add(&newest.id, Reason::NewestReady);
        }
        if let Some(v) = ready.iter().find(|c| c.verified) {
            add(&v.id, Reason::NewestVerified);
        }
        let newest_ready_at = ready.first().map(|c| c.at);
        for c in set.iter().filter(|c| c.health == Health::Failed) {
            if newest_ready_at.is_none_or(|t| c.at > t) {
                add(&c.id, Reason::LatestFailure);
            }
            if young(c) {
                add(&c.id, Reason::Within);
            }
        }
        for c in ready.iter().take(policy.keep_last.unwrap_or(0) as usize) {
            add(&c.id, Reason::Last);
        }
        for (rule, count) in [
            (Reason::Hourly, policy.keep_hourly),
            (Reason::Daily, policy.keep_daily),
            (Reason::Weekly, policy.keep_weekly),
            (Reason::Monthly, policy.keep_monthly),
            (Reason::Yearly, policy.keep_yearly),
        ] {
            let mut left = count.unwrap_or(0);
            let mut seen = HashSet::new();
            for c in &ready {
                if left == 0 {
                    break;
                }
                if seen.insert(period(c.at, rule.clone())) {
                    add(&c.id, rule.clone());
                    left -= 1;
                }
            }
        }
        for c in ready.iter().filter(|c| young(c)) {
            add(&c.id, Reason::Within);
        }
    }
    candidates
        .iter()
        .map(|c| Verdict {
            id: c.id.clone(),
            reasons: reasons.remove(c.id.as_str()).unwrap_or_default(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn ready(id: &str, when: &str) -> Candidate {
        Candidate {
            id: id.into(),
            set: "db,files".into(),
            at: at(when),
            seq: 0,
            health: Health::Ready,
            pinned: false,
            verified: false,
            busy: None,
            sole_copy: false,
        }
    }

    fn kept(v: &[Verdict]) -> Vec<&str> {
        v.iter()
            .filter(|v| v.keep())
            .map(|v| v.id.as_str())
            .collect()
    }

    #[test]
    fn a_policy_that_keeps_nothing_is_refused() {
        for p in [
            Policy::default(),
            Policy {
                keep_last: Some(0),
                keep_days: Some(0),
                ..Policy::default()
            },
        ] {
            let e = p.validate().unwrap_err();
            assert_eq!(e.field, "retention");
        }
        Policy {
            keep_daily: Some(7),
            ..Policy::default()
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn daily_weekly_and_monthly_keep_the_newest_of_each_period() {
        // Two backups a day (03:00 and 15:00 UTC) for 40 days.
        let start = at("2026-01-01T03:00:00Z");
        let backups: Vec<Candidate> = (0..80)
            .map(|i| {
                let t = start + SignedDuration::from_hours(12 * i);
                ready(&format!("b{i:02}"), &t.to_string())
            })
            .collect();
        let now = backups[79].at;
        let policy = Policy {
            keep_daily: Some(3),
            keep_weekly: Some(2),
            keep_monthly: Some(2),
            ..Policy::default()
        };
        let v = decide(&policy, &backups, now);
        // Daily: the 15:00 backups of the last three days (b79, b77, b75);
        // weekly: newest of this ISO week (b79) and of the one before
        // (Sunday 2026-02-08 15:00 = b77); monthly: b79 and January's last
        // (2026-01-31 15:00 = b61).
        assert_eq!(kept(&v), ["b61", "b75", "b77", "b79"]);
        let b79 = v.iter().find(|x| x.id == "b79").unwrap();
        assert!(b79.reasons.contains(&Reason::NewestReady));
        assert!(b79.reasons.contains(&Reason::Daily));
    }

    #[test]
    fn invariants_hold_whatever_the_policy() {
        let mut b = vec![
            ready("old-pinned", "2025-01-01T00:00:00Z"),
            ready("old-verified", "2025-02-01T00:00:00Z"),
            ready("old-busy", "2025-03-01T00:00:00Z"),
            ready("old-sole", "2025-04-01T00:00:00Z"),
            ready("newest-ready", "2026-01-01T00:00:00Z"),
            ready("failed-after", "2026-01-02T00:00:00Z"),
            ready("running", "2026-01-03T00:00:00Z"),
            ready("old-failed", "2025-05-01T00:00:00Z"),
            ready("old-plain", "2025-06-01T00:00:00Z"),
        ];
        b[0].pinned = true;
        b[1].verified = true;
        b[2].busy = Some("being restored by restore-1".into());
        b[3].sole_copy = true;
        b[5].health = Health::Failed;
        b[6].health = Health::Running;
        b[7].health = Health::Failed;
        let policy = Policy {
            keep_days: Some(1),
            ..Policy::default()
        };
        let v = decide(&policy, &b, at("2026-06-01T00:00:00Z"));
        assert_eq!(
            kept(&v),
            [
                "old-pinned",
                "old-verified",
                "old-busy",
                "old-sole",
                "newest-ready",
                "failed-after",
                "running"
            ]
        );
    }

    fn candidate() -> impl Strategy<Value = Candidate> {
        (
            0u8..3,
            0i64..(400 * 24),
            0u8..10,
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(set, hours, health, pinned, verified, busy)| Candidate {
                id: String::new(),
                set: format!("set{set}"),
                at: at("2025-01-01T00:00:00Z") + SignedDuration::from_hours(hours),
                seq: 0,
                health: match health {
                    0 => Health::Failed,
                    1 => Health::Running,
                    _ => Health::Ready,
                },
                pinned: pinned && hours % 7 == 0,
                verified: verified && hours % 3 == 0,
                busy: (busy && hours % 11 == 0).then(|| "exported".to_owned()),
                sole_copy: hours % 13 == 0,
            })
    }

    fn policy() -> impl Strategy<Value = Policy> {
        let n = || proptest::option::of(0u32..6);
        (n(), n(), n(), n(), n(), n(), n()).prop_map(|(last, h, d, w, m, y, days)| Policy {
            keep_last: last,
            keep_hourly: h,
            keep_daily: d,
            keep_weekly: w,
            keep_monthly: m,
            keep_yearly: y,
            keep_days: days,
            keep_within_secs: None,
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn retention_never_breaks_its_promises(
            mut backups in proptest::collection::vec(candidate(), 0..60),
            policy in policy(),
        ) {
            for (i, b) in backups.iter_mut().enumerate() {
                b.id = format!("b{i}");
                b.seq = i as i64;
            }
            let now = at("2026-02-15T00:00:00Z");
            let v = decide(&policy, &backups, now);
            prop_assert_eq!(v.len(), backups.len());
            let keep: HashSet<&str> = kept(&v).into_iter().collect();
            for b in &backups {
                if b.pinned || b.busy.is_some() || b.sole_copy || b.health == Health::Running {
                    prop_assert!(keep.contains(b.id.as_str()), "{} deleted", b.id);
                }
            }
            for set in ["set0", "set1", "set2"] {
                let mut ready: Vec<&Candidate> = backups
                    .iter()
                    .filter(|b| b.set == set && b.health == Health::Ready)
                    .collect();
                ready.sort_by(|a, b| (b.at, b.seq, &b.id).cmp(&(a.at, a.seq, &a.id)));
                if let Some(n) = ready.first() {
                    prop_assert!(keep.contains(n.id.as_str()), "newest READY {} deleted", n.id);
                }
                if let Some(n) = ready.iter().find(|b| b.verified) {
                    prop_assert!(keep.contains(n.id.as_str()), "newest verified {} deleted", n.id);
                }
                let last = policy.keep_last.unwrap_or(0) as usize;
                for b in ready.iter().take(last) {
                    prop_assert!(keep.contains(b.id.as_str()), "{} of the last {last} deleted", b.id);
                }
            }
            // Applying the policy again to what it kept deletes nothing more.
            let survivors: Vec<Candidate> =
                backups.iter().filter(|b| keep.contains(b.id.as_str())).cloned().collect();
            let again = decide(&policy, &survivors, now);
            prop_assert!(again.iter().all(Verdict::keep), "not idempotent: {:?}", again);
        }
    }
}
