//! `coffer server`: runs the HTTP API in the foreground.

use std::net::SocketAddr;

use clap::Args;

use super::data_dir::ConfigArgs;
use crate::error::CliResult;

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
pub fn run(args: ServerArgs) -> CliResult {
    let mut config = args.config.load()?;
    if let Some(l) = args.listen {
        config.listen = l;
    }
    config.insecure_bind = args.insecure_bind;
    Ok(coffer_server::run(config)?)
}
