//! Coffer's server: the HTTP API, the catalog, backup and restore jobs, tokens.
//!
//! ```text
//! request ─▶ api (auth, validation, 4xx) ─▶ catalog row ─▶ jobs (tokio task)
//!                                                            │ spawn_blocking
//!                                                            ▼
//!                                     coffer-components ─▶ coffer-engine ─▶ target
//! ```
//!
//! Nothing below this crate knows about HTTP. [`run`] is what `coffer server`
//! calls: it prepares the data directory (catalog, server key, default
//! target, first admin token), marks jobs a previous process left running as
//! interrupted, and serves until SIGINT/SIGTERM.

pub mod api;
pub mod auth;
pub mod catalog;
pub mod config;
pub mod error;
pub mod export_api;
pub mod exports;
pub mod jobs;
pub mod keys;
pub mod metrics;
pub mod rebuild;
pub mod state;
pub mod tls;
pub mod upload_api;
pub mod users;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use coffer_model::access::Scope;

use crate::auth::{NewToken, create_token};
use crate::catalog::Catalog;
use crate::config::ServerConfig;
use crate::keys::ServerKey;
use crate::state::{AppState, SAME_DISK_WARNING, Shared, is_same_disk};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The data directory is unusable.
    #[error("data directory {path}: {message}")]
    DataDir {
        /// The directory.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] catalog::CatalogError),
    /// The server key failed.
    #[error(transparent)]
    Key(#[from] keys::KeyError),
    /// Setting up the default target failed.
    #[error("creating the default target: {0}")]
    DefaultTarget(String),
    /// Listening or serving failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// What a first start created, to be shown once.
#[derive(Debug, Default)]
pub struct FirstStart {
    /// The admin token's secret.
    pub admin_token: Option<String>,
    /// The default repository's generated password.
    pub repository_password: Option<String>,
}

/// Creates the data directory (mode 0700) if needed.
fn ensure_data_dir(dir: &Path) -> Result<(), ServerError> {
    let err = |message: String| ServerError::DataDir {
        path: dir.display().to_string(),
        message,
    };
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| err(e.to_string()))?;
    } else if !dir.is_dir() {
        return Err(err("exists but is not a directory".into()));
    }
    Ok(())
}

/// Opens the data directory's catalog and key: what offline commands
/// (`coffer token create`) need. Creates both if missing.
pub fn open_data_dir(data_dir: &Path) -> Result<(Catalog, ServerKey), ServerError> {
    ensure_data_dir(data_dir)?;
    let catalog = Catalog::open(&data_dir.join("catalog.sqlite"))?;
    let key = ServerKey::load_or_create(data_dir)?;
    Ok((catalog, key))
}

/// The state for offline commands (`coffer catalog rebuild`): the data
/// directory's catalog and key, without serving or first-start setup.
pub fn open_offline(config: ServerConfig) -> Result<AppState, ServerError> {
    let (catalog, key) = open_data_dir(&config.data_dir)?;
    Ok(AppState::new(config, catalog, key))
}

/// Builds the server state: data directory, catalog (jobs left running by a
/// previous process become `ERROR`), server key, and on first start the
/// default local target and an admin token.
pub fn prepare(config: ServerConfig) -> Result<(Shared, FirstStart), ServerError> {
    config.check_exposure()?;
    let (catalog, key) = open_data_dir(&config.data_dir)?;
    let interrupted = catalog.interrupt_running_jobs()?;
    if interrupted > 0 {
        tracing::warn!(
            "{interrupted} job(s) were running when the server last stopped: marked ERROR (interrupted by restart)"
        );
    }
    let data_dir = config.data_dir.clone();
    let state = Arc::new(AppState::new(config, catalog, key));
    let mut first = FirstStart {
        repository_password: state
            .ensure_default_target(&data_dir)
            .map_err(|e| ServerError::DefaultTarget(e.message))?,
        ..FirstStart::default()
    };
    if state.catalog.tokens()?.is_empty() {
        let t = NewToken {
            name: "admin (created at first start)".into(),
            scopes: Scope::ALL.into_iter().collect(),
            components: None,
            expires_in_secs: None,
        };
        first.admin_token = Some(create_token(&state.catalog, &t)?.1);
    }
    Ok((state, first))
}

/// Prints what a first start created, once, to standard error.
pub fn announce_first_start(first: &FirstStart, data_dir: &Path, url: &str) {
    if let Some(token) = &first.admin_token {
        eprintln!(
            "\n  Admin token (shown once; create more with `coffer token create`):\n\n    {token}\n\n  \
             Use it as: curl -H 'Authorization: Bearer {token}' {url}/api/v1/backups\n"
        );
    }
    if let Some(pw) = &first.repository_password {
        eprintln!(
            "  Repository password of the default target ({}/repository), shown once:\n\n    {pw}\n\n  \
             Store it offline. With it, plain `restic` or a new Coffer installation reads every \
             backup even if this server and its data directory are lost.\n",
            data_dir.display()
        );
    }
}

/// Serves until `shutdown` completes, then stops running backups (they end
/// `ERROR`, "cancelled") and waits up to `grace` for jobs to record their end.
pub async fn serve(
    state: Shared,
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> Result<(), ServerError> {
    let targets = state.catalog.targets()?;
    if targets.iter().all(|t| is_same_disk(&t.kind)) {
        tracing::warn!("{SAME_DISK_WARNING}");
    }
    tokio::spawn(exports::sweep(Arc::clone(&state)));
    // Uploads a previous run left behind (a crash mid-upload): no job uses them now.
    let uploads = state.config.staging_dir.join("uploads");
    if let Err(e) = std::fs::remove_dir_all(&uploads)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("removing leftover uploads in {}: {e}", uploads.display());
    }
    let app = api::router(Arc::clone(&state));
    match tls {
        Some(tls) => tls::serve(listener, app, tls, shutdown, grace).await,
        None => axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|source| ServerError::Io {
                context: "serving HTTP".into(),
                source,
            })?,
    }
    let running = state.jobs.cancel_all();
    if running > 0 {
        tracing::info!(
            "shutting down: waiting up to {} s for {running} job(s)",
            grace.as_secs()
        );
        let deadline = tokio::time::Instant::now() + grace;
        while state.jobs.any_running() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// `coffer server`: prepares the state, binds, serves until SIGINT/SIGTERM.
pub fn run(config: ServerConfig) -> Result<(), ServerError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| ServerError::Io {
            context: "starting the async runtime".into(),
            source,
        })?;
    runtime.block_on(async move {
        let listen = config.listen;
        let data_dir = config.data_dir.clone();
        let tls = match &config.tls {
            Some(files) => Some(tls::server_config(files).map_err(|message| {
                ServerError::Config(config::ConfigError::Invalid {
                    path: config.source.clone(),
                    message: format!("server.tls: {message}"),
                })
            })?),
            None => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let insecure = !listen.ip().is_loopback() && config.tls.is_none();
        let (state, first) = tokio::task::spawn_blocking(move || prepare(config))
            .await
            .map_err(|e| ServerError::Io {
                context: "preparing the server".into(),
                source: std::io::Error::other(e),
            })??;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| ServerError::Io {
                context: format!("listening on {listen}"),
                source,
            })?;
        let bound = listener.local_addr().map_err(|source| ServerError::Io {
            context: "reading the bound address".into(),
            source,
        })?;
        announce_first_start(&first, &data_dir, &format!("{scheme}://{bound}"));
        if insecure {
            tracing::warn!("listening on {bound} WITHOUT TLS (--insecure-bind): tokens cross the network in clear text");
        }
        // Tests and scripts read this line to find the port.
        eprintln!("coffer server listening on {scheme}://{bound}");
        tracing::info!(data_dir = %data_dir.display(), "coffer server listening on {scheme}://{bound}");
        serve(state, listener, tls, shutdown_signal(), Duration::from_secs(30)).await
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot watch SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested");
}
