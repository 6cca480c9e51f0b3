//! `coffer repo …`: offline repository commands, one file each. They need
//! no server and no catalog, and double as the disaster-recovery tool.

mod audit;
mod backup;
mod check;
mod forget;
mod init;
mod key;
mod locks;
mod prune;
mod restore;
mod restore_component;
mod snapshots;
mod validate;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};
use coffer_engine::Repo;
use coffer_targets::{OpenTarget, Storage};

use super::Outcome;
use crate::error::{CliError, CliResult};
use crate::output::Output;
use crate::{password, target};

#[derive(Debug, Args)]
pub struct RepoArgs {
    /// Repository location: a local directory, `s3:https://host/bucket[/prefix]`,
    /// `ftp://user@host[:port]/dir` or `ftps://…` (credentials from the environment,
    /// see docs/targets.md).
    #[arg(long, short = 'r', env = "COFFER_REPOSITORY", value_name = "LOCATION")]
    repo: String,
    /// Read the password from the first line of this file (else COFFER_PASSWORD, else a prompt).
    #[arg(long, env = "COFFER_PASSWORD_FILE", value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Print results as JSON (errors as {"error", "message"} on stderr).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    command: RepoCommand,
}

#[derive(Debug, Subcommand)]
enum RepoCommand {
    /// Create a new repository.
    Init,
    /// Back up components: directories, standard input or a command's output.
    ///
    /// All components given in one call form one backup (one id, one label);
    /// each becomes one snapshot tagged with the backup id, so the backup is
    /// complete only if every component was recorded.
    Backup(backup::BackupArgs),
    /// List snapshots.
    Snapshots(snapshots::SnapshotsArgs),
    /// Restore a snapshot: a directory tree into --target, a stream into --output.
    Restore(restore::RestoreArgs),
    /// Verify the repository (and with --read-data, the stored data).
    Check(check::CheckArgs),
    /// Remove snapshots (data stays until `prune`).
    Forget(forget::ForgetArgs),
    /// Remove data no snapshot refers to (takes the exclusive lock).
    Prune(prune::PruneArgs),
    /// Manage the repository's keys (passwords).
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// List the Coffer lock objects in the repository (no password needed).
    Locks,
    /// Read and verify the audit log a Coffer server copied here (exit 7 if an entry was
    /// removed, altered or cut off).
    Audit(audit::AuditArgs),
    /// Probe the target (reachable, authenticated, write, read, ranged read, list,
    /// overwrite, delete, multipart, free space, clock skew, throughput) with at most
    /// 16 MiB of test data; no password needed. Exit 0 only if every step passed.
    Validate,
}

/// The repository a command works on. The password is asked for only when
/// a command opens it: `validate` and `locks` need none, and `backup` and
/// `restore` check their arguments first, so a mistake is reported before
/// the prompt (and before ≈128 MiB of key derivation).
pub struct RepoLocation {
    target: OpenTarget,
    password_file: Option<PathBuf>,
}

impl RepoLocation {
    /// The storage target, as `--repo` named it.
    pub fn target(&self) -> &OpenTarget {
        &self.target
    }

    /// The target's storage.
    pub fn storage(&self) -> Arc<dyn Storage> {
        self.target.storage()
    }

    /// The repository password (`--password-file`, `COFFER_PASSWORD`, a prompt).
    pub fn password(&self) -> CliResult<String> {
        password::read(self.password_file.as_deref(), "repository password: ")
            .map_err(|e| CliError::usage(format!("{e:#}")))
    }

    /// Opens the repository with its password.
    pub fn open(&self) -> CliResult<Repo> {
        let password = self.password()?;
        Ok(Repo::open(self.storage(), &password)?)
    }
}

/// Runs `coffer repo …`.
pub fn run(args: RepoArgs, out: Output) -> CliResult<Outcome> {
    let target = target::parse(&args.repo).map_err(|e| CliError::usage(format!("{e:#}")))?;
    let location = RepoLocation {
        target,
        password_file: args.password_file,
    };
    let done = |()| Outcome::Done;
    match args.command {
        RepoCommand::Init => init::run(&location, out).map(done),
        RepoCommand::Backup(a) => backup::run(a, &location, out),
        RepoCommand::Snapshots(a) => snapshots::run(a, &location.open()?, out).map(done),
        RepoCommand::Restore(a) => restore::run(a, &location, out).map(done),
        RepoCommand::Check(a) => check::run(a, &location.open()?, out),
        RepoCommand::Forget(a) => forget::run(a, &location.open()?, out).map(done),
        RepoCommand::Prune(a) => prune::run(a, &location.open()?, out).map(done),
        RepoCommand::Key(k) => key::run(k, &location.open()?, out).map(done),
        RepoCommand::Locks => locks::run(&*location.storage(), out).map(done),
        RepoCommand::Audit(a) => audit::run(a, &location.open()?, out),
        RepoCommand::Validate => validate::run(location.target(), out),
    }
}
