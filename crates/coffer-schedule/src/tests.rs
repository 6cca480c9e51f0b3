//! Months of schedule on a fake clock, daylight saving, downtime and
//! overlapping runs.

use jiff_cron::jiff::civil::date;
use jiff_cron::jiff::tz::TimeZone;
use jiff_cron::jiff::{SignedDuration, Timestamp, ToSpan};

use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn fields(toml_text: &str) -> WhenFields {
    toml::from_str(toml_text).unwrap()
}

fn when(toml_text: &str, created: &str) -> When {
    When::parse(&fields(toml_text), ts(created)).unwrap()
}

fn error(toml_text: &str) -> WhenError {
    When::parse(&fields(toml_text), ts("2026-12-01T00:00:00Z")).unwrap_err()
}

const SIX_HOURS: SignedDuration = SignedDuration::from_hours(6);

/// Ticks `when` from `from` to `to` every `step`, except while `down`
/// (half-open ranges); every run finishes before the next tick. Returns
/// every outcome with the time it was decided.
fn simulate(
    when: &When,
    created: Timestamp,
    from: Timestamp,
    to: Timestamp,
    step: SignedDuration,
    down: &[(Timestamp, Timestamp)],
) -> Vec<(Timestamp, Outcome)> {
    let mut state = State {
        handled: created,
        running: false,
    };
    let mut out = Vec::new();
    let mut now = from;
    while now <= to {
        if !down.iter().any(|(a, b)| now >= *a && now < *b) {
            let (outcomes, handled) = decide(when, state, now, SIX_HOURS);
            state.handled = handled;
            out.extend(outcomes.into_iter().map(|o| (now, o)));
        }
        now = now.checked_add(step).unwrap();
    }
    out
}

fn runs(outcomes: &[(Timestamp, Outcome)]) -> Vec<Timestamp> {
    outcomes
        .iter()
        .filter_map(|(_, o)| match o {
            Outcome::Run { due } => Some(*due),
            _ => None,
        })
        .collect()
}

#[test]
fn a_month_of_every_two_days_at_three_and_fifteen_utc() {
    let created = ts("2026-12-01T00:00:00Z");
    let w = when(
        "every_days = 2\nhours_utc = [15, 3]\n",
        "2026-12-01T00:00:00Z",
    );
    let got = simulate(
        &w,
        created,
        created,
        ts("2026-12-31T00:00:00Z"),
        SignedDuration::from_mins(10),
        &[],
    );
    let mut expected = Vec::new();
    for day in (1..=29).step_by(2) {
        for hour in [3, 15] {
            expected.push(ts(&format!("2026-12-{day:02}T{hour:02}:00:00Z")));
        }
    }
    assert_eq!(runs(&got), expected);
    assert_eq!(got.len(), 30, "nothing skipped or missed: {got:?}");
    // Each ran within one tick of its due time.
    for (at, o) in &got {
        let Outcome::Run { due } = o else {
            unreachable!()
        };
        assert!(at.duration_since(*due) < SignedDuration::from_mins(10));
    }
}

#[test]
fn after_downtime_one_recent_run_catches_up_and_older_ones_are_missed() {
    let created = ts("2026-12-01T00:00:00Z");
    let w = when(
        "every_days = 2\nhours_utc = [3, 15]\n",
        "2026-12-01T00:00:00Z",
    );
    let down = [
        // Misses Dec 5 15:00 and Dec 7 03:00; back at 16:00, one hour after
        // Dec 7 15:00: that one runs late, once.
        (ts("2026-12-05T12:00:00Z"), ts("2026-12-07T16:00:00Z")),
        // Down across Dec 9 03:00 and 15:00, back 7 h later: both missed.
        (ts("2026-12-09T01:00:00Z"), ts("2026-12-09T22:00:00Z")),
    ];
    let got = simulate(
        &w,
        created,
        created,
        ts("2026-12-12T00:00:00Z"),
        SignedDuration::from_mins(10),
        &down,
    );
    let run_times = runs(&got);
    assert_eq!(
        run_times,
        [
            "2026-12-01T03:00:00Z",
            "2026-12-01T15:00:00Z",
            "2026-12-03T03:00:00Z",
            "2026-12-03T15:00:00Z",
            "2026-12-05T03:00:00Z",
            "2026-12-07T15:00:00Z",
            "2026-12-11T03:00:00Z",
            "2026-12-11T15:00:00Z",
        ]
        .map(ts)
    );
    let missed: Vec<_> = got
        .iter()
        .filter_map(|(at, o)| match o {
            Outcome::Missed { first, last, count } => Some((*at, *first, *last, *count)),
            _ => None,
        })
        .collect();
    assert_eq!(
        missed,
        [
            (
                ts("2026-12-07T16:00:00Z"),
                ts("2026-12-05T15:00:00Z"),
                ts("2026-12-07T03:00:00Z"),
                2
            ),
            (
                ts("2026-12-09T22:00:00Z"),
                ts("2026-12-09T03:00:00Z"),
                ts("2026-12-09T15:00:00Z"),
                2
            ),
        ]
    );
    // The late run was decided at once when the server came back.
    let (at, _) = got
        .iter()
        .find(|(_, o)| {
            *o == Outcome::Run {
                due: ts("2026-12-07T15:00:00Z"),
            }
        })
        .unwrap();
    assert_eq!(*at, ts("2026-12-07T16:00:00Z"));
}

#[test]
fn a_run_still_going_makes_the_next_due_time_skipped() {
    let created = ts("2026-12-01T00:00:00Z");
    let w = when("every_secs = 3600\n", "2026-12-01T00:00:00Z");
    let state = State {
        handled: created,
        running: true,
    };
    let (out, handled) = decide(&w, state, ts("2026-12-01T01:00:05Z"), SIX_HOURS);
    assert_eq!(
        out,
        [Outcome::Skipped {
            due: ts("2026-12-01T01:00:00Z")
        }]
    );
    // The next due time is decided anew: it runs once the run has ended.
    let state = State {
        handled,
        running: false,
    };
    let (out, _) = decide(&w, state, ts("2026-12-01T02:00:01Z"), SIX_HOURS);
    assert_eq!(
        out,
        [Outcome::Run {
            due: ts("2026-12-01T02:00:00Z")
        }]
    );
    // Nothing is due twice.
    let (out, _) = decide(
        &w,
        State {
            handled: ts("2026-12-01T02:00:00Z"),
            running: false,
        },
        ts("2026-12-01T02:30:00Z"),
        SIX_HOURS,
    );
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn a_long_downtime_of_a_frequent_schedule_is_one_missed_range() {
    let created = ts("2026-01-01T00:00:00Z");
    let w = when("every_secs = 60\n", "2026-01-01T00:00:00Z");
    let state = State {
        handled: created,
        running: false,
    };
    // A year of minutes.
    let (out, handled) = decide(&w, state, ts("2027-01-01T00:00:30Z"), SIX_HOURS);
    assert_eq!(handled, ts("2027-01-01T00:00:00Z"));
    let [Outcome::Missed { first, last, count }, Outcome::Run { due }] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(*first, ts("2026-01-01T00:01:00Z"));
    assert_eq!(*last, ts("2026-12-31T23:59:00Z"));
    assert_eq!(*count, 365 * 24 * 60 - 1);
    assert_eq!(*due, ts("2027-01-01T00:00:00Z"));
}

/// Every run of `cron` in `zone` between two local dates, as local times.
fn local_runs(cron: &str, zone: &str, from: (i16, i8, i8), to: (i16, i8, i8)) -> Vec<String> {
    let tz = TimeZone::get(zone).unwrap();
    let start = date(from.0, from.1, from.2)
        .to_zoned(tz.clone())
        .unwrap()
        .timestamp();
    let end = date(to.0, to.1, to.2)
        .to_zoned(tz.clone())
        .unwrap()
        .timestamp();
    let w = When::parse(
        &WhenFields {
            cron: Some(cron.into()),
            time_zone: Some(zone.into()),
            ..WhenFields::default()
        },
        start,
    )
    .unwrap();
    let got = simulate(&w, start, start, end, SignedDuration::from_mins(5), &[]);
    assert!(
        got.iter().all(|(_, o)| matches!(o, Outcome::Run { .. })),
        "{got:?}"
    );
    runs(&got)
        .into_iter()
        .map(|t| {
            t.to_zoned(tz.clone())
                .strftime("%Y-%m-%d %H:%M %Z")
                .to_string()
        })
        .collect()
}

#[test]
fn cron_in_a_daylight_saving_zone_runs_once_a_night_in_both_transitions() {
    // Europe/Berlin, 2027: clocks go 02:00 → 03:00 on March 28 (02:30 does
    // not exist) and 03:00 → 02:00 on October 31 (02:30 happens twice).
    let spring = local_runs("30 2 * * *", "Europe/Berlin", (2027, 3, 26), (2027, 3, 31));
    assert_eq!(spring.len(), 5, "{spring:?}");
    assert!(
        spring
            .iter()
            .filter(|r| r.starts_with("2027-03-28"))
            .count()
            == 1,
        "{spring:?}"
    );
    let autumn = local_runs("30 2 * * *", "Europe/Berlin", (2027, 10, 29), (2027, 11, 3));
    assert_eq!(autumn.len(), 5, "{autumn:?}");
    assert!(
        autumn
            .iter()
            .filter(|r| r.starts_with("2027-10-31"))
            .count()
            == 1,
        "{autumn:?}"
    );
    assert!(autumn.iter().all(|r| r.contains("02:30")), "{autumn:?}");
}

#[test]
fn a_five_field_cron_in_utc_and_an_interval_are_exact() {
    let w = when("cron = \"15 */6 * * *\"\n", "2026-12-01T00:00:00Z");
    assert_eq!(
        w.next_after(ts("2026-12-01T00:00:00Z")),
        Some(ts("2026-12-01T00:15:00Z"))
    );
    assert_eq!(
        w.next_after(ts("2026-12-01T00:15:00Z")),
        Some(ts("2026-12-01T06:15:00Z"))
    );
    let w = when(
        "every_secs = 5400\nstart = \"2026-12-01\"\n",
        "2026-12-03T10:00:00Z",
    );
    assert_eq!(
        w.next_after(ts("2026-12-01T01:29:59Z")),
        Some(ts("2026-12-01T01:30:00Z"))
    );
    assert_eq!(
        w.next_after(ts("2026-12-01T01:30:00Z")),
        Some(ts("2026-12-01T03:00:00Z"))
    );
    // every_days counts from `start`, not from the query.
    let w = when(
        "every_days = 3\nhours_utc = [0]\nstart = \"2026-12-02\"\n",
        "2026-12-01T00:00:00Z",
    );
    assert_eq!(
        w.next_after(ts("2026-12-03T00:00:00Z")),
        Some(ts("2026-12-05T00:00:00Z"))
    );
    let next = w.next_after(ts("2026-11-01T00:00:00Z")).unwrap();
    assert_eq!(next, ts("2026-12-02T00:00:00Z"));
    let year_later = ts("2027-12-02T00:00:00Z");
    let far = w
        .next_after(year_later.checked_sub(1.second()).unwrap())
        .unwrap();
    assert_eq!((far.as_second() - next.as_second()) % (3 * 86_400), 0);
}

#[test]
fn mistakes_name_their_field() {
    for (text, field, says) in [
        ("every_days = 2\nhours_utc = [3, 24]\n", "hours_utc", "24"),
        (
            "every_days = 0\nhours_utc = [3]\n",
            "every_days",
            "at least 1",
        ),
        ("hours_utc = [3]\n", "every_days", "required"),
        ("every_days = 1\n", "hours_utc", "required"),
        (
            "every_days = 1\nhours_utc = []\n",
            "hours_utc",
            "at least one",
        ),
        ("cron = \"0 0 30 2 *\"\n", "cron", "never fires"),
        ("cron = \"61 * * * *\"\n", "cron", "61"),
        ("cron = \"* * *\"\n", "cron", "3 fields"),
        (
            "cron = \"0 3 * * *\"\ntime_zone = \"Mars/Olympus\"\n",
            "time_zone",
            "Mars/Olympus",
        ),
        (
            "every_days = 1\nhours_utc = [3]\ntime_zone = \"UTC\"\n",
            "time_zone",
            "only with cron",
        ),
        ("every_secs = 10\n", "every_secs", "less than 60"),
        (
            "every_secs = 3600\nstart = \"yesterday\"\n",
            "start",
            "yesterday",
        ),
        (
            "every_secs = 3600\ncron = \"0 3 * * *\"\n",
            "every_days",
            "exactly one",
        ),
        ("", "every_days", "exactly one"),
    ] {
        let e = error(text);
        assert_eq!(e.field, field, "{text:?}: {e}");
        assert!(e.to_string().contains(says), "{text:?}: {e}");
    }
}

#[test]
fn five_field_cron_weekdays_are_unix_ones() {
    let created: Timestamp = "2027-01-01T00:00:00Z".parse().unwrap();
    let when = |expr: &str| {
        When::parse(
            &WhenFields {
                cron: Some(expr.into()),
                ..WhenFields::default()
            },
            created,
        )
        .unwrap()
    };
    let weekdays = |w: &When| {
        let mut at = created;
        let mut out = Vec::new();
        for _ in 0..7 {
            at = w.next_after(at).unwrap();
            out.push(
                at.to_zoned(jiff_cron::jiff::tz::TimeZone::UTC)
                    .weekday()
                    .to_monday_zero_offset(),
            );
        }
        out
    };
    // 1 January 2027 is a Friday. Monday to Friday, from that Friday:
    assert_eq!(weekdays(&when("0 3 * * 1-5")), [4, 0, 1, 2, 3, 4, 0]);
    // Sunday as 0 and as 7, and by name:
    for e in ["0 4 * * 0", "0 4 * * 7", "0 4 * * SUN"] {
        assert_eq!(weekdays(&when(e)), [6; 7], "{e}");
    }
    // Every other day from Sunday: Sunday, Tuesday, Thursday, Saturday.
    assert_eq!(weekdays(&when("0 4 * * */2"))[..4], [5, 6, 1, 3]);
    for bad in ["0 4 * * 8", "0 4 * * 5-1", "0 4 * * MON-5"] {
        let e = When::parse(
            &WhenFields {
                cron: Some(bad.into()),
                ..WhenFields::default()
            },
            created,
        )
        .unwrap_err();
        assert_eq!(e.field, "cron", "{bad}");
    }
}
