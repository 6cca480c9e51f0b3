//! The server's domain error: what a service (starting a job, reading a
//! backup, adding a target) answers when it refuses or fails. It knows no
//! HTTP; the API maps each kind to a status code in `api/error.rs`, and
//! other front ends (the offline CLI, the console) map it their own way.

use coffer_targets::validate::ValidationReport;

/// Why a service refused or failed. Every message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No, malformed, unknown, expired or revoked credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Valid credentials without the permission.
    #[error("{0}")]
    Forbidden(String),
    /// No such backup, restore, export, target, token or user.
    #[error("{0}")]
    NotFound(String),
    /// Busy, or in a state that does not allow this.
    #[error("{0}")]
    Conflict(String),
    /// It existed but is gone for good (an expired export).
    #[error("{0}")]
    Gone(String),
    /// The request breaks a rule; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// A target's Validate probe failed: the report says which step.
    #[error("{message}")]
    ValidationFailed {
        /// Which step failed and why.
        message: String,
        /// Every step.
        report: Box<ValidationReport>,
    },
    /// Larger than a configured limit.
    #[error("{0}")]
    TooLarge(String),
    /// Too many attempts; the message says when to retry.
    #[error("{0}")]
    TooManyRequests(String),
    /// Not enough space for the job.
    #[error("{0}")]
    InsufficientStorage(String),
    /// A target or another server the request depends on failed.
    #[error("{0}")]
    Upstream(String),
    /// A fault of the server itself (logged where it is built).
    #[error("{0}")]
    Internal(String),
}

impl ServiceError {
    /// An internal fault, logged at once with its message.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        let message = err.to_string();
        tracing::error!("{message}");
        Self::Internal(message)
    }

    /// The message alone (for job logs and CLI output).
    pub fn message(&self) -> String {
        self.to_string()
    }
}

impl From<crate::catalog::CatalogError> for ServiceError {
    fn from(e: crate::catalog::CatalogError) -> Self {
        Self::internal(e)
    }
}

/// A service's result.
pub type ServiceResult<T> = Result<T, ServiceError>;
