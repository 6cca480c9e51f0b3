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
    /// The server wants credentials: not logged in, or the login expired (HTTP 401).
    Unauthorized = 8,
    /// The server refused: the login lacks the scope or the component (HTTP 403).
    Forbidden = 9,
    /// The server has no such backup, restore, target… (HTTP 404).
    NotFound = 10,
    /// The server cannot do it now: running, being restored, exists (HTTP 409).
    Conflict = 11,
}

/// Shown at the end of `coffer --help`.
pub const EXIT_CODES_HELP: &str = "Exit codes: 0 ok, 1 failure, 2 usage error, 3 repository not found, \
4 wrong password, 5 partial failure (something was not backed up or restored), 6 repository locked, \
7 check found damage; talking to a server: 8 not logged in or login expired (401), 9 forbidden (403), \
10 not found (404), 11 conflict (409), 2 for input the server refused (422).";

impl From<ExitCode> for std::process::ExitCode {
    fn from(c: ExitCode) -> Self {
        std::process::ExitCode::from(c as u8)
    }
}
