//! Documented exit codes. Scripts rely on these: never renumber. Which
//! error gets which code is decided in `error.rs`.

/// The process exit codes of `coffer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Success.
    Ok = 0,
    /// Any failure without a more specific code.
    Failure = 1,
    /// Bad command line or input (clap's usage errors use 2 as well).
    Usage = 2,
    /// No repository at the given location.
    RepositoryNotFound = 3,
    /// The password opens no key of the repository.
    WrongPassword = 4,
    /// Some of the work failed (an incomplete backup, a component that failed).
    Partial = 5,
    /// Another operation holds the repository lock.
    Locked = 6,
    /// `check` found damage.
    CheckFailed = 7,
}

/// Shown at the end of `coffer --help`.
pub const EXIT_CODES_HELP: &str = "Exit codes: 0 ok, 1 failure, 2 usage error, 3 repository not found, \
4 wrong password, 5 partial failure (something was not backed up or restored), 6 repository locked, \
7 check found damage.";

impl From<ExitCode> for std::process::ExitCode {
    fn from(c: ExitCode) -> Self {
        std::process::ExitCode::from(c as u8)
    }
}
