//! The server's shared state: what every service and job needs.

use std::sync::{Arc, OnceLock};

use crate::access::jwt::LoginKeys;
use crate::access::limits::{LoginRate, LoginThrottle, Slots};
use crate::catalog::{Catalog, LogWriter};
use crate::clock::Clock;
use crate::config::ServerConfig;
use crate::jobs::registry::Jobs;
use crate::keys::ServerKey;
use crate::metrics::Metrics;
use crate::notify::handle::Notifier;
use crate::schedules::handle::Scheduler;
use crate::targets::cache::RepoCache;
use crate::targets::last_probe::Healths;

/// Uploads decrypted and unpacked at once: a passphrase costs an scrypt
/// derivation of up to 256 MiB (work factor 18), and unpacking fills disk.
const UNPACKS_AT_ONCE: usize = 1;

/// Everything a request handler or a job needs.
pub struct AppState {
    /// The configuration the server started with.
    pub config: ServerConfig,
    /// The catalog (blocking: reach it from blocking threads only).
    pub catalog: Arc<Catalog>,
    /// Job log lines, written in batches.
    pub logs: LogWriter,
    /// Seals secrets at rest.
    pub key: ServerKey,
    /// Running jobs: reservations, cancel tokens, progress.
    pub jobs: Jobs,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Signs and checks users' login tokens.
    pub login: LoginKeys,
    /// Failed logins per name.
    pub login_throttle: LoginThrottle,
    /// Login attempts on the whole server.
    pub login_rate: LoginRate,
    /// Password verifications running at once.
    pub login_slots: Slots,
    /// Uploads being decrypted and unpacked at once.
    pub unpack_slots: Slots,
    /// Opened repositories, by target name.
    pub repos: RepoCache,
    /// The clock schedules and retention decide by.
    pub clock: Clock,
    /// The scheduler's handle.
    pub scheduler: Scheduler,
    /// What runs on a backup's thread once it ended (and its export is
    /// made): retention, then a word to the scheduler. Set once at start —
    /// a function rather than a call, so backup jobs do not depend on the
    /// services built on top of them.
    pub after_backup: OnceLock<fn(&Shared, &str)>,
    /// The notifier's inbox.
    pub notifier: Notifier,
    /// The last probe of each target (reachable, repository size, free space).
    pub target_health: Healths,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

impl AppState {
    /// Builds the state and starts the log writer's thread.
    pub fn new(config: ServerConfig, catalog: Catalog, key: ServerKey) -> std::io::Result<Self> {
        let catalog = Arc::new(catalog);
        Ok(Self {
            logs: LogWriter::start(Arc::clone(&catalog))?,
            jobs: Jobs::new(),
            metrics: Metrics::new(),
            login: LoginKeys::new(key.login_secret()),
            login_throttle: LoginThrottle::default(),
            login_rate: LoginRate::new(config.login_rate_per_minute),
            login_slots: Slots::new(config.login_concurrency),
            unpack_slots: Slots::new(UNPACKS_AT_ONCE),
            repos: RepoCache::default(),
            clock: Clock::from_env(),
            scheduler: Scheduler::default(),
            after_backup: OnceLock::new(),
            notifier: Notifier::default(),
            target_health: Healths::default(),
            config,
            catalog,
            key,
        })
    }

    /// Appends a line to a job's log (batched; see [`LogWriter`]).
    pub fn log(&self, job: &str, line: &str) {
        self.logs.log(job, line);
    }
}

/// Shared state handle.
pub type Shared = Arc<AppState>;
