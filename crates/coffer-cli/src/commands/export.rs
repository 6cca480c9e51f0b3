//! `coffer export …`: a server's exports — list a backup's, show one,
//! download it (resumed, verified), delete it. `coffer backup export` makes
//! one. Auth0's `backup-retrieve` plus its md5 check is `export download`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::client::download::{self, Expected};
use crate::client::{Client, segment};
use crate::commands::answer::{print, size, text};
use crate::error::{CliError, CliResult};
use crate::exit::ExitCode;
use crate::output::Output;

/// Exports on a Coffer server (talks to the server: `coffer login` or COFFER_URL first).
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The login to use (default: the current one).
    #[arg(long, global = true)]
    context: Option<String>,
    /// Print the server's JSON answer.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    command: ExportCommand,
}

#[derive(Debug, Subcommand)]
enum ExportCommand {
    /// A backup's exports.
    List {
        /// The backup's id.
        backup: String,
    },
    /// One export: state, size, SHA-256 and MD5, expiry.
    Show {
        /// The export's id.
        id: String,
    },
    /// Download an export and check it against the server's SHA-256 and MD5;
    /// an interrupted download resumes where it stopped when run again.
    Download {
        /// The export's id.
        id: String,
        /// Where to write it (default: the export's name, here).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Delete an export's file and record.
    Delete {
        /// The export's id.
        id: String,
    },
}

pub fn run(args: ExportArgs, out: Output) -> CliResult {
    let client = Client::from_context(args.context.as_deref())?;
    match args.command {
        ExportCommand::List { backup } => {
            let answer = client.get(&format!("/api/v1/backups/{}/exports", segment(&backup)))?;
            print(out, &answer, |v| {
                let rows: Vec<String> = v["exports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(summary)
                    .collect();
                if rows.is_empty() {
                    "no exports".to_owned()
                } else {
                    rows.join("\n")
                }
            });
        }
        ExportCommand::Show { id } => {
            let answer = client.get(&format!("/api/v1/exports/{}", segment(&id)))?;
            print(out, &answer, |e| {
                format!(
                    "{}\n  backup {}, components {}, {} protection, expires {}\n  SHA-256 {}\n  MD5     {}",
                    summary(e),
                    text(&e["backup_id"]),
                    e["components"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(text)
                        .collect::<Vec<_>>()
                        .join(","),
                    text(&e["protection"]),
                    text(&e["expires_at"]),
                    text(&e["sha256"]),
                    text(&e["md5"]),
                )
            });
        }
        ExportCommand::Download { id, output, force } => {
            download_export(&client, &id, output, force, out)?;
        }
        ExportCommand::Delete { id } => {
            let answer = client.delete(&format!("/api/v1/exports/{}", segment(&id)))?;
            print(out, &answer, |_| format!("deleted export {id}"));
        }
    }
    Ok(())
}

fn download_export(
    client: &Client,
    id: &str,
    output: Option<PathBuf>,
    force: bool,
    out: Output,
) -> CliResult {
    let record = client
        .get(&format!("/api/v1/exports/{}", segment(id)))?
        .value;
    match text(&record["status"]) {
        "READY" => {}
        "EXPORTING" => {
            return Err(CliError::new(
                ExitCode::Conflict,
                "conflict",
                format!(
                    "export {id} is still being written: wait for READY (coffer export show {id})"
                ),
            ));
        }
        status => {
            return Err(CliError::failure(
                "not_ready",
                format!(
                    "export {id} is {status}, nothing to download: {}",
                    text(&record["error"])
                ),
            ));
        }
    }
    let expected = Expected {
        size: record["size"].as_u64().unwrap_or(0),
        sha256: text(&record["sha256"]).to_owned(),
        md5: text(&record["md5"]).to_owned(),
    };
    let dest = match output {
        Some(path) => path,
        None => PathBuf::from(file_name(text(&record["name"]))?),
    };
    if dest.exists() && !force {
        return Err(CliError::usage(format!(
            "{} exists: give another -o or --force to replace it",
            dest.display()
        )));
    }
    // The download route answers 409 while the export is not READY, 410 once it expired.
    let path = format!("/api/v1/exports/{}/download", segment(id));
    let fetched = download::fetch(client, &path, &dest, &expected, out)?;
    let shown = json!({
        "id": id,
        "file": dest,
        "size": fetched.digests.size,
        "sha256": fetched.digests.sha256,
        "md5": fetched.digests.md5,
        "resumed_at": fetched.resumed_at,
        "verified": true,
    });
    out.result(&shown, |v| {
        let resumed = match fetched.resumed_at {
            0 => String::new(),
            at => format!(", resumed at byte {at}"),
        };
        format!(
            "{}: {}{resumed}; SHA-256 {} and MD5 {} match the server's",
            dest.display(),
            size(&v["size"]),
            text(&v["sha256"]),
            text(&v["md5"])
        )
    });
    Ok(())
}

/// The server's name for the file, as a plain name in the current
/// directory: a name with a path in it is refused, not followed.
fn file_name(name: &str) -> CliResult<&str> {
    download::plain_name(name).ok_or_else(|| {
        CliError::failure(
            "bad_answer",
            format!("the server named the export {name:?}, not a plain file name: give -o FILE"),
        )
    })
}

fn summary(e: &Value) -> String {
    let mut s = format!(
        "{} {} {} {}",
        text(&e["id"]),
        text(&e["status"]),
        text(&e["name"]),
        size(&e["size"])
    );
    if let Some(err) = e["error"].as_str() {
        s.push_str(&format!(": {err}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_from_the_server_are_used() {
        assert_eq!(file_name("nightly-1.coffer").unwrap(), "nightly-1.coffer");
        for bad in [
            "",
            "../x.coffer",
            "/etc/passwd",
            "a/b",
            ".hidden",
            "..",
            ".",
        ] {
            assert!(file_name(bad).is_err(), "{bad}");
        }
    }
}
