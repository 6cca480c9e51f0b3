//! `coffer target …`: a server's targets through its API — Palette's form
//! from a terminal: fill in, the Validate probe runs, the target is saved
//! only if every step passed (the report is printed either way).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::client::{Client, segment};
use crate::commands::Outcome;
use crate::commands::answer::{print, text};
use crate::commands::input;
use crate::error::CliResult;
use crate::output::Output;

/// Targets on a Coffer server (talks to the server: `coffer login` or COFFER_URL first).
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// The login to use (default: the current one).
    #[arg(long, global = true)]
    context: Option<String>,
    /// Print the server's JSON answer.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    command: TargetCommand,
}

#[derive(Debug, Subcommand)]
enum TargetCommand {
    /// Add a target: its Validate probe runs first, and a target that fails
    /// a step is not saved (the report says which; exit 1).
    Add(AddArgs),
    /// Every target: kind, mode, default, backups, warnings.
    List,
    /// One target, secrets shown as ***.
    Show {
        /// The target's name.
        name: String,
    },
    /// Run a saved target's Validate probe again (exit 1 if a step fails).
    Validate {
        /// The target's name.
        name: String,
    },
    /// Remove a target from the server's catalog (its repository is left alone).
    Rm {
        /// The target's name.
        name: String,
    },
}

#[derive(Debug, Args)]
struct AddArgs {
    /// The target's name.
    name: String,
    /// local, s3, sftp or ftp.
    #[arg(long)]
    kind: Option<String>,
    /// The settings as JSON (the API's `spec`, e.g. {"kind": "ftp", "host": …}).
    #[arg(long, value_name = "FILE")]
    spec_file: Option<PathBuf>,
    /// A setting, FIELD=VALUE (repeat), over the spec file: host=ftp.example.net,
    /// port=21, directory=/backups/app1 (docs/targets.md).
    #[arg(long = "set", value_name = "FIELD=VALUE")]
    settings: Vec<String>,
    /// A secret setting from the first line of a file, FIELD=FILE (repeat):
    /// password=/run/secrets/ftp — never a secret on the command line.
    #[arg(long = "secret", value_name = "FIELD=FILE")]
    secrets: Vec<String>,
    /// The repository's password: the first line of this file (required for
    /// an existing repository; for a new one the server generates one and
    /// shows it once).
    #[arg(long, value_name = "FILE")]
    repository_password_file: Option<PathBuf>,
    /// own (backups, deletes, pruning) or attach (list and restore only).
    #[arg(long, value_parser = ["own", "attach"])]
    mode: Option<String>,
    /// Make it the default target: backups that name none go there.
    #[arg(long)]
    default: bool,
}

pub fn run(args: TargetArgs, out: Output) -> CliResult<Outcome> {
    let client = Client::from_context(args.context.as_deref())?;
    match args.command {
        TargetCommand::Add(add) => add_target(&client, add, out),
        TargetCommand::List => {
            let answer = client.get("/api/v1/targets")?;
            print(out, &answer, |v| {
                let rows: Vec<String> = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| {
                        let mut row = format!(
                            "{:<16} {:<6} {:<7} {:<8} {:>5} backups",
                            text(&t["name"]),
                            text(&t["kind"]),
                            text(&t["mode"]),
                            if t["default"] == true { "default" } else { "" },
                            t["backups"].as_u64().unwrap_or(0)
                        );
                        if let Some(w) = t["warning"].as_str() {
                            row.push_str(&format!("\n  warning: {w}"));
                        }
                        row
                    })
                    .collect();
                rows.join("\n")
            });
            Ok(Outcome::Done)
        }
        TargetCommand::Show { name } => {
            let answer = client.get(&format!("/api/v1/targets/{}", segment(&name)))?;
            print(out, &answer, |t| {
                serde_json::to_string_pretty(t).unwrap_or_default()
            });
            Ok(Outcome::Done)
        }
        TargetCommand::Validate { name } => {
            let path = format!("/api/v1/targets/{}/validate", segment(&name));
            let answer = client.post(&path, None)?;
            print(out, &answer, checklist);
            Ok(verdict(&answer.value))
        }
        TargetCommand::Rm { name } => {
            let answer = client.delete(&format!("/api/v1/targets/{}", segment(&name)))?;
            print(out, &answer, |_| {
                format!("removed target {name} (its repository is untouched)")
            });
            Ok(Outcome::Done)
        }
    }
}

fn add_target(client: &Client, add: AddArgs, out: Output) -> CliResult<Outcome> {
    let mut spec = input::spec_file(add.spec_file.as_deref())?;
    if let Some(kind) = &add.kind {
        spec["kind"] = json!(kind);
    }
    for set in &add.settings {
        let (field, value) = input::pair(set, "--set", "FIELD=VALUE")?;
        spec[field] = input::typed_value(value);
    }
    for secret in &add.secrets {
        let (field, file) = input::pair(secret, "--secret", "FIELD=FILE")?;
        spec[field] = json!(input::first_line(Path::new(file), "--secret")?);
    }
    let mut body = json!({ "name": add.name, "spec": spec });
    if let Some(file) = &add.repository_password_file {
        body["repository_password"] = json!(input::first_line(file, "--repository-password-file")?);
    }
    if let Some(mode) = &add.mode {
        body["mode"] = json!(mode);
    }
    if add.default {
        body["default"] = json!(true);
        body["confirm_default"] = json!(true);
    }
    let (status, answer) = client.post_any("/api/v1/targets", &body)?;
    if status == 422 && answer.value["error"] == "validation_failed" {
        // Palette's Validate: every step shown, nothing saved.
        print(out, &answer, |v| {
            format!(
                "{}\ntarget {} NOT saved",
                checklist(&v["validation"]),
                add.name
            )
        });
        return Ok(Outcome::Failed);
    }
    if status >= 400 {
        return Err(client.refused(status, &answer.text));
    }
    print(out, &answer, |v| {
        let mut s = format!("{}\nsaved target {}", checklist(&v["validation"]), add.name);
        if let Some(pw) = v["repository_password"].as_str() {
            s.push_str(&format!(
                "\n\nRepository password (generated, shown once):\n\n    {pw}\n\n{}",
                text(&v["notice"])
            ));
        }
        s
    });
    Ok(Outcome::Done)
}

/// A Validate report, one line per step, then the verdict.
fn checklist(report: &Value) -> String {
    let mut s = format!("validating {}\n", text(&report["location"]));
    for step in report["steps"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "{:<8} {:<40} {:>6} ms  {}\n",
            text(&step["status"]),
            text(&step["name"]),
            step["duration_ms"].as_u64().unwrap_or(0),
            text(&step["message"])
        ));
    }
    s.push_str(if report["ok"] == true {
        "the target can be used"
    } else {
        "the target CANNOT be used as it is"
    });
    s
}

fn verdict(report: &Value) -> Outcome {
    if report["ok"] == true {
        Outcome::Done
    } else {
        Outcome::Failed
    }
}
