//! `--wait`: following a job (a backup) until it ends, from its `status` and
//! each component's `progress`. On a terminal a bar per component; other
//! output gets a line whenever a component changes state; `--json` nothing
//! until the final answer.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::Value;

use super::{Answer, Client};
use crate::error::CliResult;
use crate::output::{Output, human_bytes};

/// How often the job is asked for.
const POLL: Duration = Duration::from_millis(500);

/// Polls `path` until its `status` is no longer `running` (e.g.
/// `BACKING_UP`), showing progress; the final answer.
pub fn until_done(client: &Client, path: &str, running: &str, out: Output) -> CliResult<Answer> {
    let mut view = View::new(out);
    loop {
        let answer = client.get(path)?;
        view.show(&answer.value);
        if answer.value["status"].as_str() != Some(running) {
            view.finish();
            return Ok(answer);
        }
        std::thread::sleep(POLL);
    }
}

/// What has been shown so far.
enum View {
    Silent,
    Lines(BTreeMap<String, String>),
    Bars(MultiProgress, BTreeMap<String, ProgressBar>),
}

impl View {
    fn new(out: Output) -> Self {
        if out.json {
            View::Silent
        } else if std::io::stdout().is_terminal() {
            View::Bars(MultiProgress::new(), BTreeMap::new())
        } else {
            View::Lines(BTreeMap::new())
        }
    }

    fn show(&mut self, job: &Value) {
        let components = job["components"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        // An export lists its components by name only: nothing to show per component.
        for c in components.iter().filter(|c| c.is_object()) {
            let name = c["name"].as_str().unwrap_or("?").to_owned();
            let status = c["status"].as_str().unwrap_or("?");
            let progress = &c["progress"];
            let done = progress["bytes_done"]
                .as_u64()
                .or(c["bytes"].as_u64())
                .unwrap_or(0);
            match self {
                View::Silent => {}
                View::Lines(seen) => {
                    if seen.get(&name).map(String::as_str) != Some(status) {
                        println!("{}", line(&name, c, done));
                        seen.insert(name, status.to_owned());
                    }
                }
                View::Bars(multi, bars) => {
                    let bar = bars.entry(name.clone()).or_insert_with(|| {
                        let bar = multi.add(ProgressBar::new(0));
                        bar.set_style(
                            ProgressStyle::with_template(
                                "{prefix:12} {wide_bar} {bytes}/{total_bytes} {msg}",
                            )
                            .unwrap_or_else(|_| ProgressStyle::default_bar()),
                        );
                        bar.set_prefix(name.clone());
                        bar
                    });
                    if let Some(total) = progress["bytes_total"].as_u64() {
                        bar.set_length(total);
                    } else if bar.length().unwrap_or(0) < done {
                        bar.set_length(done);
                    }
                    bar.set_position(done);
                    bar.set_message(status.to_owned());
                }
            }
        }
    }

    fn finish(&mut self) {
        if let View::Bars(_, bars) = self {
            for bar in bars.values() {
                bar.finish();
            }
        }
    }
}

/// `db: READY (12 MiB, 3 s)` or `db: ERROR: why`.
fn line(name: &str, c: &Value, done: u64) -> String {
    let status = c["status"].as_str().unwrap_or("?");
    match (c["error"].as_str(), c["duration_secs"].as_u64()) {
        (Some(err), _) => format!("{name}: {status}: {err}"),
        (None, Some(secs)) => format!("{name}: {status} ({}, {secs} s)", human_bytes(done)),
        (None, None) => format!("{name}: {status}"),
    }
}
