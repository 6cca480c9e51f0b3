//! `coffer schedule …`: a server's schedules through its API — Palette's
//! schedule form (every N days at these UTC hours, kept N days, to this
//! location), cron and intervals; what each due time became; run one now;
//! what its retention would delete.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::client::{Client, segment, watch};
use crate::commands::Outcome;
use crate::commands::answer::{print, text};
use crate::commands::input;
use crate::error::CliResult;
use crate::output::Output;

/// Schedules on a Coffer server (talks to the server: `coffer login` or COFFER_URL first).
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// The login to use (default: the current one).
    #[arg(long, global = true)]
    context: Option<String>,
    /// Print the server's JSON answer.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    command: ScheduleCommand,
}

#[derive(Debug, Subcommand)]
enum ScheduleCommand {
    /// Add a schedule (422 naming the field for a bad one; nothing recorded).
    Add(Box<AddArgs>),
    /// Every schedule: when it runs next, its last run and last success.
    List,
    /// One schedule and what its newest due times became.
    Show {
        /// The schedule's name.
        name: String,
    },
    /// Start a run now; with --wait, follow it to READY (exit 0) or ERROR (exit 5).
    Run {
        /// The schedule's name.
        name: String,
        /// Wait for the end.
        #[arg(long)]
        wait: bool,
    },
    /// What retention would keep (and why) and delete now — one schedule's
    /// policy, one label's, or all; nothing is deleted.
    Preview {
        /// Only this schedule's policy.
        #[arg(conflicts_with = "label")]
        name: Option<String>,
        /// Only this label's policy.
        #[arg(long)]
        label: Option<String>,
    },
    /// Delete a schedule (its backups stay).
    Rm {
        /// The schedule's name.
        name: String,
    },
}

#[derive(Debug, Args)]
struct AddArgs {
    /// The schedule's name.
    name: String,
    /// The whole spec as JSON (the same fields as `[[schedules]]`, docs/schedules.md).
    #[arg(long, value_name = "FILE")]
    spec_file: Option<PathBuf>,
    /// Palette's form: every N days…
    #[arg(long, value_name = "N")]
    every_days: Option<u64>,
    /// …at these UTC hours (0–23), e.g. 3,15.
    #[arg(long, value_name = "H,H…", value_delimiter = ',')]
    hours_utc: Vec<u8>,
    /// Or a cron expression (5 fields), in --time-zone.
    #[arg(long)]
    cron: Option<String>,
    /// The IANA time zone of --cron (default UTC).
    #[arg(long)]
    time_zone: Option<String>,
    /// Or every N seconds (at least 60).
    #[arg(long, value_name = "SECS")]
    every_secs: Option<u64>,
    /// Its backups' label (default: the name, if a valid label).
    #[arg(long)]
    label: Option<String>,
    /// A component to back up (repeat; default every one).
    #[arg(long = "component")]
    components: Vec<String>,
    /// The target (default: the default target when each run starts).
    #[arg(long)]
    target: Option<String>,
    /// Retention: keep backups younger than N days (Palette's retention period).
    #[arg(long, value_name = "N")]
    keep_days: Option<u64>,
    /// Any other field, FIELD=VALUE (repeat): jitter_secs=300, enabled=false…
    #[arg(long = "set", value_name = "FIELD=VALUE")]
    settings: Vec<String>,
}

pub fn run(args: ScheduleArgs, out: Output) -> CliResult<Outcome> {
    let client = Client::from_context(args.context.as_deref())?;
    match args.command {
        ScheduleCommand::Add(add) => {
            let body = spec(*add)?;
            let answer = client.post("/api/v1/schedules", Some(&body))?;
            print(out, &answer, |s| {
                format!(
                    "added schedule {}: next run {}",
                    text(&s["name"]),
                    text(&s["next_run"])
                )
            });
        }
        ScheduleCommand::List => {
            let answer = client.get("/api/v1/schedules")?;
            print(out, &answer, |v| {
                let rows: Vec<String> = v["schedules"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| {
                        format!(
                            "{:<20} next {:<21} last {} {}  last success {}",
                            text(&s["name"]),
                            text(&s["next_run"]),
                            text(&s["last_run"]["outcome"]),
                            text(&s["last_run"]["backup_status"]),
                            text(&s["last_success"]["finished_at"])
                        )
                    })
                    .collect();
                if rows.is_empty() {
                    "no schedules".to_owned()
                } else {
                    rows.join("\n")
                }
            });
        }
        ScheduleCommand::Show { name } => {
            let answer = client.get(&format!("/api/v1/schedules/{}", segment(&name)))?;
            print(out, &answer, |s| {
                let mut lines = vec![format!(
                    "schedule {}{}: next run {}\n  spec {}",
                    text(&s["name"]),
                    if s["enabled"] == false {
                        " (paused)"
                    } else {
                        ""
                    },
                    text(&s["next_run"]),
                    s["spec"]
                )];
                for r in s["runs"].as_array().into_iter().flatten() {
                    lines.push(format!(
                        "  {} {:<8} {} {}",
                        text(&r["due_at"]),
                        text(&r["outcome"]),
                        text(&r["backup_id"]),
                        r["reason"].as_str().unwrap_or("")
                    ));
                }
                lines.join("\n")
            });
        }
        ScheduleCommand::Run { name, wait } => {
            let path = format!("/api/v1/schedules/{}/run", segment(&name));
            let started = client.post(&path, None)?;
            let id = text(&started.value["id"]).to_owned();
            let status = text(&started.value["status"]).to_owned();
            // A backup schedule starts a backup; a drill schedule a drill.
            let follow = match status.as_str() {
                "BACKING_UP" => Some(("backups", "BACKING_UP")),
                "DRILLING" => Some(("drills", "DRILLING")),
                _ => None,
            };
            let Some((kind, running)) = follow.filter(|_| wait) else {
                print(out, &started, |_| {
                    format!("schedule {name} started {id} ({status})")
                });
                return Ok(Outcome::Done);
            };
            if !out.json {
                println!("schedule {name} started {id}");
            }
            let done = watch::until_done(
                &client,
                &format!("/api/v1/{kind}/{}", segment(&id)),
                running,
                out,
            )?;
            print(out, &done, |v| format!("{id}: {}", text(&v["status"])));
            if done.value["status"] != "READY" {
                return Ok(Outcome::Partial);
            }
        }
        ScheduleCommand::Preview { name, label } => {
            let path = match (name, label) {
                (Some(n), _) => format!("/api/v1/retention/preview?schedule={}", segment(&n)),
                (None, Some(l)) => format!("/api/v1/retention/preview?label={}", segment(&l)),
                (None, None) => "/api/v1/retention/preview".to_owned(),
            };
            let answer = client.get(&path)?;
            print(out, &answer, crate::commands::retention::text);
        }
        ScheduleCommand::Rm { name } => {
            let answer = client.delete(&format!("/api/v1/schedules/{}", segment(&name)))?;
            print(out, &answer, |_| {
                format!("deleted schedule {name} (its backups stay)")
            });
        }
    }
    Ok(Outcome::Done)
}

/// The schedule's JSON: the spec file, then the flags over it.
fn spec(add: AddArgs) -> CliResult<Value> {
    let mut spec = input::spec_file(add.spec_file.as_deref())?;
    spec["name"] = json!(add.name);
    let mut put = |field: &str, value: Option<Value>| {
        if let Some(v) = value {
            spec[field] = v;
        }
    };
    put("every_days", add.every_days.map(|v| json!(v)));
    put(
        "hours_utc",
        (!add.hours_utc.is_empty()).then(|| json!(add.hours_utc)),
    );
    put("cron", add.cron.map(|v| json!(v)));
    put("time_zone", add.time_zone.map(|v| json!(v)));
    put("every_secs", add.every_secs.map(|v| json!(v)));
    put("label", add.label.map(|v| json!(v)));
    put(
        "components",
        (!add.components.is_empty()).then(|| json!(add.components)),
    );
    put("target", add.target.map(|v| json!(v)));
    put(
        "retention",
        add.keep_days.map(|d| json!({ "keep_days": d })),
    );
    for set in &add.settings {
        let (field, value) = input::pair(set, "--set", "FIELD=VALUE, e.g. jitter_secs=300")?;
        spec[field] = input::typed_value(value);
    }
    Ok(spec)
}
