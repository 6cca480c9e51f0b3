//! `coffer retention preview`: what the retention policies would delete
//! now and why each kept backup is kept, read from the server's catalog
//! offline (the same answer as `GET /api/v1/retention/preview`).

use clap::{Args, Subcommand};
use serde_json::Value;

use super::data_dir::ConfigArgs;
use crate::error::{CliError, CliResult};
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
    let preview = serde_json::to_value(&preview)
        .map_err(|e| CliError::failure("internal", format!("encoding the preview: {e}")))?;
    out.result(&preview, text);
    Ok(())
}

/// The preview for people: per policy, a line per backup. Reads the JSON
/// (`GET /api/v1/retention/preview`'s shape), so the offline command and
/// `coffer schedule preview` show it alike.
pub(crate) fn text(p: &Value) -> String {
    let policies = p["policies"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if policies.is_empty() {
        return "no retention policy is in force (give a schedule `retention`, or \
                [retention.labels] in coffer.toml)"
            .into();
    }
    let s = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let line = |verdict: &str, b: &Value| {
        let reasons: Vec<String> = b["reasons"]
            .as_array()
            .into_iter()
            .flatten()
            .map(s)
            .collect();
        format!(
            "  {verdict:<6} {}  {}  {:<10} {}",
            s(&b["id"]),
            s(&b["taken_at"]),
            s(&b["status"]),
            reasons.join(", ")
        )
    };
    policies
        .iter()
        .map(|g| {
            let whose = match (g["schedule"].as_str(), g["label"].as_str()) {
                (Some(sch), _) => format!("schedule {sch}"),
                (None, Some(l)) => format!("label {l}"),
                (None, None) => "policy".into(),
            };
            let keep = g["keep"].as_array().map(Vec::as_slice).unwrap_or_default();
            let delete = g["delete"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            let mut lines = vec![format!(
                "{whose} {}: keeps {}, would delete {}",
                g["policy"],
                keep.len(),
                delete.len()
            )];
            lines.extend(keep.iter().map(|b| line("keep", b)));
            lines.extend(delete.iter().map(|b| line("delete", b)));
            lines.join("\n")
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}
