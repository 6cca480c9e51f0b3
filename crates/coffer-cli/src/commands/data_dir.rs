//! `--config` and `--data-dir`: where `coffer server` and the offline
//! token, user and catalog commands find the server's configuration and its
//! data directory.

use std::path::PathBuf;

use clap::Args;
use coffer_server::config::ServerConfig;
use coffer_server::offline::Offline;

use crate::error::{CliError, CliResult};

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
    /// The configuration: the file (or the defaults) with `--data-dir`
    /// applied. An unusable file is a usage error.
    pub fn load(&self) -> CliResult<ServerConfig> {
        let mut config = match &self.config {
            Some(path) => ServerConfig::load(path).map_err(|e| CliError::config(e.to_string()))?,
            None => ServerConfig::defaults(),
        };
        if let Some(d) = &self.data_dir {
            config.data_dir.clone_from(d);
            config.staging_dir = d.join("staging");
        }
        Ok(config)
    }

    /// The configuration's data directory, opened for offline work.
    pub fn open_offline(&self) -> CliResult<Offline> {
        let config = self.load()?;
        // Whatever stops it opening (permissions, the catalog, the server
        // key) is the data directory's fault, not the server's.
        Offline::open(config).map_err(|e| CliError::failure("data_dir", e.to_string()))
    }
}
