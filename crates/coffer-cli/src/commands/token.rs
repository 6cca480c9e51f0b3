//! `coffer token …`: create, list and revoke the server's API tokens
//! directly in its data directory's catalog.

use clap::{Args, Subcommand};
use coffer_server::TokenRow;
use serde::Serialize;

use super::access::{AccessArgs, RemoteArgs, access_line, access_lines, switched_off};
use super::answer::print;
use super::data_dir::ConfigArgs;
use crate::client::{Client, segment};
use crate::error::{CliError, CliResult};
use crate::output::Output;

/// `coffer token …`: manage API tokens directly in the data directory (works
/// while the server runs, and without it), or with `--remote` over the API of
/// the server you logged in to.
#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    remote: RemoteArgs,
    /// Print JSON.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token and print its secret (once).
    Create {
        #[command(flatten)]
        access: AccessArgs,
        /// Lifetime in seconds.
        #[arg(long)]
        expires_in: Option<u64>,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by id.
    Revoke {
        /// The token id (`tok-…`).
        id: String,
    },
}

/// A token as `token create` (with its secret) and `token list` (with its
/// revocation) print it.
#[derive(Serialize)]
struct TokenOut {
    id: String,
    name: String,
    scopes: Vec<String>,
    components: Option<Vec<String>>,
    expires_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked: Option<bool>,
}

impl TokenOut {
    fn new(r: TokenRow, secret: Option<String>) -> Self {
        Self {
            revoked: secret.is_none().then_some(r.revoked_at.is_some()),
            id: r.id,
            name: r.name,
            scopes: r.scopes.into_iter().map(String::from).collect(),
            components: r.components,
            expires_at: r.expires_at,
            secret,
        }
    }
}

/// Runs a token command.
pub fn run(args: TokenArgs, out: Output) -> CliResult {
    if let Some(client) = args.remote.client()? {
        return remote(&client, args.command, out);
    }
    let offline = args.config.open_offline()?;
    match args.command {
        TokenCommand::Create { access, expires_in } => {
            let (row, secret) = offline
                .create_token(
                    &access.name,
                    &access.scopes,
                    access.components(),
                    expires_in,
                )
                .map_err(CliError::access)?;
            let c = TokenOut::new(row, Some(secret));
            out.result(&c, |c| {
                let secret = c.secret.as_deref().unwrap_or_default();
                format!(
                    "token {} created (shown once):\n\n  {secret}\n\nuse: Authorization: Bearer {secret}",
                    c.id
                )
            });
            Ok(())
        }
        TokenCommand::List => {
            let rows: Vec<TokenOut> = offline
                .tokens()
                .map_err(CliError::access)?
                .into_iter()
                .map(|r| TokenOut::new(r, None))
                .collect();
            out.result(&rows, |rows| {
                rows.iter()
                    .map(|r| {
                        let flag = if r.revoked == Some(true) {
                            "  REVOKED"
                        } else {
                            ""
                        };
                        access_line(&r.id, &r.name, &r.scopes, r.components.as_deref(), flag)
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(())
        }
        TokenCommand::Revoke { id } => {
            switched_off(out, offline.revoke_token(&id), "token", &id, "revoked")
        }
    }
}

/// The same commands over the API (`/api/v1/tokens`, scope `tokens:admin`):
/// the server grants no more than the login holds.
fn remote(client: &Client, command: TokenCommand, out: Output) -> CliResult {
    match command {
        TokenCommand::Create { access, expires_in } => {
            let mut body = access.body();
            if let Some(secs) = expires_in {
                body["expires_in_secs"] = serde_json::json!(secs);
            }
            let answer = client.post("/api/v1/tokens", Some(&body))?;
            print(out, &answer, |v| {
                let secret = v["secret"].as_str().unwrap_or_default();
                format!(
                    "token {} created (shown once):\n\n  {secret}\n\nuse: Authorization: Bearer {secret}",
                    v["token"]["id"].as_str().unwrap_or_default()
                )
            });
        }
        TokenCommand::List => {
            let answer = client.get("/api/v1/tokens")?;
            print(out, &answer, |v| access_lines(v, "revoked_at", "  REVOKED"));
        }
        TokenCommand::Revoke { id } => {
            let answer = client.delete(&format!("/api/v1/tokens/{}", segment(&id)))?;
            print(out, &answer, |_| format!("token {id} revoked"));
        }
    }
    Ok(())
}
