//! `coffer user …`: create, list and disable the server's users directly in
//! its data directory's catalog.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use coffer_server::UserRow;
use serde::Serialize;

use super::access::{AccessArgs, RemoteArgs, access_line, access_lines, switched_off};
use super::answer::print;
use super::data_dir::ConfigArgs;
use crate::client::{Client, segment};
use crate::error::{CliError, CliResult};
use crate::exit::ExitCode;
use crate::output::Output;
use crate::password;

/// `coffer user …`: manage the server's users directly in the data directory,
/// or with `--remote` over the API of the server you logged in to.
#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    remote: RemoteArgs,
    /// Print JSON.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user who logs in at POST /api/v1/auth/login.
    Add {
        #[command(flatten)]
        access: AccessArgs,
        /// Read the password from the first line of FILE (else: asked twice on the terminal).
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// List users.
    List,
    /// Disable a user: no more logins; its login tokens stop working.
    Disable {
        /// The user id (`usr-…`).
        id: String,
    },
}

#[derive(Serialize)]
struct UserOut {
    id: String,
    name: String,
    scopes: Vec<String>,
    components: Option<Vec<String>>,
    disabled: bool,
}

impl From<UserRow> for UserOut {
    fn from(u: UserRow) -> Self {
        Self {
            id: u.id,
            name: u.name,
            scopes: u.scopes.into_iter().map(String::from).collect(),
            components: u.components,
            disabled: u.disabled_at.is_some(),
        }
    }
}

/// The new user's password: the first line of `file`, else asked twice on
/// the terminal — never `COFFER_PASSWORD`, which is a repository's.
fn new_password(file: Option<PathBuf>) -> CliResult<String> {
    let password = match file {
        Some(f) => password::read(Some(&f), ""),
        None if std::io::IsTerminal::is_terminal(&std::io::stdin()) => password::prompt_new(),
        None => Err(anyhow::anyhow!(
            "no password: use --password-file FILE or run on a terminal"
        )),
    };
    password.map_err(|e| CliError::new(ExitCode::Usage, "password", format!("{e:#}")))
}

/// Runs a user command.
pub fn run(args: UserArgs, out: Output) -> CliResult {
    if let Some(client) = args.remote.client()? {
        return remote(&client, args.command, out);
    }
    let offline = args.config.open_offline()?;
    match args.command {
        UserCommand::Add {
            access,
            password_file,
        } => {
            let password = new_password(password_file)?;
            let row = offline
                .add_user(&access.name, password, &access.scopes, access.components())
                .map_err(CliError::access)?;
            let u = UserOut::from(row);
            out.result(&u, |u| format!("user {} ({}) created", u.name, u.id));
            Ok(())
        }
        UserCommand::List => {
            let rows: Vec<UserOut> = offline
                .users()
                .map_err(CliError::access)?
                .into_iter()
                .map(UserOut::from)
                .collect();
            out.result(&rows, |rows| {
                rows.iter()
                    .map(|u| {
                        let flag = if u.disabled { "  DISABLED" } else { "" };
                        access_line(&u.id, &u.name, &u.scopes, u.components.as_deref(), flag)
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(())
        }
        UserCommand::Disable { id } => {
            switched_off(out, offline.disable_user(&id), "user", &id, "disabled")
        }
    }
}

/// The same commands over the API (`/api/v1/users`, scope `tokens:admin`):
/// the server grants no more than the login holds. The password is sent,
/// never printed.
fn remote(client: &Client, command: UserCommand, out: Output) -> CliResult {
    match command {
        UserCommand::Add {
            access,
            password_file,
        } => {
            let mut body = access.body();
            body["password"] = serde_json::json!(new_password(password_file)?);
            let answer = client.post("/api/v1/users", Some(&body))?;
            print(out, &answer, |u| {
                format!(
                    "user {} ({}) created",
                    u["name"].as_str().unwrap_or_default(),
                    u["id"].as_str().unwrap_or_default()
                )
            });
        }
        UserCommand::List => {
            let answer = client.get("/api/v1/users")?;
            print(out, &answer, |v| {
                access_lines(v, "disabled_at", "  DISABLED")
            });
        }
        UserCommand::Disable { id } => {
            let answer = client.delete(&format!("/api/v1/users/{}", segment(&id)))?;
            print(out, &answer, |_| format!("user {id} disabled"));
        }
    }
    Ok(())
}
