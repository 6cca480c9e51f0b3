//! `coffer repo check`: verifies the repository's structure and, with
//! `--read-data`, its data.

use clap::Args;
use coffer_engine::Repo;

use crate::commands::Outcome;
use crate::error::CliResult;
use crate::output::Output;

// No doc comment: the `Check` variant's is the command's help.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Also read and verify pack contents: all, or a subset like 10% or 1/5.
    #[arg(long, value_name = "SUBSET", num_args = 0..=1, default_missing_value = "all")]
    read_data: Option<String>,
}

/// Runs the check and lists every problem; damage is a verdict (exit 7),
/// not an error: the report is the output.
pub fn run(args: CheckArgs, repo: &Repo, out: Output) -> CliResult<Outcome> {
    let report = repo.check(args.read_data.as_deref())?;
    out.result(&report, |r| {
        let mut s = String::new();
        for e in &r.errors {
            s.push_str(&format!("error: {e}\n"));
        }
        for w in &r.warnings {
            s.push_str(&format!("warning: {w}\n"));
        }
        s.push_str(if r.is_ok() {
            "no errors were found"
        } else {
            "the repository is damaged"
        });
        s
    });
    Ok(if report.is_ok() {
        Outcome::Done
    } else {
        Outcome::Damaged
    })
}
