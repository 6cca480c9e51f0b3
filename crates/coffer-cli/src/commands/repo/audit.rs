//! `coffer repo audit`: reads the audit log a Coffer server copied into the
//! repository (`coffer/audit/`) and verifies it on its own — what is left to
//! check when the server is gone, or to hold against the server's catalog.

use clap::Args;
use coffer_engine::Repo;

use crate::commands::Outcome;
use crate::error::CliResult;
use crate::output::Output;

// No doc comment: the `Audit` variant's is the command's help.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Show only the last N entries (the whole log is verified anyway).
    #[arg(long, value_name = "N")]
    last: Option<usize>,
}

/// Prints the entries and every problem; a broken chain is a verdict
/// (exit 7), not an error.
pub fn run(args: AuditArgs, repo: &Repo, out: Output) -> CliResult<Outcome> {
    let mut copy = repo.read_audit()?;
    let sound = copy.problems.is_empty();
    if let Some(n) = args.last {
        let skip = copy.entries.len().saturating_sub(n);
        copy.entries.drain(..skip);
    }
    out.result(&copy, |c| {
        let mut s = String::new();
        for e in &c.entries {
            let r = &e.record;
            s.push_str(&format!(
                "{:>6}  {}  {}  {}  {}  {}  {}\n",
                e.seq,
                r.time,
                r.actor,
                r.address.as_deref().unwrap_or("-"),
                r.action,
                r.subject,
                r.outcome
            ));
        }
        for p in &c.problems {
            s.push_str(&format!("problem: {p}\n"));
        }
        let held = c.head.as_ref().map_or(0, |h| h.seq);
        s.push_str(&if c.problems.is_empty() {
            format!("the audit log is intact: {held} entries")
        } else {
            "the audit log was tampered with or damaged".to_owned()
        });
        s
    });
    Ok(if sound {
        Outcome::Done
    } else {
        Outcome::Damaged
    })
}
