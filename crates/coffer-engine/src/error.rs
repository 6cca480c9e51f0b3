use coffer_targets::StorageError;

/// Everything that can go wrong in the engine, by what the caller should do
/// about it (exit codes and HTTP statuses are chosen from the variant).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The password opens none of the repository's keys.
    #[error("wrong password for repository {location}")]
    WrongPassword {
        /// Where the repository is.
        location: String,
    },
    /// There is no repository (no `config` object) at the location.
    #[error("no repository at {location} (run `coffer repo init` to create one)")]
    RepositoryNotFound {
        /// Where the repository was expected.
        location: String,
    },
    /// `init` on a location that already holds a repository.
    #[error("a repository already exists at {location}")]
    AlreadyInitialized {
        /// Where the repository is.
        location: String,
    },
    /// Another operation holds a conflicting lock.
    #[error("repository {location} is locked: {holder}")]
    Locked {
        /// Where the repository is.
        location: String,
        /// Who holds the lock (operation, host, pid, age).
        holder: String,
    },
    /// A held lock could not be refreshed before others would think it
    /// stale, so the operation stopped before it could write anything more
    /// (a backup records no snapshot; a prune deletes nothing more).
    #[error(
        "lost the lock on repository {location} (it could not be refreshed: {reason}); stopped so that nothing is written without it"
    )]
    LockLost {
        /// Where the repository is.
        location: String,
        /// Why the refreshes failed.
        reason: String,
    },
    /// A backup did not capture everything it was given. Nothing was recorded.
    #[error("backup of component {component:?} is incomplete, nothing was recorded: {}", reasons.join("; "))]
    Incomplete {
        /// The component that failed.
        component: String,
        /// Every problem found (unreadable files, stream errors, exit status…).
        reasons: Vec<String>,
    },
    /// The job was cancelled through its [`crate::CancelToken`]. Nothing was recorded.
    #[error("backup of component {component:?} was cancelled, nothing was recorded")]
    Cancelled {
        /// The component whose backup stopped.
        component: String,
    },
    /// A restore destination that is not empty, without permission to overwrite.
    #[error(
        "restore destination {0} is not empty (choose an empty directory, or allow overwriting)"
    )]
    DestinationNotEmpty(std::path::PathBuf),
    /// A sealed snapshot (see [`crate::seal`]) and no age identity to open it.
    #[error(
        "snapshot {snapshot} is sealed to an age recipient: restoring it needs the matching age identity (AGE-SECRET-KEY-1…)"
    )]
    SealedWithoutIdentity {
        /// The sealed snapshot.
        snapshot: String,
    },
    /// The sealed data could not be opened or unpacked: the wrong identity,
    /// or damaged data.
    #[error("{0}")]
    Unseal(String),
    /// A snapshot, backup, component or key that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The caller asked for something invalid.
    #[error("{0}")]
    InvalidInput(String),
    /// The storage target failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A local filesystem operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The repository engine reported an error.
    #[error("{0}")]
    Engine(String),
    /// The repository engine panicked; the operation was abandoned cleanly.
    #[error(
        "internal failure in the repository engine ({0}); the operation was abandoned and nothing was left half-written"
    )]
    Panicked(String),
}

impl EngineError {
    /// An I/O failure while doing `context` (which names the path).
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn rustic(err: &rustic_core::RusticError) -> Self {
        Self::Engine(err.display_log())
    }
}

/// Result type of the engine.
pub type EngineResult<T> = Result<T, EngineError>;
