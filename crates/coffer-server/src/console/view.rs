//! Small views of the API's JSON values: text, times with their age,
//! sizes, states and progress.

use maud::{Markup, html};
use serde_json::Value;

/// A string field, or "".
pub fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// A list field, or an empty one.
pub fn items(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// Seconds since the Unix epoch of an RFC 3339 time.
pub fn epoch(v: &Value) -> Option<i64> {
    v.as_str()?
        .parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_second())
}

/// How long ago `secs` was, from `now`, in the largest unit.
pub fn age(now: i64, secs: i64) -> String {
    let d = now - secs;
    if d < 0 {
        return format!("in {}", span(-d));
    }
    format!("{} ago", span(d))
}

/// A duration in its largest unit (`45 s`, `3 min`, `5 h`, `2 d`).
pub fn span(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

/// A time: its age, with the exact time as the element's datetime and title.
pub fn when(v: &Value) -> Markup {
    match (v.as_str(), epoch(v)) {
        (Some(t), Some(secs)) => {
            html! { time datetime=(t) title=(t) { (age(crate::catalog::now(), secs)) } }
        }
        _ => html! { "—" },
    }
}

/// A size in bytes, in binary units.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A size field, or "—".
pub fn size_of(v: &Value) -> String {
    v.as_u64().map(size).unwrap_or_else(|| "—".into())
}

/// A job or component state as a badge.
pub fn status(v: &Value) -> Markup {
    let s = text(v);
    let class = match s {
        "READY" | "ok" | "STARTED" => "badge ok",
        "ERROR" | "failed" | "FAILED" | "MISSED" => "badge bad",
        "" => "badge",
        _ => "badge busy",
    };
    html! { span class=(class) { (s) } }
}

/// Whether a job's state is final.
pub fn is_final(v: &Value) -> bool {
    matches!(text(v), "READY" | "ERROR")
}

/// A component's progress: a bar when the total is known, counts otherwise.
pub fn progress(p: &Value) -> Markup {
    if p.is_null() {
        return html! {};
    }
    let done = p["bytes_done"].as_u64().unwrap_or(0);
    let files = p["files_done"].as_u64().unwrap_or(0);
    html! {
        @if let Some(total) = p["bytes_total"].as_u64().filter(|t| *t > 0) {
            progress value=(done) max=(total) { (size(done)) " of " (size(total)) }
            " " (size(done)) " of " (size(total))
        } @else {
            (size(done)) ", " (files) " files"
        }
    }
}

/// A target's last probe: reachable or why not, when, its repository's
/// size and the free space of a local one.
pub fn health(h: &Value) -> Markup {
    if h.is_null() {
        return html! { span.hint { "not probed yet" } };
    }
    html! {
        @if h["reachable"] == Value::Bool(true) {
            span.badge.ok { "reachable" }
        } @else {
            span.badge.bad { "unreachable" } " " span.hint { (text(&h["error"])) }
        }
        " " span.hint { (when(&h["probed_at"])) }
    }
}

/// A job's log (`GET …/log`), oldest line first.
pub fn job_log(l: &Value) -> Markup {
    html! {
        pre.log { @for line in items(&l["lines"]) { (text(&line["at"])) "  " (text(&line["line"])) "\n" } }
    }
}
