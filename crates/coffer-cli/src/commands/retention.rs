//! `coffer retention preview`: what the retention policies would delete
//! now and why each kept backup is kept, read from the server's catalog
//! offline (the same answer as `GET /api/v1/retention/preview`).

use clap::{Args, Subcommand};
use coffer_server::{RetainedView, RetentionPreview};

use super::data_dir::ConfigArgs;
use crate::error::CliResult;
use crate::output::Output;

/// `coffer retention …`: the server's retention policies, offline.
#[derive(Debug, Args)]
pub struct RetentionArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Print JSON.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    command: RetentionCommand,
}

#[derive(Debug, Subcommand)]
enum RetentionCommand {
    /// Show what each policy keeps (and why) and what it would delete now;
    /// nothing is deleted.
    Preview {
        /// Only this schedule's policy.
        #[arg(long, conflicts_with = "label")]
        schedule: Option<String>,
        /// Only this label's policy (`[retention.labels]`).
        #[arg(long)]
        label: Option<String>,
    },
}

/// Runs a retention command.
pub fn run(args: RetentionArgs, out: Output) -> CliResult {
    let offline = args.config.open_offline()?;
    let RetentionCommand::Preview { schedule, label } = args.command;
    let preview = offline.retention_preview(schedule.as_deref(), label.as_deref())?;
    out.result(&preview, text);
    Ok(())
}

/// The preview for people: per policy, a line per backup.
fn text(p: &RetentionPreview) -> String {
    if p.policies.is_empty() {
        return "no retention policy is in force (give a schedule `retention`, or \
                [retention.labels] in coffer.toml)"
            .into();
    }
    let line = |verdict: &str, b: &RetainedView| {
        format!(
            "  {verdict:<6} {}  {}  {:<10} {}",
            b.id,
            b.taken_at,
            b.status,
            b.reasons.join(", ")
        )
    };
    p.policies
        .iter()
        .map(|g| {
            let whose = match (&g.schedule, &g.label) {
                (Some(s), _) => format!("schedule {s}"),
                (None, Some(l)) => format!("label {l}"),
                (None, None) => "policy".into(),
            };
            let policy = serde_json::to_string(&g.policy).unwrap_or_default();
            let mut lines = vec![format!(
                "{whose} {policy}: keeps {}, would delete {}",
                g.keep.len(),
                g.delete.len()
            )];
            lines.extend(g.keep.iter().map(|b| line("keep", b)));
            lines.extend(g.delete.iter().map(|b| line("delete", b)));
            lines.join("\n")
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}
