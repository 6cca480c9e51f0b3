//! `coffer repo prune`: removes data no snapshot refers to, two-phase.

use clap::Args;
use coffer_engine::Repo;

use crate::error::CliResult;
use crate::output::{Output, human_bytes};

// No doc comment: the `Prune` variant's is the command's help.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Delete unused packs at once instead of after the 23 h grace period.
    /// Only when no other Coffer process uses the repository.
    #[arg(long)]
    instant: bool,
}

/// Prunes under the exclusive lock.
pub fn run(args: PruneArgs, repo: &Repo, out: Output) -> CliResult {
    let report = repo.prune(args.instant)?;
    out.result(&report, |r| {
        format!(
            "removed {} packs ({}), repacked {}; {} packs newly marked and {} waiting \
             for removal by a prune after the 23 h grace period",
            r.packs_removed,
            human_bytes(r.bytes_freed),
            r.packs_repacked,
            r.packs_marked,
            r.packs_waiting
        )
    });
    Ok(())
}
