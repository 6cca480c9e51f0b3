//! `coffer`: Coffer's command-line interface.
//!
//! `coffer server` runs the HTTP API; `coffer token …` manages its tokens in
//! the data directory; the offline repository commands (`coffer repo …`)
//! need no server and double as the disaster-recovery tool.
//!
//! This file parses the command line, sets up logging and runs the command
//! (`commands/`). A command prints its result and returns an
//! [`error::CliError`] when it fails; that error is printed and turned into
//! the documented exit code here, and only here.

mod client;
mod commands;
mod components;
mod error;
mod exit;
mod output;
mod password;
mod target;

use clap::{CommandFactory, Parser, ValueEnum};

use crate::commands::Command;
use crate::exit::ExitCode;
use crate::output::Output;

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
    coffer_engine::memory::limit_malloc_arenas();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints its own usage errors (exit 2), and --help and
            // --version (exit 0).
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
    let out = Output {
        json: cli.command.json(),
    };
    match commands::run(cli.command, out, Cli::command) {
        Ok(outcome) => ExitCode::from(outcome).into(),
        Err(err) => {
            out.error(&err);
            err.exit_code().into()
        }
    }
}
