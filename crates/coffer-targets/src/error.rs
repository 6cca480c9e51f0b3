use std::fmt;

/// What kind of failure a storage operation met. Callers decide on retries and
/// exit codes from this, never from message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageErrorKind {
    /// The object or directory does not exist.
    NotFound,
    /// The target refused the operation (permissions, read-only, credentials).
    PermissionDenied,
    /// The target has no space left.
    NoSpace,
    /// A key that could escape the storage root or is otherwise malformed.
    InvalidKey,
    /// Stored data is shorter or otherwise different than expected.
    Corrupt,
    /// A failure that may pass on retry (network, timeouts).
    Transient,
    /// Anything else.
    Other,
}

impl fmt::Display for StorageErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotFound => "not found",
            Self::PermissionDenied => "permission denied",
            Self::NoSpace => "no space left",
            Self::InvalidKey => "invalid key",
            Self::Corrupt => "corrupt data",
            Self::Transient => "transient failure",
            Self::Other => "failed",
        })
    }
}

/// A failed storage operation: which target, which operation, which key, and
/// what the target said.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{location}: {op} {key:?}: {kind}: {message}")]
pub struct StorageError {
    /// The kind of failure.
    pub kind: StorageErrorKind,
    /// The target's location.
    pub location: String,
    /// The operation (`put`, `get`, `list`, …).
    pub op: &'static str,
    /// The key or prefix involved.
    pub key: String,
    /// The underlying cause, as the target reported it.
    pub message: String,
}

impl StorageError {
    /// A new error.
    pub fn new(
        kind: StorageErrorKind,
        location: &str,
        op: &'static str,
        key: &str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            location: location.to_owned(),
            op,
            key: key.to_owned(),
            message: message.into(),
        }
    }

    /// Wraps an I/O error, classifying it.
    pub fn io(location: &str, op: &'static str, key: &str, err: &std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let kind = match err.kind() {
            K::NotFound => StorageErrorKind::NotFound,
            K::PermissionDenied | K::ReadOnlyFilesystem => StorageErrorKind::PermissionDenied,
            K::StorageFull | K::QuotaExceeded => StorageErrorKind::NoSpace,
            K::UnexpectedEof => StorageErrorKind::Corrupt,
            K::TimedOut | K::Interrupted | K::WouldBlock => StorageErrorKind::Transient,
            _ => StorageErrorKind::Other,
        };
        Self::new(kind, location, op, key, err.to_string())
    }
}
