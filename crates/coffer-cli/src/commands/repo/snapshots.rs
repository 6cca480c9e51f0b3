//! `coffer repo snapshots`: lists snapshots, oldest first.

use clap::Args;
use coffer_engine::{Repo, SnapshotFilter};

use crate::error::CliResult;
use crate::output::{Output, human_bytes, short_id};

// No doc comment: the `Snapshots` variant's is the command's help.
#[derive(Debug, Args)]
pub struct SnapshotsArgs {
    /// Only snapshots of this backup id.
    #[arg(long)]
    backup: Option<String>,
    /// Only backups with this label.
    #[arg(long)]
    label: Option<String>,
    /// Only this component.
    #[arg(long)]
    component: Option<String>,
}

/// Lists the snapshots the filters (combined) select.
pub fn run(args: SnapshotsArgs, repo: &Repo, out: Output) -> CliResult {
    let filter = SnapshotFilter {
        backup_id: args.backup,
        label: args.label,
        component: args.component,
    };
    let list = repo.snapshots(&filter)?;
    out.result(&list, |list| {
        let mut s = format!(
            "{:<10} {:<20} {:<48} {:<16} {:>10}\n",
            "ID", "TIME", "BACKUP", "COMPONENT", "SIZE"
        );
        for snap in list {
            let (b, c) = snap
                .backup
                .as_ref()
                .map(|b| (b.backup_id.to_string(), b.component.to_string()))
                .unwrap_or_default();
            s.push_str(&format!(
                "{:<10} {:<20} {:<48} {:<16} {:>10}\n",
                short_id(&snap.id),
                snap.time.get(..19).unwrap_or(&snap.time),
                b,
                c,
                human_bytes(snap.bytes)
            ));
        }
        s.push_str(&format!("{} snapshots", list.len()));
        s
    });
    Ok(())
}
