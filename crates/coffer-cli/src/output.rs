//! Human or JSON output, and progress bars on terminals.

use std::io::IsTerminal;
use std::sync::Arc;

use coffer_engine::{ProgressFn, ProgressInfo};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::error::CliError;

/// How results are printed.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// JSON on stdout (and JSON errors on stderr) instead of text.
    pub json: bool,
}

impl Output {
    /// Prints a result: JSON when asked, else the text from `human`.
    pub fn result<T: Serialize>(&self, value: &T, human: impl FnOnce(&T) -> String) {
        if self.json {
            match serde_json::to_string_pretty(value) {
                Ok(s) => println!("{s}"),
                Err(e) => eprintln!("cannot encode result: {e}"),
            }
        } else {
            let text = human(value);
            if !text.is_empty() {
                println!("{text}");
            }
        }
    }

    /// Prints why the command failed on stderr: `{"error", "message"}` with
    /// `--json`, else `coffer: message`. Only `main` calls this.
    pub fn error(&self, err: &CliError) {
        if self.json {
            let body = serde_json::json!({ "error": err.code(), "message": err.to_string() });
            eprintln!("{body}");
        } else {
            eprintln!("coffer: {err}");
        }
    }

    /// A progress bar when stdout is a terminal and output is not JSON.
    pub fn progress(&self, what: &str) -> Progress {
        if self.json || !std::io::stdout().is_terminal() {
            return Progress(None);
        }
        let bar = ProgressBar::new(0);
        let style = ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(what.to_owned());
        let b = bar.clone();
        let callback: ProgressFn = Arc::new(move |p: ProgressInfo| {
            if let Some(total) = p.bytes_total {
                b.set_length(total);
            }
            b.set_position(p.bytes_done);
            b.set_message(match p.files_total {
                Some(t) => format!("{}/{} files", p.files_done, t),
                None => format!("{} files", p.files_done),
            });
        });
        Progress(Some((bar, callback)))
    }
}

/// A progress bar (or none, off a terminal). It is cleared when dropped, so
/// a failure returned with `?` leaves no half-drawn bar above the message;
/// drop it before printing the result.
pub struct Progress(Option<(ProgressBar, ProgressFn)>);

impl Progress {
    /// The callback to hand to the engine, if there is a bar.
    pub fn callback(&self) -> Option<ProgressFn> {
        self.0.as_ref().map(|(_, cb)| Arc::clone(cb))
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some((bar, _)) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// Formats a byte count for people.
pub fn human_bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

/// The first 8 characters of an id (snapshot, key, lock), as text output
/// shows them.
pub fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}
