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
        /// What it is for.
        #[arg(long)]
        name: String,
        /// A scope (repeat): backups:read, backups:write, backups:delete, restore, export,
        /// targets:read, targets:write, tokens:admin, sensitive.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Limit the token to this component (repeat).
        #[arg(long = "component")]
        components: Vec<String>,
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

#[derive(Serialize)]
struct Created {
    id: String,
    name: String,
    scopes: Vec<String>,
    components: Option<Vec<String>>,
    expires_at: Option<i64>,
    secret: String,
}

/// Runs a token command.
pub fn token(args: TokenArgs) -> std::process::ExitCode {
    let out = Output { json: args.json };
    let config = match args.config.load() {
        Ok(c) => c,
        Err(e) => return out.error(ExitCode::Usage, "config", &e),
    };
    let (catalog, _key) = match coffer_server::open_data_dir(&config.data_dir) {
        Ok(x) => x,
        Err(e) => return out.error(ExitCode::Failure, "data_dir", &e.to_string()),
    };
    match args.command {
        TokenCommand::Create {
            name,
            scopes,
            components,
            expires_in,
        } => {
            let comps = (!components.is_empty()).then_some(components);
            let t = match coffer_server::api::new_token(
                &name,
                &scopes,
                comps,
                expires_in,
                &config.components,
            ) {
                Ok(t) => t,
                Err(e) => return out.error(ExitCode::Usage, "invalid", &e),
            };
            match coffer_server::auth::create_token(&catalog, &t) {
                Ok((row, secret)) => {
                    let c = Created {
                        id: row.id,
                        name: row.name,
                        scopes: row.scopes.into_iter().map(String::from).collect(),
                        components: row.components,
                        expires_at: row.expires_at,
                        secret,
                    };
                    out.result(&c, |c| {
                        format!(
                            "token {} created (shown once):\n\n  {}\n\nuse: Authorization: Bearer {}",
                            c.id, c.secret, c.secret
                        )
                    });
                    ExitCode::Ok.into()
                }
                Err(e) => out.error(ExitCode::Failure, "catalog", &e.to_string()),
            }
        }
        TokenCommand::List => match catalog.tokens() {
            Ok(rows) => {
                #[derive(Serialize)]
                struct Row {
                    id: String,
                    name: String,
                    scopes: Vec<String>,
                    components: Option<Vec<String>>,
                    expires_at: Option<i64>,
                    revoked: bool,
                }
                let rows: Vec<Row> = rows
                    .into_iter()
                    .map(|r| Row {
                        id: r.id,
                        name: r.name,
                        scopes: r.scopes.into_iter().map(String::from).collect(),
                        components: r.components,
                        expires_at: r.expires_at,
                        revoked: r.revoked_at.is_some(),
                    })
                    .collect();
                out.result(&rows, |rows| {
                    rows.iter()
                        .map(|r| {
                            format!(
                                "{}  {:<30} {}{}{}",
                                r.id,
                                r.name,
                                r.scopes.join(","),
                                r.components
                                    .as_ref()
                                    .map(|c| format!("  components={}", c.join(",")))
                                    .unwrap_or_default(),
                                if r.revoked { "  REVOKED" } else { "" }
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                });
                ExitCode::Ok.into()
            }
            Err(e) => out.error(ExitCode::Failure, "catalog", &e.to_string()),
        },
        TokenCommand::Revoke { id } => match catalog.revoke_token(&id) {
            Ok(true) => {
                out.result(&serde_json::json!({ "revoked": id }), |_| {
                    format!("token {id} revoked")
                });
                ExitCode::Ok.into()
            }
            Ok(false) => out.error(
                ExitCode::Usage,
                "not_found",
                &format!("no token with id {id:?}"),
            ),
            Err(e) => out.error(ExitCode::Failure, "catalog", &e.to_string()),
        },
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
        /// Login name.
        #[arg(long)]
        name: String,
        /// A scope (repeat), as for tokens.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Limit the user to this component (repeat).
        #[arg(long = "component")]
        components: Vec<String>,
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
    let config = match args.config.load() {
        Ok(c) => c,
        Err(e) => return out.error(ExitCode::Usage, "config", &e),
    };
    let (catalog, _key) = match coffer_server::open_data_dir(&config.data_dir) {
        Ok(x) => x,
        Err(e) => return out.error(ExitCode::Failure, "data_dir", &e.to_string()),
    };
    match args.command {
        UserCommand::Add {
            name,
            scopes,
            components,
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
            let comps = (!components.is_empty()).then_some(components);
            let u = match coffer_server::api::new_user(
                &name,
                password,
                &scopes,
                comps,
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
                            format!(
                                "{}  {:<20} {}{}",
                                u.id,
                                u.name,
                                u.scopes.join(","),
                                if u.disabled { "  DISABLED" } else { "" }
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                });
                ExitCode::Ok.into()
            }
            Err(e) => out.error(ExitCode::Failure, "catalog", &e.to_string()),
        },
        UserCommand::Disable { id } => match catalog.disable_user(&id) {
            Ok(true) => {
                out.result(&serde_json::json!({ "disabled": id }), |_| {
                    format!("user {id} disabled")
                });
                ExitCode::Ok.into()
            }
            Ok(false) => out.error(
                ExitCode::Usage,
                "not_found",
                &format!("no user with id {id:?}"),
            ),
            Err(e) => out.error(ExitCode::Failure, "catalog", &e.to_string()),
        },
    }
}
