//! [`CliError`]: why a `coffer` command failed — a message for people, the
//! documented exit code and the code name `--json` prints. Commands only
//! build or convert it; `main` prints it and exits with its code, in one
//! place. The mapping of the libraries' errors to exit codes lives here and
//! nowhere else.

use std::fmt;

use coffer_components::ComponentError;
use coffer_engine::EngineError;
use coffer_export::ExportError;
use coffer_server::{ServerError, ServiceError};

use crate::exit::ExitCode;

/// A command's failure.
#[derive(Debug)]
pub struct CliError {
    exit: ExitCode,
    /// Machine-readable name, `{"error": code}` with `--json`.
    code: &'static str,
    message: String,
}

/// What commands return.
pub type CliResult<T = ()> = Result<T, CliError>;

impl CliError {
    /// A failure with its exit code and code name.
    pub fn new(exit: ExitCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            exit,
            code,
            message: message.into(),
        }
    }

    /// Bad flags or input (exit 2, `usage`).
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ExitCode::Usage, "usage", message)
    }

    /// An unusable server configuration file (exit 2, `config`).
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ExitCode::Usage, "config", message)
    }

    /// A failure without a more specific exit code (exit 1).
    pub fn failure(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ExitCode::Failure, code, message)
    }

    /// A service error of the offline token and user commands. Their only
    /// faults besides bad input are the catalog's, and are named so.
    pub fn access(err: ServiceError) -> Self {
        match err {
            ServiceError::Invalid(_) | ServiceError::Conflict(_) => err.into(),
            other => Self::failure("catalog", other.to_string()),
        }
    }

    /// The documented exit code.
    pub fn exit_code(&self) -> ExitCode {
        self.exit
    }

    /// The machine-readable name.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

impl From<EngineError> for CliError {
    fn from(err: EngineError) -> Self {
        let (exit, code) = match &err {
            EngineError::WrongPassword { .. } => (ExitCode::WrongPassword, "wrong_password"),
            EngineError::RepositoryNotFound { .. } => {
                (ExitCode::RepositoryNotFound, "repository_not_found")
            }
            EngineError::AlreadyInitialized { .. } => (ExitCode::Failure, "already_initialized"),
            EngineError::Locked { .. } => (ExitCode::Locked, "locked"),
            EngineError::LockLost { .. } => (ExitCode::Failure, "lock_lost"),
            EngineError::Incomplete { .. } => (ExitCode::Partial, "incomplete"),
            EngineError::Cancelled { .. } => (ExitCode::Failure, "cancelled"),
            EngineError::DestinationNotEmpty(_) => (ExitCode::Usage, "destination_not_empty"),
            EngineError::SealedWithoutIdentity { .. } => (ExitCode::Usage, "sealed"),
            EngineError::Unseal(_) => (ExitCode::Failure, "unseal"),
            EngineError::NotFound(_) => (ExitCode::Usage, "not_found"),
            EngineError::InvalidInput(_) => (ExitCode::Usage, "invalid_input"),
            EngineError::Storage(_) => (ExitCode::Failure, "storage"),
            EngineError::Io { .. } => (ExitCode::Failure, "io"),
            EngineError::Engine(_) => (ExitCode::Failure, "engine"),
            EngineError::Panicked(_) => (ExitCode::Failure, "internal"),
        };
        Self::new(exit, code, err.to_string())
    }
}

/// A component driver's failure as the engine error it amounts to, so `repo
/// backup` and `repo restore --config` report it with the same exit codes
/// and message shapes as the repository's own errors.
pub fn component_to_engine(err: ComponentError) -> EngineError {
    match err {
        ComponentError::Engine { source, .. } => source,
        ComponentError::InvalidInput { .. } => EngineError::InvalidInput(err.to_string()),
        other => EngineError::Engine(other.to_string()),
    }
}

impl From<ComponentError> for CliError {
    fn from(err: ComponentError) -> Self {
        component_to_engine(err).into()
    }
}

impl From<ServiceError> for CliError {
    fn from(err: ServiceError) -> Self {
        let (exit, code) = match &err {
            ServiceError::Invalid(_) | ServiceError::Conflict(_) => (ExitCode::Usage, "invalid"),
            // The offline commands have no request to blame: a missing
            // target or an unreachable one is a plain failure.
            ServiceError::NotFound(_) => (ExitCode::Failure, "not_found"),
            ServiceError::Upstream(_) => (ExitCode::Failure, "upstream"),
            _ => (ExitCode::Failure, "internal"),
        };
        Self::new(exit, code, err.to_string())
    }
}

/// `coffer server` ending with an error: a bad configuration is a usage
/// error, anything else a failure.
impl From<ServerError> for CliError {
    fn from(err: ServerError) -> Self {
        match err {
            ServerError::Config(_) => Self::config(err.to_string()),
            other => Self::failure("server", other.to_string()),
        }
    }
}

/// An export that cannot be opened. `coffer restore --from-file` checks the
/// whole file before it restores anything, so each of these means nothing
/// was restored, and says so.
impl From<ExportError> for CliError {
    fn from(err: ExportError) -> Self {
        match err {
            ExportError::WrongSecret => Self::new(
                ExitCode::WrongPassword,
                "wrong_password",
                "wrong password or identity: the export cannot be decrypted with it \
                 (nothing was restored)",
            ),
            err @ ExportError::Io { .. } => Self::failure("io", err.to_string()),
            err => Self::failure("refused", format!("{err} (nothing was restored)")),
        }
    }
}
