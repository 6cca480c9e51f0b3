//! `coffer backup …`: a server's backups through its API — start (and
//! follow), list, show, log, cancel, delete. The DC/OS `dcos backup` and
//! Auth0 `a0cli backup` sequences map onto these (docs/cli.md).

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::client::{Client, segment, watch};
use crate::commands::Outcome;
use crate::commands::answer::{lines, print, size, text};
use crate::commands::input::typed_value;
use crate::commands::restore_request::RestoreChoices;
use crate::error::{CliError, CliResult};
use crate::output::Output;
use crate::password;

/// Backups on a Coffer server (talks to the server: `coffer login` or COFFER_URL first).
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The login to use (default: the current one).
    #[arg(long, global = true)]
    context: Option<String>,
    /// Print the server's JSON answer.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    command: BackupCommand,
}

#[derive(Debug, Subcommand)]
enum BackupCommand {
    /// Start a backup (202); with --wait, follow it to READY (exit 0) or ERROR (exit 5).
    Create {
        /// The backup's label (3–25 of A-Z a-z 0-9 _ . -; the server's default
        /// with --password-file alone).
        #[arg(long)]
        label: Option<String>,
        /// A component to back up (repeat; default every one the login may touch).
        #[arg(long = "component")]
        components: Vec<String>,
        /// The target (default: the server's default target).
        #[arg(long)]
        target: Option<String>,
        /// Also export it once READY, encrypted with a password: the first line
        /// of this file (Terraform Enterprise's and Auth0's backup with a password).
        #[arg(long)]
        password_file: Option<std::path::PathBuf>,
        /// Back up only the sensitive components, straight into an export
        /// encrypted with --password-file (Auth0's `backup-sensitive`).
        #[arg(long, requires = "password_file")]
        sensitive: bool,
        /// Wait for the end (and the export's), showing each component's progress.
        #[arg(long)]
        wait: bool,
    },
    /// List backups, newest first.
    List {
        /// Only this label.
        label: Option<String>,
        /// Only this state (BACKING_UP, READY, ERROR).
        #[arg(long)]
        status: Option<String>,
    },
    /// One backup: its components' states, sizes and errors, and its restores.
    Show {
        /// The backup's id.
        id: String,
    },
    /// The backup's log: hooks and their output, each component's start and end.
    Log {
        /// The backup's id.
        id: String,
    },
    /// Stop a running backup (it ends ERROR "cancelled").
    Cancel {
        /// The backup's id.
        id: String,
    },
    /// Delete a backup: its snapshots and its record (space freed by the next prune).
    Delete {
        /// The backup's id.
        id: String,
    },
    /// List one directory of a files component in a backup (like `ls -l`).
    Ls {
        /// The backup's id.
        id: String,
        /// The component (a files component).
        component: String,
        /// The directory, relative to the component's top (default: the top).
        path: Option<String>,
    },
    /// Pin a backup: retention never deletes it.
    Pin {
        /// The backup's id.
        id: String,
    },
    /// Unpin a backup: retention decides again.
    Unpin {
        /// The backup's id.
        id: String,
    },
    /// Follow a running backup to READY (exit 0) or ERROR (exit 5).
    Wait {
        /// The backup's id.
        id: String,
    },
    /// Restore a READY backup, all of it or some components; with --wait, follow it
    /// to READY (exit 0) or ERROR (exit 5).
    Restore(RestoreArgs),
    /// Export a READY backup into one portable, encrypted `.coffer` file (then
    /// `coffer export download`); with --wait, follow it to READY or ERROR.
    Export {
        /// The backup's id.
        id: String,
        /// Encrypt with a password: the first line of this file (else
        /// COFFER_EXPORT_PASSWORD, else asked on the terminal).
        #[arg(long, conflicts_with = "age_recipient")]
        password_file: Option<std::path::PathBuf>,
        /// Encrypt to this age public key (`age1…`) instead; repeat for several.
        #[arg(long)]
        age_recipient: Vec<String>,
        /// Export only the sensitive (sealed) components, as a file of their own.
        #[arg(long)]
        sensitive: bool,
        /// Wait for the end.
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Debug, Args)]
struct RestoreArgs {
    /// The backup's id.
    id: String,
    #[command(flatten)]
    how: RestoreChoices,
}

pub fn run(args: BackupArgs, out: Output) -> CliResult<Outcome> {
    let client = Client::from_context(args.context.as_deref())?;
    match args.command {
        BackupCommand::Create {
            label,
            components,
            target,
            password_file,
            sensitive,
            wait,
        } => {
            let mut body = json!({});
            if let Some(l) = label {
                body["label"] = json!(l);
            }
            if !components.is_empty() {
                body["components"] = json!(components);
            }
            if let Some(t) = target {
                body["target"] = json!(t);
            }
            if let Some(file) = &password_file {
                body["password"] = json!(
                    password::read_from(Some(file), "COFFER_EXPORT_PASSWORD", "")
                        .map_err(|e| CliError::usage(format!("{e:#}")))?
                );
            }
            if sensitive {
                body["sensitive"] = json!(true);
            }
            let started = client.post("/api/v1/backups", Some(&body))?;
            let Some(id) = started.value["id"].as_str() else {
                print(out, &started, |v| format!("started: {v}"));
                return Ok(Outcome::Done);
            };
            let export = started.value["export_id"].as_str();
            if !wait {
                print(out, &started, |v| {
                    let mut s = format!("backup {id} started ({})", text(&v["status"]));
                    if let Some(e) = export {
                        s.push_str(&format!("; its export: {e}"));
                    }
                    s
                });
                return Ok(Outcome::Done);
            }
            if !out.json {
                println!("backup {id} started");
            }
            // A sensitive backup with a password has no backup record: only its export.
            if !sensitive {
                let path = format!("/api/v1/backups/{}", segment(id));
                let done = watch::until_done(&client, &path, "BACKING_UP", out)?;
                if export.is_none() || final_outcome(&done.value) != Outcome::Done {
                    print(out, &done, summary);
                    return Ok(final_outcome(&done.value));
                }
                if !out.json {
                    println!("{}", summary(&done.value));
                }
            }
            match export {
                Some(e) => follow_export(&client, e, out),
                None => Ok(Outcome::Done),
            }
        }
        BackupCommand::List { label, status } => {
            let mut query = Vec::new();
            if let Some(l) = label {
                query.push(format!("label={}", segment(&l)));
            }
            if let Some(s) = status {
                query.push(format!("status={}", segment(&s)));
            }
            let path = if query.is_empty() {
                "/api/v1/backups".to_owned()
            } else {
                format!("/api/v1/backups?{}", query.join("&"))
            };
            let answer = client.get(&path)?;
            print(out, &answer, list);
            Ok(Outcome::Done)
        }
        BackupCommand::Show { id } => {
            let answer = client.get(&format!("/api/v1/backups/{}", segment(&id)))?;
            print(out, &answer, detail);
            Ok(Outcome::Done)
        }
        BackupCommand::Log { id } => {
            let answer = client.get(&format!("/api/v1/backups/{}/log", segment(&id)))?;
            print(out, &answer, |v| {
                lines(v["lines"].as_array())
                    .map(|l| format!("{}  {}", text(&l["at"]), text(&l["line"])))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(Outcome::Done)
        }
        BackupCommand::Cancel { id } => {
            let answer = client.post(&format!("/api/v1/backups/{}/cancel", segment(&id)), None)?;
            print(out, &answer, |_| format!("cancelling backup {id}"));
            Ok(Outcome::Done)
        }
        BackupCommand::Delete { id } => {
            let answer = client.delete(&format!("/api/v1/backups/{}", segment(&id)))?;
            print(out, &answer, |v| {
                format!(
                    "deleted backup {id}: {} snapshots removed; {}",
                    v["snapshots_removed"],
                    text(&v["space"])
                )
            });
            Ok(Outcome::Done)
        }
        BackupCommand::Restore(args) => restore(&client, args, out),
        BackupCommand::Ls {
            id,
            component,
            path,
        } => {
            let mut url = format!(
                "/api/v1/backups/{}/components/{}/tree",
                segment(&id),
                segment(&component)
            );
            if let Some(p) = &path {
                url.push_str(&format!("?path={}", segment(p)));
            }
            let answer = client.get(&url)?;
            print(out, &answer, listing);
            Ok(Outcome::Done)
        }
        BackupCommand::Pin { id } => pin(&client, &id, true, out),
        BackupCommand::Unpin { id } => pin(&client, &id, false, out),
        BackupCommand::Wait { id } => {
            let path = format!("/api/v1/backups/{}", segment(&id));
            let done = watch::until_done(&client, &path, "BACKING_UP", out)?;
            print(out, &done, summary);
            Ok(final_outcome(&done.value))
        }
        BackupCommand::Export {
            id,
            password_file,
            age_recipient,
            sensitive,
            wait,
        } => {
            let mut body = if age_recipient.is_empty() {
                let pw = password::read_from(
                    password_file.as_deref(),
                    "COFFER_EXPORT_PASSWORD",
                    "Export password: ",
                )
                .map_err(|e| CliError::usage(format!("{e:#}")))?;
                json!({ "password": pw })
            } else {
                json!({ "age_recipient": age_recipient })
            };
            if sensitive {
                body["sensitive"] = json!(true);
            }
            let path = format!("/api/v1/backups/{}/exports", segment(&id));
            let started = client.post(&path, Some(&body))?;
            let Some(export) = started.value["id"].as_str() else {
                print(out, &started, |v| format!("started: {v}"));
                return Ok(Outcome::Done);
            };
            if !wait {
                print(out, &started, |_| {
                    format!("export {export} of backup {id} started")
                });
                return Ok(Outcome::Done);
            }
            follow_export(&client, export, out)
        }
    }
}

/// Follows export `id` to its end; prints it.
fn follow_export(client: &Client, id: &str, out: Output) -> CliResult<Outcome> {
    let path = format!("/api/v1/exports/{}", segment(id));
    let done = watch::until_done(client, &path, "EXPORTING", out)?;
    print(out, &done, |e| {
        let mut s = format!("export {}: {}", text(&e["id"]), text(&e["status"]));
        match e["error"].as_str() {
            Some(err) => s.push_str(&format!(": {err}")),
            None => s.push_str(&format!(
                " ({}, {}; SHA-256 {}) — coffer export download {}",
                text(&e["name"]),
                size(&e["size"]),
                text(&e["sha256"]),
                text(&e["id"])
            )),
        }
        s
    });
    Ok(final_outcome(&done.value))
}

fn pin(client: &Client, id: &str, pinned: bool, out: Output) -> CliResult<Outcome> {
    let path = format!("/api/v1/backups/{}", segment(id));
    let answer = client.put(&path, &json!({ "pinned": pinned }))?;
    print(out, &answer, |_| {
        if pinned {
            format!("pinned backup {id}: retention never deletes it")
        } else {
            format!("unpinned backup {id}: retention decides again")
        }
    });
    Ok(Outcome::Done)
}

fn restore(client: &Client, args: RestoreArgs, out: Output) -> CliResult<Outcome> {
    let body = args.how.body()?;
    let id = &args.id;
    let started = client.post(
        &format!("/api/v1/backups/{}/restore", segment(id)),
        Some(&body),
    )?;
    args.how
        .follow(client, &started, &format!("of backup {id}"), out)
}

/// `COMPONENT.FIELD=VALUE` of `--set` (the value as [`typed_value`]).
pub fn parse_set(set: &str) -> CliResult<(String, String, Value)> {
    let bad = || {
        CliError::usage(format!(
            "--set {set:?}: give COMPONENT.FIELD=VALUE, e.g. db.database=app_restored"
        ))
    };
    let (target, value) = set.split_once('=').ok_or_else(bad)?;
    let (component, field) = target.split_once('.').ok_or_else(bad)?;
    if component.is_empty() || field.is_empty() {
        return Err(bad());
    }
    Ok((component.to_owned(), field.to_owned(), typed_value(value)))
}

/// READY is done; anything else a followed job ends in failed somewhere.
pub fn final_outcome(backup: &Value) -> Outcome {
    if backup["status"].as_str() == Some("READY") {
        Outcome::Done
    } else {
        Outcome::Partial
    }
}

/// A directory as `ls -l` shows it: kind and mode, size, time, name.
fn listing(v: &Value) -> String {
    let rows: Vec<String> = lines(v["entries"].as_array())
        .map(|e| {
            let kind = text(&e["kind"]);
            let mut name = text(&e["name"]).to_owned();
            match kind {
                "dir" => name.push('/'),
                "symlink" => name.push_str(&format!(" -> {}", text(&e["link_target"]))),
                _ => {}
            }
            format!(
                "{}{:04o} {:>10} {:<21} {name}",
                kind.chars().next().unwrap_or('?'),
                e["mode"].as_u64().unwrap_or(0) & 0o7777,
                size(&e["size"]),
                text(&e["mtime"]),
            )
        })
        .collect();
    if rows.is_empty() {
        return "(empty directory)".to_owned();
    }
    rows.join("\n")
}

fn summary(b: &Value) -> String {
    let mut s = format!("backup {}: {}", text(&b["id"]), text(&b["status"]));
    if let Some(err) = b["error"].as_str() {
        s.push_str(&format!(": {err}"));
    }
    s
}

fn list(v: &Value) -> String {
    let rows: Vec<String> = lines(v["backups"].as_array())
        .map(|b| {
            format!(
                "{:<48} {:<11} {:<21} {:>10}  {}",
                text(&b["id"]),
                text(&b["status"]),
                text(&b["created_at"]),
                size(&b["bytes"]),
                lines(b["components"].as_array())
                    .map(|c| text(&c["name"]))
                    .collect::<Vec<_>>()
                    .join(",")
            )
        })
        .collect();
    if rows.is_empty() {
        return "no backups".to_owned();
    }
    let header = format!(
        "{:<48} {:<11} {:<21} {:>10}  COMPONENTS",
        "ID", "STATUS", "CREATED", "SIZE"
    );
    format!("{header}\n{}", rows.join("\n"))
}

fn detail(b: &Value) -> String {
    let mut s = vec![
        summary(b),
        format!(
            "  label {}, target {}, created {}, finished {}, {} ({} added)",
            text(&b["label"]),
            text(&b["target"]),
            text(&b["created_at"]),
            text(&b["finished_at"]),
            size(&b["bytes"]),
            size(&b["bytes_added"])
        ),
        "  components:".to_owned(),
    ];
    for c in lines(b["components"].as_array()) {
        let mut row = format!(
            "    {:<16} {:<10} {:<11} {:>10} {:>6} files",
            text(&c["name"]),
            text(&c["kind"]),
            text(&c["status"]),
            size(&c["bytes"]),
            c["files"].as_u64().unwrap_or(0)
        );
        if let Some(err) = c["error"].as_str() {
            row.push_str(&format!("  {err}"));
        }
        s.push(row);
    }
    let restores: Vec<&Value> = lines(b["restores"].as_array()).collect();
    if !restores.is_empty() {
        s.push("  restores:".to_owned());
        for r in restores {
            let states = r["component_status"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k} {}", text(v)))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            s.push(format!(
                "    {} {} {} ({states})",
                text(&r["id"]),
                text(&r["status"]),
                text(&r["created_at"])
            ));
        }
    }
    s.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_parse_into_fields_and_values() {
        let (c, f, v) = parse_set("db.database=app_restored").unwrap();
        assert_eq!(
            (c.as_str(), f.as_str(), v),
            ("db", "database", json!("app_restored"))
        );
        assert_eq!(parse_set("db.port=5433").unwrap().2, json!(5433));
        assert_eq!(parse_set("db.create=false").unwrap().2, json!(false));
        assert_eq!(parse_set("db.database=\"2024\"").unwrap().2, json!("2024"));
        assert_eq!(parse_set("up.path=/srv/a=b").unwrap().2, json!("/srv/a=b"));
        for bad in ["db", "db=1", ".x=1", "db.=1", "=1"] {
            assert!(parse_set(bad).is_err(), "{bad}");
        }
    }
}
