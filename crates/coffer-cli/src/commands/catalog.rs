//! `coffer catalog rebuild`: adds the backups found in the targets'
//! repositories to the server's catalog, offline.

use clap::{Args, Subcommand};

use super::data_dir::ConfigArgs;
use crate::error::CliResult;
use crate::output::Output;

/// `coffer catalog …`: the server's catalog, offline.
#[derive(Debug, Args)]
pub struct CatalogArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Print JSON.
    #[arg(long, global = true)]
    pub json: bool,
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
pub fn run(args: CatalogArgs, out: Output) -> CliResult {
    let offline = args.config.open_offline()?;
    let CatalogCommand::Rebuild { target } = args.command;
    let reports = offline.rebuild(target)?;
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
    Ok(())
}
