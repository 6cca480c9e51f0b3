//! Human or JSON output, and progress bars on terminals.

use std::io::IsTerminal;
use std::sync::Arc;

use coffer_engine::{EngineError, ProgressFn, ProgressInfo};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::exit::ExitCode;

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

    /// Reports an error and returns its exit code.
    pub fn error(&self, code: ExitCode, kind: &str, message: &str) -> std::process::ExitCode {
        if self.json {
            let body = serde_json::json!({ "error": kind, "message": message });
            eprintln!("{body}");
        } else {
            eprintln!("coffer: {message}");
        }
        code.into()
    }

    /// Reports an engine error.
    pub fn engine_error(&self, err: &EngineError) -> std::process::ExitCode {
        let (code, kind) = ExitCode::of(err);
        self.error(code, kind, &err.to_string())
    }

    /// A progress bar when stdout is a terminal and output is not JSON.
    pub fn progress(&self, what: &str) -> Option<(ProgressBar, ProgressFn)> {
        if self.json || !std::io::stdout().is_terminal() {
            return None;
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
        Some((bar, callback))
    }
}

/// Formats a byte count for people.
pub fn human_bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}
