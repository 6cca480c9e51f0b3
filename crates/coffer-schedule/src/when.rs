//! When a schedule is due: the three forms operators write, parsed from
//! a `[[schedules]]` entry or its API JSON, validated with the field named,
//! and their due times computed on any clock.
//!
//! * Palette's form: every `every_days` days (counted from `start`, a UTC
//!   date) at each of `hours_utc`;
//! * a `cron` expression (5 fields, or 6–7 with seconds and years) in an
//!   IANA `time_zone` (default UTC): daylight-saving gaps and folds are the
//!   calendar library's (jiff) to resolve, and a wall-clock time that a
//!   fold repeats runs once;
//! * a plain interval, `every_secs`, counted from `start`.

use std::str::FromStr;

use jiff_cron::Schedule;
use jiff_cron::jiff::civil::Date;
use jiff_cron::jiff::tz::TimeZone;
use jiff_cron::jiff::{SignedDuration, Timestamp, ToSpan};
use serde::{Deserialize, Serialize};

/// How far ahead a cron expression must fire at least once: one that does
/// not within this many years (`0 0 30 2 *`) is refused.
const CRON_HORIZON_YEARS: i16 = 8;

/// A `when` that cannot be: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct WhenError {
    /// The field at fault, as written in coffer.toml and the API.
    pub field: &'static str,
    /// What is wrong, and what would be right.
    pub message: String,
}

fn err(field: &'static str, message: impl Into<String>) -> WhenError {
    WhenError {
        field,
        message: message.into(),
    }
}

/// The timing fields of a schedule as written (other fields are the
/// caller's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct WhenFields {
    /// Palette: every this many days…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_days: Option<u32>,
    /// …at each of these UTC hours (0–23).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours_utc: Option<Vec<u8>>,
    /// A cron expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// The IANA zone the cron expression is read in (default `UTC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// A plain interval, in seconds (at least 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_secs: Option<u64>,
    /// The UTC date `every_days` and `every_secs` count from (default:
    /// the day the schedule was created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
}

/// A Unix cron weekday field (0–7, Sunday is 0 and 7; names as they are)
/// in the cron library's numbering (1–7, Sunday is 1), as an explicit
/// list where numbers are involved.
fn unix_weekdays(field: &str) -> Result<String, String> {
    if field == "*" || field == "?" {
        return Ok(field.to_owned());
    }
    let mut out: Vec<String> = Vec::new();
    let mut numbers = std::collections::BTreeSet::new();
    for part in field.split(',') {
        if part.chars().any(|c| c.is_ascii_alphabetic()) {
            if part.chars().any(|c| c.is_ascii_digit()) && !part.contains('/') {
                return Err(format!("{part:?} mixes names and numbers"));
            }
            out.push(part.to_owned());
            continue;
        }
        let (base, step) = match part.split_once('/') {
            Some((b, s)) => {
                let step: u8 = s.parse().map_err(|_| format!("{part:?}: bad step"))?;
                if step == 0 {
                    return Err(format!("{part:?}: a step of 0"));
                }
                (b, step)
            }
            None => (part, 1),
        };
        let num = |t: &str| {
            t.parse::<u8>()
                .ok()
                .filter(|n| *n <= 7)
                .ok_or_else(|| format!("{t:?} is not a weekday from 0 to 7"))
        };
        let (from, to) = match base.split_once('-') {
            _ if base == "*" => (0, 6),
            Some((a, b)) => (num(a)?, num(b)?),
            None if step > 1 => (num(base)?, 6),
            None => (num(base)?, num(base)?),
        };
        if from > to {
            return Err(format!("{part:?}: the range runs backwards"));
        }
        for d in (from..=to).step_by(usize::from(step)) {
            numbers.insert(d % 7 + 1);
        }
    }
    out.extend(numbers.iter().map(u8::to_string));
    Ok(out.join(","))
}

/// When a schedule is due, validated.
#[derive(Debug, Clone)]
pub enum When {
    /// Every `every` days from `start`, at each of `hours` (UTC, sorted).
    Days {
        /// Days between runs (at least 1).
        every: u32,
        /// Sorted, distinct, 0–23.
        hours: Vec<u8>,
        /// Day 0.
        start: Date,
    },
    /// A cron expression in a zone.
    Cron {
        /// The parsed expression.
        schedule: Box<Schedule>,
        /// Its zone.
        zone: TimeZone,
    },
    /// Every `every` from `start` (midnight UTC).
    Interval {
        /// At least a minute.
        every: SignedDuration,
        /// Where the count starts.
        start: Timestamp,
    },
}

impl When {
    /// Validates `f`. `created` is the schedule's creation time: the
    /// default `start`.
    pub fn parse(f: &WhenFields, created: Timestamp) -> Result<Self, WhenError> {
        let forms = [
            f.every_days.is_some() || f.hours_utc.is_some(),
            f.cron.is_some(),
            f.every_secs.is_some(),
        ];
        if forms.iter().filter(|x| **x).count() != 1 {
            return Err(err(
                "every_days",
                "give exactly one of: every_days with hours_utc (Palette's form), cron (with an \
                 optional time_zone), or every_secs",
            ));
        }
        if f.time_zone.is_some() && f.cron.is_none() {
            return Err(err(
                "time_zone",
                "only with cron (every_days and hours_utc are UTC)",
            ));
        }
        let start = match &f.start {
            None => created.to_zoned(TimeZone::UTC).date(),
            Some(s) => Date::from_str(s).map_err(|e| {
                err(
                    "start",
                    format!("{s:?} is not a date such as 2026-12-01: {e}"),
                )
            })?,
        };
        if let Some(expr) = &f.cron {
            if f.start.is_some() {
                return Err(err("start", "not with cron: the expression says when"));
            }
            let zone_name = f.time_zone.as_deref().unwrap_or("UTC");
            let zone = TimeZone::get(zone_name).map_err(|e| {
                err(
                    "time_zone",
                    format!("{zone_name:?} is not an IANA time zone such as Europe/Berlin: {e}"),
                )
            })?;
            let fields = expr.split_whitespace().count();
            let full = match fields {
                5 => {
                    // Unix cron numbers weekdays 0–7 from Sunday (0 and 7);
                    // the cron library 1–7 from Sunday: translate.
                    let mut parts: Vec<&str> = expr.split_whitespace().collect();
                    let weekdays = unix_weekdays(parts[4])
                        .map_err(|m| err("cron", format!("{expr:?}: weekday field: {m}")))?;
                    parts[4] = &weekdays;
                    format!("0 {}", parts.join(" "))
                }
                6 | 7 => expr.clone(),
                n => {
                    return Err(err(
                        "cron",
                        format!("{expr:?} has {n} fields: write 5 (minute hour day month weekday)"),
                    ));
                }
            };
            let schedule =
                Schedule::from_str(&full).map_err(|e| err("cron", format!("{expr:?}: {e}")))?;
            let when = When::Cron {
                schedule: Box::new(schedule),
                zone,
            };
            let horizon = created
                .to_zoned(TimeZone::UTC)
                .checked_add(CRON_HORIZON_YEARS.years())
                .map(|z| z.timestamp())
                .unwrap_or(Timestamp::MAX);
            match when.next_after(created) {
                Some(t) if t <= horizon => return Ok(when),
                _ => {
                    return Err(err(
                        "cron",
                        format!("{expr:?} never fires (not once in {CRON_HORIZON_YEARS} years)"),
                    ));
                }
            }
        }
        if let Some(secs) = f.every_secs {
            if secs < 60 {
                return Err(err("every_secs", format!("{secs} is less than 60")));
            }
            let every = SignedDuration::from_secs(
                i64::try_from(secs).map_err(|_| err("every_secs", "too large"))?,
            );
            let start = start
                .to_zoned(TimeZone::UTC)
                .map_err(|e| err("start", e.to_string()))?
                .timestamp();
            return Ok(When::Interval { every, start });
        }
        let every = match f.every_days {
            None => return Err(err("every_days", "required with hours_utc (1 for daily)")),
            Some(0) => return Err(err("every_days", "must be at least 1")),
            Some(n) if n > 366 => {
                return Err(err("every_days", format!("{n} is more than a year")));
            }
            Some(n) => n,
        };
        let mut hours = f
            .hours_utc
            .clone()
            .ok_or_else(|| err("hours_utc", "required with every_days, e.g. [3, 15]"))?;
        if hours.is_empty() {
            return Err(err("hours_utc", "give at least one hour (0–23)"));
        }
        if let Some(h) = hours.iter().find(|h| **h > 23) {
            return Err(err("hours_utc", format!("{h} is not an hour from 0 to 23")));
        }
        hours.sort_unstable();
        hours.dedup();
        Ok(When::Days {
            every,
            hours,
            start,
        })
    }

    /// The first due time strictly after `after`, if there is one.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        match self {
            When::Interval { every, start } => {
                if after < *start {
                    return Some(*start);
                }
                let elapsed = after.duration_since(*start).as_secs();
                let step = every.as_secs();
                let k = elapsed / step + 1;
                start
                    .checked_add(SignedDuration::from_secs(k.checked_mul(step)?))
                    .ok()
            }
            When::Days {
                every,
                hours,
                start,
            } => {
                let utc = TimeZone::UTC;
                let today = after.to_zoned(utc.clone()).date();
                let mut day = if today < *start { *start } else { today };
                // At most one period and a day to look at.
                for _ in 0..=(*every as usize + 1) {
                    let offset = i64::from(day.since(*start).ok()?.get_days());
                    if offset >= 0 && offset % i64::from(*every) == 0 {
                        for h in hours {
                            let t = day
                                .at(i8::try_from(*h).ok()?, 0, 0, 0)
                                .to_zoned(utc.clone())
                                .ok()?
                                .timestamp();
                            if t > after {
                                return Some(t);
                            }
                        }
                    }
                    day = day.tomorrow().ok()?;
                }
                None
            }
            When::Cron { schedule, zone } => {
                let from = after.to_zoned(zone.clone());
                // A fold repeats a wall-clock time: it is one run, not two.
                let previous = from.datetime();
                schedule
                    .after(from.clone())
                    .find(|z| z.datetime() != previous)
                    .map(|z| z.timestamp())
            }
        }
    }
}
