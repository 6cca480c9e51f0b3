//! Coffer's server: the HTTP API, the catalog, backup and restore jobs,
//! tokens and users.
//!
//! ```text
//! request ─▶ api/<resource> (guard: credentials + the route's scope)
//!              │ spawn_blocking
//!              ▼
//!            service (backups, restores, exports, targets, jobs::*::start):
//!              the principal's scopes and components, the override rules,
//!              validation ─▶ catalog row ─▶ job thread
//!                                              ▼
//!                          coffer-components ─▶ coffer-engine ─▶ target
//! ```
//!
//! Nothing below `api` knows about HTTP: services answer [`ServiceError`],
//! which `api/error.rs` maps to status codes. [`run`] is what `coffer
//! server` calls: it prepares the data directory (catalog, server key,
//! default target, first admin token), marks jobs a previous process left
//! running as interrupted, and serves until SIGINT/SIGTERM. [`offline`] is
//! what the CLI's offline commands use.

mod access;
mod api;
mod audit;
mod backups;
mod browse;
mod catalog;
mod clock;
pub mod config;
mod console;
mod copies;
mod error;
mod escrow;
mod exports;
mod jobs;
mod keys;
mod lookup;
mod metrics;
mod notify;
pub mod offline;
mod rebuild;
mod restores;
mod retention;
mod schedules;
mod state;
mod targets;
mod tls;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use coffer_model::access::Scope;

pub use crate::catalog::{CatalogError, TokenRow, UserRow};
pub use crate::error::ServiceError;
pub use crate::rebuild::RebuildReport;
pub use crate::retention::view::{RetainedView, RetentionGroupView, RetentionPreview};

use crate::access::tokens::{NewToken, create_token};
use crate::catalog::Catalog;
use crate::config::ServerConfig;
use crate::keys::ServerKey;
use crate::state::{AppState, Shared};
use crate::targets::{SAME_DISK_WARNING, is_same_disk};

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
    /// A target declared in coffer.toml could not be added or checked.
    #[error("{0}")]
    DeclaredTargets(String),
    /// A schedule or notification declared in coffer.toml could not be recorded.
    #[error("{0}")]
    DeclaredSchedules(String),
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
    /// Generated passwords of new repositories on declared targets.
    pub declared_passwords: Vec<(String, String)>,
}

/// Creates the data directory (mode 0700) if needed; refuses one that other
/// users can read or enter (it holds the server key and the catalog).
fn ensure_data_dir(dir: &Path) -> Result<(), ServerError> {
    let err = |message: String| ServerError::DataDir {
        path: dir.display().to_string(),
        message,
    };
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| err(e.to_string()))?;
        return Ok(());
    }
    let meta = std::fs::metadata(dir).map_err(|e| err(e.to_string()))?;
    if !meta.is_dir() {
        return Err(err("exists but is not a directory".into()));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(err(format!(
            "is open to other users (mode {mode:o}): it holds the server key and the catalog; \
             run `chmod 700 {}`",
            dir.display()
        )));
    }
    Ok(())
}

/// Opens the data directory's catalog and key. Creates both if missing.
fn open_data_dir(data_dir: &Path) -> Result<(Catalog, ServerKey), ServerError> {
    ensure_data_dir(data_dir)?;
    let catalog = Catalog::open(&data_dir.join("catalog.sqlite"))?;
    let key = ServerKey::load_or_create(data_dir)?;
    Ok((catalog, key))
}

fn new_state(
    config: ServerConfig,
    catalog: Catalog,
    key: ServerKey,
) -> Result<AppState, ServerError> {
    AppState::new(config, catalog, key).map_err(|source| ServerError::Io {
        context: "starting the log writer".into(),
        source,
    })
}

/// Builds the server state: data directory, catalog (jobs left running by a
/// previous process become `ERROR`), server key, and on first start the
/// default local target and an admin token.
fn prepare(config: ServerConfig) -> Result<(Shared, FirstStart), ServerError> {
    config.check_exposure()?;
    let (catalog, key) = open_data_dir(&config.data_dir)?;
    let interrupted = catalog.interrupt_running_jobs()?;
    if interrupted > 0 {
        tracing::warn!(
            "{interrupted} job(s) were running when the server last stopped: marked ERROR (interrupted by restart)"
        );
    }
    for c in &config.components {
        if let Some(why) = config.unsealable(c) {
            tracing::warn!("{why}");
        }
    }
    let data_dir = config.data_dir.clone();
    let state = Arc::new(new_state(config, catalog, key)?);
    // Cannot fail: the cell is new.
    let _ = state.after_backup.set(after_backup);
    match jobs::drill::clean_interrupted(&state) {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            "{n} restore drill(s) were running when the server last stopped: scratch copies \
             removed, marked ERROR"
        ),
        Err(e) => tracing::error!("cleaning up interrupted drills: {e}"),
    }
    // Declared targets first: a configuration that declares its own makes
    // the embedded local default unnecessary.
    let declared =
        targets::declared::apply(&state).map_err(|e| ServerError::DeclaredTargets(e.message()))?;
    schedules::service::apply_declared(&state)
        .map_err(|e| ServerError::DeclaredSchedules(format!("schedules: {}", e.message())))?;
    notify::service::apply_declared(&state)
        .map_err(|e| ServerError::DeclaredSchedules(format!("notifications: {}", e.message())))?;
    let mut first = FirstStart {
        declared_passwords: declared
            .into_iter()
            .map(|n| (n.target, n.password))
            .collect(),
        repository_password: state
            .ensure_default_target(&data_dir)
            .map_err(|e| ServerError::DefaultTarget(e.message()))?,
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

/// What follows every backup on its thread: notifications, copies to its
/// schedule's extra targets, the retention policy that governs it, then the
/// scheduler looks again (a run that was going may
/// have held back the next).
fn after_backup(state: &Shared, id: &str) {
    notify::watch::backup_ended(state, id);
    copies::after_backup(state, id);
    retention::after_backup(state, id);
    state.scheduler.wake();
}

/// Prints what a first start created, once, to standard error.
fn announce_first_start(first: &FirstStart, data_dir: &Path, url: &str) {
    if let Some(token) = &first.admin_token {
        eprintln!(
            "\n  Admin token (shown once; create more with `coffer token create`):\n\n    {token}\n\n  \
             Use it as: curl -H 'Authorization: Bearer {token}' {url}/api/v1/backups\n"
        );
    }
    for (target, pw) in &first.declared_passwords {
        eprintln!(
            "  Repository password of target {target} (declared in the configuration), shown \
             once:\n\n    {pw}\n\n  Store it offline, or set repository_password for it.\n"
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

/// Removes what a crash left in the staging area (uploads, spools of
/// sensitive backups): no job uses them before the server serves.
fn remove_leftovers(staging_dir: &std::path::Path) {
    let uploads = staging_dir.join("uploads");
    if let Err(e) = std::fs::remove_dir_all(&uploads)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("removing leftover uploads in {}: {e}", uploads.display());
    }
    jobs::sensitive_export::remove_leftover_spools(staging_dir);
}

/// Serves until `shutdown` completes, then stops running backups (they end
/// `ERROR`, "cancelled") and waits up to `grace` for jobs to record their end.
async fn serve(
    state: Shared,
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> Result<(), ServerError> {
    let st = Arc::clone(&state);
    let targets = tokio::task::spawn_blocking(move || st.catalog.targets())
        .await
        .map_err(|e| ServerError::Io {
            context: "reading the targets".into(),
            source: std::io::Error::other(e),
        })??;
    if targets.iter().all(|t| is_same_disk(&t.kind)) {
        tracing::warn!("{SAME_DISK_WARNING}");
    }
    remove_leftovers(&state.config.staging_dir);
    tokio::spawn(jobs::export::sweep(Arc::clone(&state)));
    notify::dispatch::spawn(Arc::clone(&state)).map_err(|source| ServerError::Io {
        context: "starting the notifier".into(),
        source,
    })?;
    schedules::scheduler::spawn(Arc::clone(&state)).map_err(|source| ServerError::Io {
        context: "starting the scheduler".into(),
        source,
    })?;
    audit::sync::spawn(Arc::clone(&state));
    let app = console::router(Arc::clone(&state), api::router(Arc::clone(&state))).layer(
        axum::middleware::from_fn_with_state(Arc::clone(&state), audit::request::client_address),
    );
    let limits = api::serve::Limits {
        max_connections: state.config.max_connections,
        header_read_timeout: state.config.header_read_timeout,
    };
    api::serve::serve(listener, app, tls, limits, shutdown, grace).await;
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    state.scheduler.stop();
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
    // What did not end in time (a restore cannot stop half-way) is
    // cancelled by this stop, and says so, rather than being found
    // running — "interrupted by restart" — at the next start.
    let st = Arc::clone(&state);
    let reason = format!(
        "cancelled: the server was stopped and the job did not end within \
         server.shutdown_grace_secs ({} s)",
        grace.as_secs()
    );
    match tokio::task::spawn_blocking(move || st.catalog.end_running_jobs(&reason)).await {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => tracing::warn!("shutting down: {n} job(s) did not end in time, marked ERROR"),
        Ok(Err(e)) => tracing::error!("shutting down: marking unfinished jobs: {e}"),
        Err(e) => tracing::error!("shutting down: marking unfinished jobs: {e}"),
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
        // Readiness for systemd (`Type=notify`): a no-op without NOTIFY_SOCKET.
        if let Err(e) = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]) {
            tracing::warn!("telling the service manager we are ready: {e}");
        }
        let grace = state.config.shutdown_grace;
        serve(state, listener, tls, shutdown_signal(), grace).await
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    // restic before 0.15 asks whether a lock's holder on this host is alive
    // by sending it SIGHUP (`restic unlock`): Coffer's restic lock files name
    // this process, so SIGHUP must not end it.
    match signal(SignalKind::hangup()) {
        Ok(mut hup) => {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    tracing::info!("SIGHUP ignored (restic probes lock holders with it)");
                }
            });
        }
        Err(e) => tracing::warn!("cannot watch SIGHUP: {e}"),
    }
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
