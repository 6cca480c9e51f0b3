//! `coffer repo forget`: removes snapshots, by id or by backup.

use clap::Args;
use coffer_engine::{EngineError, Repo, SnapshotFilter};
use coffer_model::BackupId;

use crate::error::{CliError, CliResult};
use crate::output::Output;

// No doc comment: the `Forget` variant's is the command's help.
#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Snapshot ids (or unique prefixes).
    snapshots: Vec<String>,
    /// Remove every snapshot of this backup id.
    #[arg(long)]
    backup: Option<String>,
    /// Prune afterwards.
    #[arg(long)]
    prune: bool,
}

/// Removes the snapshots (data stays until a prune; `--prune` runs one).
pub fn run(args: ForgetArgs, repo: &Repo, out: Output) -> CliResult {
    let ForgetArgs {
        mut snapshots,
        backup,
        prune,
    } = args;
    if let Some(b) = backup {
        BackupId::parse(&b).map_err(|e| CliError::usage(e.to_string()))?;
        let list = repo.snapshots(&SnapshotFilter {
            backup_id: Some(b.clone()),
            ..Default::default()
        })?;
        if list.is_empty() {
            return Err(EngineError::NotFound(format!("no snapshots of backup {b}")).into());
        }
        snapshots.extend(list.into_iter().map(|s| s.id));
    }
    if snapshots.is_empty() {
        return Err(CliError::usage("give snapshot ids or --backup ID"));
    }
    let removed = repo.forget(&snapshots)?;
    let pruned = if prune {
        Some(repo.prune(false)?)
    } else {
        None
    };
    out.result(
        &serde_json::json!({ "removed": removed, "prune": pruned }),
        |_| {
            format!(
                "removed {removed} snapshots{}",
                if prune {
                    " and pruned"
                } else {
                    "; run `coffer repo prune` to free the space"
                }
            )
        },
    );
    Ok(())
}
