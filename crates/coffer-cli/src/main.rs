//! `coffer`: Coffer's command-line interface.
//!
//! `coffer server` runs the HTTP API; `coffer token …` manages its tokens in
//! the data directory; the offline repository commands (`coffer repo …`)
//! need no server and double as the disaster-recovery tool.

mod exit;
mod output;
mod password;
mod repo_cmd;
mod restore_cmd;
mod server_cmd;
mod target;

use clap::{Parser, Subcommand, ValueEnum};

use crate::exit::ExitCode;

/// Coffer: consistent, encrypted, deduplicated backups of self-hosted applications.
#[derive(Debug, Parser)]
#[command(name = "coffer", version, about, long_about = None, after_help = exit::EXIT_CODES_HELP)]
struct Cli {
    /// Log verbosity (-v: info, -vv: debug). Also RUST_LOG.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: HTTP API, catalog, backup and restore jobs.
    Server(server_cmd::ServerArgs),
    /// Create, list and revoke the server's API tokens (offline, in the data directory).
    Token(server_cmd::TokenArgs),
    /// Create, list and disable the server's users (offline, in the data directory).
    User(server_cmd::UserArgs),
    /// The server's catalog, offline: `coffer catalog rebuild` lists the targets' backups again.
    Catalog(server_cmd::CatalogArgs),
    /// Work on a repository directly, without a server (also the disaster-recovery tool).
    Repo(repo_cmd::RepoArgs),
    /// Restore an export (`--from-file backup.coffer`) into the components of a coffer.toml.
    Restore(restore_cmd::RestoreArgs),
}

fn init_logging(verbose: u8, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        // The server's job and request messages are worth seeing by default.
        0 => "warn,coffer_server=info",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // rustic_core logs through `log`; the subscriber's tracing-log bridge picks it up.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                ExitCode::Usage
            } else {
                ExitCode::Ok
            };
            let _ = e.print();
            return code.into();
        }
    };
    init_logging(cli.verbose, cli.log_format);
    match cli.command {
        Command::Server(args) => server_cmd::server(args),
        Command::Token(args) => server_cmd::token(args),
        Command::Catalog(args) => server_cmd::catalog(args),
        Command::User(args) => server_cmd::user(args),
        Command::Repo(args) => repo_cmd::run(args),
        Command::Restore(args) => restore_cmd::run(args),
    }
}
