//! `coffer server` and the offline `coffer token …` commands.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use coffer_server::config::ServerConfig;
use serde::Serialize;

use crate::exit::ExitCode;
use crate::output::Output;

/// Where the configuration comes from (shared by `server` and `token`).
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The config file (`[server]`, `[hooks]`, `[[components]]`). Without it,
    /// built-in defaults: 127.0.0.1:8420, data in ./coffer-data, no components.
    #[arg(long, short = 'c', env = "COFFER_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Overrides `server.data_dir`.
    #[arg(long, env = "COFFER_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
}

impl ConfigArgs {
    /// The configuration and its data directory's catalog, or the exit code
    /// after reporting why not.
    fn open_catalog(
        &self,
        out: Output,
    ) -> Result<(ServerConfig, coffer_server::catalog::Catalog), std::process::ExitCode> {
        let config = self
            .load()
            .map_err(|e| out.error(ExitCode::Usage, "config", &e))?;
        let (catalog, _key) = coffer_server::open_data_dir(&config.data_dir)
            .map_err(|e| out.error(ExitCode::Failure, "data_dir", &e.to_string()))?;
        Ok((config, catalog))
    }

    fn load(&self) -> Result<ServerConfig, String> {
        let mut config = match &self.config {
            Some(path) => ServerConfig::load(path).map_err(|e| e.to_string())?,
            None => ServerConfig::defaults(),
        };
        if let Some(d) = &self.data_dir {
            config.data_dir.clone_from(d);
            config.staging_dir = d.join("staging");
        }
        Ok(config)
    }
}

/// Who a new token or user is and what it may do.
#[derive(Debug, Args)]
struct AccessArgs {
    /// What the token is for, or the user's login name.
    #[arg(long)]
    name: String,
    /// A scope (repeat): backups:read, backups:write, backups:delete, restore, export,
    /// targets:read, targets:write, tokens:admin, sensitive.
    #[arg(long = "scope", required = true)]
    scopes: Vec<String>,
    /// Limit it to this component (repeat).
    #[arg(long = "component")]
    components: Vec<String>,
}

impl AccessArgs {
    /// `None` when no component was named (no limit).
    fn components(&self) -> Option<Vec<String>> {
        (!self.components.is_empty()).then(|| self.components.clone())
    }
}

/// `coffer server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Overrides `server.listen` (e.g. 127.0.0.1:0 for any free port).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Allow listening on a non-loopback address without TLS (logged as a warning).
    #[arg(long)]
    insecure_bind: bool,
}

/// Runs the server in the foreground until SIGINT or SIGTERM.
pub fn server(args: ServerArgs) -> std::process::ExitCode {
    let out = Output { json: false };
    let mut config = match args.config.load() {
        Ok(c) => c,
        Err(e) => return out.error(ExitCode::Usage, "config", &e),
    };
    if let Some(l) = args.listen {
        config.listen = l;
    }
    config.insecure_bind = args.insecure_bind;
    match coffer_server::run(config) {
        Ok(()) => ExitCode::Ok.into(),
        Err(e @ coffer_server::ServerError::Config(_)) => {
            out.error(ExitCode::Usage, "config", &e.to_string())
        }
        Err(e) => out.error(ExitCode::Failure, "server", &e.to_string()),
    }
}

/// `coffer token …`: manage API tokens directly in the data directory (works
/// while the server runs, and without it).
#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Print JSON.
    #[arg(long, global = true)]
    json: bool,
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
    fn new(r: coffer_server::catalog::TokenRow, secret: Option<String>) -> Self {
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

/// One line of `token list` / `user list`.
fn access_line(
    id: &str,
    name: &str,
    scopes: &[String],
    components: Option<&[String]>,
    flag: &str,
) -> String {
    let comps = components
        .map(|c| format!("  components={}", c.join(",")))
        .unwrap_or_default();
    format!("{id}  {name:<30} {}{comps}{flag}", scopes.join(","))
}

/// Reports a revoke/disable: `what` (token, user) `id` was `done`, or not found.
fn switched_off(
    out: Output,
    result: Result<bool, coffer_server::catalog::CatalogError>,
    what: &str,
    id: &str,
    done: &str,
) -> std::process::ExitCode {
    match result {
        Ok(true) => {
            out.result(&serde_json::json!({ done: id }), |_| {
                format!("{what} {id} {done}")
            });
            ExitCode::Ok.into()
        }
        Ok(false) => out.error(
            ExitCode::Usage,
            "not_found",
            &format!("no {what} with id {id:?}"),
        ),
        Err(e) => out.error(ExitCode::Failure, "catalog", &e.to_string()),
    }
}

/// Runs a token command.
pub fn token(args: TokenArgs) -> std::process::ExitCode {
    let out = Output { json: args.json };
    let (config, catalog) = match args.config.open_catalog(out) {
        Ok(x) => x,
        Err(code) => return code,
    };
    match args.command {
        TokenCommand::Create { access, expires_in } => {
            let t = match coffer_server::api::new_token(
                &access.name,
                &access.scopes,
                access.components(),
                expires_in,
                &config.components,
            ) {
                Ok(t) => t,
                Err(e) => return out.error(ExitCode::Usage, "invalid", &e),
            };
            match coffer_server::auth::create_token(&catalog, &t) {
                Ok((row, secret)) => {
                    let c = TokenOut::new(row, Some(secret));
                    out.result(&c, |c| {
                        let secret = c.secret.as_deref().unwrap_or_default();
                        format!(
                            "token {} created (shown once):\n\n  {secret}\n\nuse: Authorization: Bearer {secret}",
                            c.id
                        )
                    });
                    ExitCode::Ok.into()
                }
                Err(e) => out.error(ExitCode::Failure, "catalog", &e.to_string()),
            }
        }
        TokenCommand::List => match catalog.tokens() {
            Ok(rows) => {
                let rows: Vec<TokenOut> =
                    rows.into_iter().map(|r| TokenOut::new(r, None)).collect();
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
                ExitCode::Ok.into()
            }
            Err(e) => out.error(ExitCode::Failure, "catalog", &e.to_string()),
        },
        TokenCommand::Revoke { id } => {
            switched_off(out, catalog.revoke_token(&id), "token", &id, "revoked")
        }
    }
}

/// `coffer catalog …`: the server's catalog, offline.
#[derive(Debug, Args)]
pub struct CatalogArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Print JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: CatalogCommand,
}

#[derive(Debug, Subcommand)]
enum CatalogCommand {
    /// Add to the catalog every backup found in the targets' repositories
    /// (complete ones READY, interrupted ones ERROR).
    Rebuild {
        /// Only this target (default: every target in the catalog).
        #[arg(long)]
        target: Option<String>,
    },
}

/// Runs a catalog command.
pub fn catalog(args: CatalogArgs) -> std::process::ExitCode {
    let out = Output { json: args.json };
    let config = match args.config.load() {
        Ok(c) => c,
        Err(e) => return out.error(ExitCode::Usage, "config", &e),
    };
    let state = match coffer_server::open_offline(config) {
        Ok(s) => s,
        Err(e) => return out.error(ExitCode::Failure, "data_dir", &e.to_string()),
    };
    let CatalogCommand::Rebuild { target } = args.command;
    let names = match target {
        Some(t) => vec![t],
        None => match state.catalog.targets() {
            Ok(rows) => rows.into_iter().map(|r| r.name).collect(),
            Err(e) => return out.error(ExitCode::Failure, "catalog", &e.to_string()),
        },
    };
    let mut reports = Vec::new();
    for name in names {
        match coffer_server::rebuild::rebuild_target(&state, &name) {
            Ok(r) => reports.push(r),
            Err(e) => {
                return out.error(
                    ExitCode::Failure,
                    e.code,
                    &format!("target {name}: {}", e.message),
                );
            }
        }
    }
    out.result(&reports, |rs| {
        rs.iter()
            .map(|r| {
                format!(
                    "target {}: {} backups found, {} added ({} complete, {} incomplete), {} already known",
                    r.target, r.found, r.added, r.complete, r.incomplete, r.already_known
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    ExitCode::Ok.into()
}

/// `coffer user …`: manage the server's users directly in the data directory.
#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Print JSON.
    #[arg(long, global = true)]
    json: bool,
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

impl From<coffer_server::catalog::UserRow> for UserOut {
    fn from(u: coffer_server::catalog::UserRow) -> Self {
        Self {
            id: u.id,
            name: u.name,
            scopes: u.scopes.into_iter().map(String::from).collect(),
            components: u.components,
            disabled: u.disabled_at.is_some(),
        }
    }
}

/// Runs a user command.
pub fn user(args: UserArgs) -> std::process::ExitCode {
    let out = Output { json: args.json };
    let (config, catalog) = match args.config.open_catalog(out) {
        Ok(x) => x,
        Err(code) => return code,
    };
    match args.command {
        UserCommand::Add {
            access,
            password_file,
        } => {
            let password = match password_file {
                Some(f) => crate::password::read(Some(&f), ""),
                None if std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
                    crate::password::prompt_new()
                }
                None => Err(anyhow::anyhow!(
                    "no password: use --password-file FILE or run on a terminal"
                )),
            };
            let password = match password {
                Ok(p) => p,
                Err(e) => return out.error(ExitCode::Usage, "password", &format!("{e:#}")),
            };
            let u = match coffer_server::api::new_user(
                &access.name,
                password,
                &access.scopes,
                access.components(),
                &config.components,
            ) {
                Ok(u) => u,
                Err(e) => return out.error(ExitCode::Usage, "invalid", &e),
            };
            match coffer_server::users::create_user(&catalog, &u) {
                Ok(row) => {
                    let u = UserOut::from(row);
                    out.result(&u, |u| format!("user {} ({}) created", u.name, u.id));
                    ExitCode::Ok.into()
                }
                Err(
                    e @ (coffer_server::users::UserError::Invalid(_)
                    | coffer_server::users::UserError::Exists(_)),
                ) => out.error(ExitCode::Usage, "invalid", &e.to_string()),
                Err(e) => out.error(ExitCode::Failure, "catalog", &e.to_string()),
            }
        }
        UserCommand::List => match catalog.users() {
            Ok(rows) => {
                let rows: Vec<UserOut> = rows.into_iter().map(UserOut::from).collect();
                out.result(&rows, |rows| {
                    rows.iter()
                        .map(|u| {
                            let flag = if u.disabled { "  DISABLED" } else { "" };
                            access_line(&u.id, &u.name, &u.scopes, u.components.as_deref(), flag)
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                });
                ExitCode::Ok.into()
            }
            Err(e) => out.error(ExitCode::Failure, "catalog", &e.to_string()),
        },
        UserCommand::Disable { id } => {
            switched_off(out, catalog.disable_user(&id), "user", &id, "disabled")
        }
    }
}
