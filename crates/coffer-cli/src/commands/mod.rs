//! One module per `coffer` command, each with its clap arguments and a `run`
//! that prints the result and returns a [`CliError`] on failure (`main`
//! reports it). The work itself is in the libraries: `coffer-engine`,
//! `coffer-components`, `coffer-export` and the server's façade.

mod access;
mod answer;
mod backup;
mod catalog;
mod data_dir;
mod export;
mod generate;
mod input;
mod login;
mod repo;
mod restore_file;
mod restore_request;
mod retention;
mod schedules;
mod server;
mod server_restore;
mod targets;
mod token;
mod user;

use clap::Subcommand;

use crate::error::CliResult;
use crate::exit::ExitCode;
use crate::output::Output;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: HTTP API, catalog, backup and restore jobs.
    Server(server::ServerArgs),
    /// Create, list and revoke the server's API tokens (in the data directory, or with --remote
    /// over the API of the server you logged in to).
    Token(token::TokenArgs),
    /// Create, list and disable the server's users (in the data directory, or with --remote
    /// over the API of the server you logged in to).
    User(user::UserArgs),
    /// The server's catalog, offline: `coffer catalog rebuild` lists the targets' backups again.
    Catalog(catalog::CatalogArgs),
    /// Work on a repository directly, without a server (also the disaster-recovery tool).
    Repo(repo::RepoArgs),
    /// Restore an export (`--from-file backup.coffer`) into the components of a coffer.toml;
    /// `coffer restore upload FILE` sends it to a server instead.
    Restore(restore_file::RestoreArgs),
    /// The server's retention policies, offline: `coffer retention preview` shows what they
    /// keep, why, and what they would delete now.
    Retention(retention::RetentionArgs),
    /// Log in to a Coffer server for the client commands (talks to the server).
    Login(login::LoginArgs),
    /// Forget the credentials of a login.
    Logout(login::LogoutArgs),
    /// A server's backups: create, list, show, log, cancel, delete, restore, export (talks to
    /// the server: `coffer login` or COFFER_URL first).
    Backup(backup::BackupArgs),
    /// A server's exports: list, show, download (resumed, SHA-256 and MD5 checked), delete
    /// (talks to the server).
    Export(export::ExportArgs),
    /// A server's targets: add (after Validate), list, show, validate, rm (talks to the server).
    Target(targets::TargetArgs),
    /// A server's schedules: add, list, show, run, preview (retention), rm (talks to the server).
    Schedule(schedules::ScheduleArgs),
    /// Print shell completions (bash, zsh, fish, …).
    Completions(generate::CompletionsArgs),
    /// Write man pages for every command.
    Man(generate::ManArgs),
    /// One component's native backup from a server, and restores from such a file (talks to
    /// the server; FlowG's backup and restore).
    Component(server_restore::ComponentArgs),
}

impl Command {
    /// Whether results and errors are printed as JSON (the command's
    /// `--json`; `coffer server` has none).
    pub fn json(&self) -> bool {
        match self {
            Command::Server(_) => false,
            Command::Token(a) => a.json,
            Command::User(a) => a.json,
            Command::Catalog(a) => a.json,
            Command::Repo(a) => a.json,
            Command::Restore(a) => a.upload.as_ref().map_or(a.json, |c| c.json()),
            Command::Retention(a) => a.json,
            Command::Login(a) => a.json,
            Command::Logout(a) => a.json,
            Command::Backup(a) => a.json,
            Command::Export(a) => a.json,
            Command::Target(a) => a.json,
            Command::Schedule(a) => a.json,
            Command::Component(a) => a.json,
            Command::Completions(_) | Command::Man(_) => false,
        }
    }
}

/// How a command that ran to its end and printed its result exits. Some
/// results are verdicts: a backup with a failed component, a check that
/// found damage, a target probe with a failed step are reported in full on
/// stdout, and still exit non-zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything asked for was done (exit 0).
    Done,
    /// Some components failed; the result says which (exit 5).
    Partial,
    /// `repo check` found damage (exit 7).
    Damaged,
    /// `repo validate`: the target cannot be used as it is (exit 1).
    Failed,
}

impl From<Outcome> for ExitCode {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Done => ExitCode::Ok,
            Outcome::Partial => ExitCode::Partial,
            Outcome::Damaged => ExitCode::CheckFailed,
            Outcome::Failed => ExitCode::Failure,
        }
    }
}

/// Runs a command, printing its result through `out`; `app` is the whole
/// command line's definition (for completions and man pages).
pub fn run(command: Command, out: Output, app: fn() -> clap::Command) -> CliResult<Outcome> {
    let done = |()| Outcome::Done;
    match command {
        Command::Server(args) => server::run(args).map(done),
        Command::Token(args) => token::run(args, out).map(done),
        Command::User(args) => user::run(args, out).map(done),
        Command::Catalog(args) => catalog::run(args, out).map(done),
        Command::Repo(args) => repo::run(args, out),
        Command::Restore(args) => restore_file::run(args, out),
        Command::Retention(args) => retention::run(args, out).map(done),
        Command::Login(args) => login::login(args, out).map(done),
        Command::Logout(args) => login::logout(args, out).map(done),
        Command::Backup(args) => backup::run(args, out),
        Command::Export(args) => export::run(args, out).map(done),
        Command::Target(args) => targets::run(args, out),
        Command::Schedule(args) => schedules::run(args, out),
        Command::Completions(args) => {
            generate::completions(args, app());
            Ok(Outcome::Done)
        }
        Command::Man(args) => generate::man(args, app()).map(done),
        Command::Component(args) => server_restore::component(args, out),
    }
}
