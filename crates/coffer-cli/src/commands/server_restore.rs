//! The server-side restores of files from here: `coffer restore upload`
//! (an export into this installation — Terraform Enterprise's migration)
//! and `coffer component download | restore` (one component's native file —
//! FlowG's backup and restore).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::json;

use crate::client::download;
use crate::client::upload::{self, Part};
use crate::client::watch;
use crate::client::{Client, segment};
use crate::commands::Outcome;
use crate::commands::answer::{lines, print, text};
use crate::commands::backup::final_outcome;
use crate::commands::restore_file::RestoreCommand;
use crate::commands::restore_request::RestoreChoices;
use crate::error::{CliError, CliResult};
use crate::output::Output;
use crate::password;

/// Restore an export file into this server's components (talks to the server).
#[derive(Debug, Args)]
pub struct UploadArgs {
    /// The export (a `.coffer` file).
    file: PathBuf,
    /// The export's password: first line of this file (else
    /// COFFER_EXPORT_PASSWORD, else asked on the terminal).
    #[arg(long, value_name = "FILE", conflicts_with = "identity_file")]
    password_file: Option<PathBuf>,
    /// For an export made for an age recipient: the identity file.
    #[arg(long, value_name = "FILE")]
    identity_file: Option<PathBuf>,
    #[command(flatten)]
    how: RestoreChoices,
    /// The login to use (default: the current one).
    #[arg(long)]
    context: Option<String>,
    /// Print the server's JSON answer.
    #[arg(long)]
    pub json: bool,
}

/// A restore's id, and the login to use.
#[derive(Debug, Args)]
pub struct IdArgs {
    /// The restore's id (`restore-…`).
    id: String,
    /// The login to use (default: the current one).
    #[arg(long)]
    context: Option<String>,
    /// Print the server's JSON answer.
    #[arg(long)]
    pub json: bool,
}

/// Which restores to list, and the login to use.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only the restores of this backup (or upload).
    #[arg(long)]
    backup: Option<String>,
    /// The login to use (default: the current one).
    #[arg(long)]
    context: Option<String>,
    /// Print the server's JSON answer.
    #[arg(long)]
    pub json: bool,
}

/// `coffer restore upload | list | show | log | wait`.
pub fn restores(command: RestoreCommand, out: Output) -> CliResult<Outcome> {
    let (args, path) = match command {
        RestoreCommand::Upload(args) => return upload(args, out),
        RestoreCommand::List(args) => {
            let client = Client::from_context(args.context.as_deref())?;
            let path = match &args.backup {
                Some(b) => format!("/api/v1/restores?backup={}", segment(b)),
                None => "/api/v1/restores".to_owned(),
            };
            let answer = client.get(&path)?;
            print(out, &answer, |v| {
                let rows: Vec<String> = lines(v["restores"].as_array()).map(restore_line).collect();
                if rows.is_empty() {
                    "no restores".to_owned()
                } else {
                    rows.join("\n")
                }
            });
            return Ok(Outcome::Done);
        }
        RestoreCommand::Show(args) => {
            let path = format!("/api/v1/restores/{}", segment(&args.id));
            (args, path)
        }
        RestoreCommand::Log(args) => {
            let client = Client::from_context(args.context.as_deref())?;
            let answer = client.get(&format!("/api/v1/restores/{}/log", segment(&args.id)))?;
            print(out, &answer, |v| {
                lines(v["lines"].as_array())
                    .map(|l| format!("{}  {}", text(&l["at"]), text(&l["line"])))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            return Ok(Outcome::Done);
        }
        RestoreCommand::Wait(args) => {
            let client = Client::from_context(args.context.as_deref())?;
            let path = format!("/api/v1/restores/{}", segment(&args.id));
            let done = watch::until_done(&client, &path, "RESTORING", out)?;
            print(out, &done, restore_line);
            return Ok(final_outcome(&done.value));
        }
    };
    let client = Client::from_context(args.context.as_deref())?;
    let answer = client.get(&path)?;
    print(out, &answer, |r| {
        let mut shown = vec![restore_line(r)];
        for c in lines(r["components"].as_array()) {
            let mut row = format!("  {:<16} {}", text(&c["name"]), text(&c["status"]));
            if let Some(err) = c["error"].as_str() {
                row.push_str(&format!(": {err}"));
            }
            for note in lines(c["notes"].as_array()) {
                row.push_str(&format!("\n    {}", text(note)));
            }
            shown.push(row);
        }
        shown.join("\n")
    });
    Ok(Outcome::Done)
}

/// `restore-… READY (of backup …, 2026-…)` and its error.
fn restore_line(r: &serde_json::Value) -> String {
    let mut s = format!(
        "{} {} (of {}, {})",
        text(&r["id"]),
        text(&r["status"]),
        text(&r["backup_id"]),
        text(&r["created_at"])
    );
    if let Some(err) = r["error"].as_str() {
        s.push_str(&format!(": {err}"));
    }
    s
}

pub fn upload(args: UploadArgs, out: Output) -> CliResult<Outcome> {
    let client = Client::from_context(args.context.as_deref())?;
    let mut config = args.how.body()?;
    match &args.identity_file {
        Some(file) => {
            config["identity"] = json!(std::fs::read_to_string(file).map_err(|e| {
                CliError::usage(format!("--identity-file {}: {e}", file.display()))
            })?);
        }
        None => {
            let pw = password::read_from(
                args.password_file.as_deref(),
                "COFFER_EXPORT_PASSWORD",
                "Export password: ",
            )
            .map_err(|e| CliError::usage(format!("{e:#}")))?;
            config["password"] = json!(pw);
        }
    }
    let parts = [
        Part::File {
            name: "snapshot",
            path: &args.file,
        },
        Part::Text {
            name: "config",
            value: config.to_string(),
        },
    ];
    let started = upload::post(&client, "/api/v1/restores", &parts)?;
    let what = format!("of {}", args.file.display());
    args.how.follow(&client, &started, &what, out)
}

/// One component's native backup, taken now, and restores from such a file
/// (talks to the server).
#[derive(Debug, Args)]
pub struct ComponentArgs {
    /// The login to use (default: the current one).
    #[arg(long, global = true)]
    context: Option<String>,
    /// Print the server's JSON answer.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    command: ComponentCommand,
}

#[derive(Debug, Subcommand)]
enum ComponentCommand {
    /// Download a consistent backup of one component in its native form
    /// (a database dump, an SQLite file, a tar), taken now.
    Download {
        /// The component.
        name: String,
        /// Where to write it (default: the name the server gives, here).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Restore one component from such a file.
    Restore {
        /// The component.
        name: String,
        /// The file (as `component download` wrote it).
        file: PathBuf,
        #[command(flatten)]
        how: RestoreChoices,
    },
}

pub fn component(args: ComponentArgs, out: Output) -> CliResult<Outcome> {
    let client = Client::from_context(args.context.as_deref())?;
    match args.command {
        ComponentCommand::Download { name, output } => {
            let path = format!("/api/v1/components/{}/backup", segment(&name));
            let mut stream = client.download(&path, 0)?;
            let dest = output
                .unwrap_or_else(|| PathBuf::from(stream.name.clone().unwrap_or(name.clone())));
            let bytes = save(&mut stream.body, &dest, &client)?;
            out.result(
                &json!({ "component": name, "file": dest, "size": bytes }),
                |_| {
                    format!(
                        "{}: {} of component {name}",
                        dest.display(),
                        crate::output::human_bytes(bytes)
                    )
                },
            );
            Ok(Outcome::Done)
        }
        ComponentCommand::Restore { name, file, how } => {
            let parts = [
                Part::File {
                    name: "backup",
                    path: &file,
                },
                Part::Text {
                    name: "options",
                    value: how.options().to_string(),
                },
            ];
            let path = format!("/api/v1/components/{}/restore", segment(&name));
            let started = upload::post(&client, &path, &parts)?;
            how.follow(&client, &started, &format!("of component {name}"), out)
        }
    }
}

/// Writes the body to `dest` through `<dest>.part`, renamed only once the
/// server ended the body properly: a cut download leaves no file that looks whole.
fn save(body: &mut impl std::io::Read, dest: &Path, client: &Client) -> CliResult<u64> {
    let part = download::part_path(dest);
    let fail =
        |e: std::io::Error| CliError::failure("io", format!("writing {}: {e}", part.display()));
    let mut file = download::open_part(&part, false).map_err(fail)?;
    let copied = std::io::copy(body, &mut file);
    let bytes = match copied {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(CliError::failure(
                "interrupted",
                format!(
                    "the download from {} was cut ({e}): nothing was kept",
                    client.url()
                ),
            ));
        }
    };
    file.sync_all().map_err(fail)?;
    download::put_in_place(&part, dest).map_err(fail)?;
    Ok(bytes)
}
