//! `coffer repo key add | list | remove`: the repository's passwords.

use std::path::PathBuf;

use clap::Subcommand;
use coffer_engine::Repo;

use crate::error::{CliError, CliResult};
use crate::output::{Output, short_id};
use crate::password;

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Add a password; it will open the repository too.
    Add {
        /// Read the new password from this file (else COFFER_NEW_PASSWORD, else a prompt).
        #[arg(long, value_name = "FILE")]
        new_password_file: Option<PathBuf>,
    },
    /// List the keys.
    List,
    /// Remove a key by id (or unique prefix).
    Remove {
        /// The key id.
        id: String,
    },
}

/// The new password: the file, else `COFFER_NEW_PASSWORD`, else asked twice.
/// Never `COFFER_PASSWORD`: that one opened the repository.
fn new_password(file: Option<PathBuf>) -> CliResult<String> {
    let password = match file {
        Some(f) => password::read(Some(&f), ""),
        None => match std::env::var("COFFER_NEW_PASSWORD") {
            Ok(p) if !p.is_empty() => Ok(p),
            _ => password::prompt_new(),
        },
    };
    password.map_err(|e| CliError::usage(format!("{e:#}")))
}

/// Runs a key command.
pub fn run(cmd: KeyCommand, repo: &Repo, out: Output) -> CliResult {
    match cmd {
        KeyCommand::Add { new_password_file } => {
            let id = repo.add_key(&new_password(new_password_file)?)?;
            out.result(&serde_json::json!({ "id": id }), |_| {
                format!("added key {id}")
            });
        }
        KeyCommand::List => {
            let keys = repo.list_keys()?;
            out.result(&keys, |keys| {
                keys.iter()
                    .map(|k| {
                        format!(
                            "{} {:<8} {} {}",
                            if k.current { "*" } else { " " },
                            short_id(&k.id),
                            k.hostname.as_deref().unwrap_or("-"),
                            k.created.as_deref().unwrap_or("-")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        KeyCommand::Remove { id } => {
            let id = repo.remove_key(&id)?;
            out.result(&serde_json::json!({ "removed": id }), |_| {
                format!("removed key {id}")
            });
        }
    }
    Ok(())
}
