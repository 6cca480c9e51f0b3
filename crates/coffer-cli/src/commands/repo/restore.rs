//! `coffer repo restore`: a snapshot's tree into `--target`, its stream into
//! `--output`, or through its component's driver with `--config`
//! (`restore_component.rs`). Nothing is written under the requested name
//! until the restore is complete.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use coffer_engine::{AgeIdentity, Repo};

use super::{RepoLocation, restore_component};
use crate::components::restore_mode;
use crate::error::{CliError, CliResult};
use crate::output::{Output, short_id};

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Snapshot id (or unique prefix, or `latest`).
    pub snapshot: String,
    /// Directory to restore a tree into (must be empty unless --overwrite or --mirror).
    #[arg(long, value_name = "DIR", conflicts_with = "output")]
    target: Option<PathBuf>,
    /// File to write a stream into (`-` for standard output).
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Restore over existing files, keeping files the snapshot does not have.
    #[arg(long, conflicts_with = "mirror")]
    pub overwrite: bool,
    /// Make the target exactly the snapshot: also delete files it does not have.
    #[arg(long)]
    pub mirror: bool,
    /// Restore the snapshot's component through its driver into the
    /// component of the same name in this coffer.toml (a database, a Redis
    /// instance, a path — possibly of a new installation).
    #[arg(long, short = 'c', value_name = "FILE", conflicts_with_all = ["target", "output"])]
    config: Option<PathBuf>,
    /// With --config: restore into this component of the file instead of
    /// the one named like the snapshot's component.
    #[arg(long = "component", value_name = "NAME", requires = "config")]
    pub component: Option<String>,
    /// Databases, Redis: remove what the destination has first (see docs/components.md).
    #[arg(long, requires = "config")]
    pub clean: bool,
    /// PostgreSQL: do not restore ownership and privileges (the roles do not exist here).
    #[arg(long, requires = "config")]
    pub no_owner: bool,
    /// PostgreSQL: SET ROLE to this role while restoring, so it owns the objects.
    #[arg(long, requires = "config", value_name = "ROLE")]
    pub role: Option<String>,
    /// Databases: fail instead of creating a missing database.
    #[arg(long, requires = "config")]
    pub no_create_database: bool,
    /// Directory for staging copies (Redis RDB files, `{file}` inputs).
    #[arg(long, env = "COFFER_STAGING_DIR", value_name = "DIR")]
    pub staging: Option<PathBuf>,
    /// File holding the age identity (AGE-SECRET-KEY-1…, as age-keygen
    /// writes it) that opens a sealed snapshot.
    #[arg(long, env = "COFFER_AGE_IDENTITY_FILE", value_name = "FILE")]
    age_identity: Option<PathBuf>,
}

/// Where the snapshot goes.
enum Destination<'a> {
    Tree(&'a Path),
    Stream(&'a Path),
    Component(&'a Path),
}

impl RestoreArgs {
    /// The destination; exactly one is needed (clap rules out two).
    fn destination(&self) -> CliResult<Destination<'_>> {
        match (&self.config, &self.target, &self.output) {
            (Some(file), _, _) => Ok(Destination::Component(file)),
            (None, Some(dir), _) => Ok(Destination::Tree(dir)),
            (None, None, Some(file)) => Ok(Destination::Stream(file)),
            (None, None, None) => Err(CliError::usage(
                "restore needs --target DIR (a directory tree), --output FILE (a stream) or \
                 --config FILE (into a configured component)",
            )),
        }
    }
}

/// `--age-identity`, read from its file.
fn read_identity(file: &Path) -> CliResult<AgeIdentity> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| CliError::usage(format!("reading {}: {e}", file.display())))?;
    text.parse::<AgeIdentity>()
        .map_err(|e| CliError::usage(format!("{}: {e}", file.display())))
}

/// Runs `coffer repo restore`. The destination is checked before the
/// password is asked for.
pub fn run(args: RestoreArgs, location: &RepoLocation, out: Output) -> CliResult {
    let destination = args.destination()?;
    let mut repo = location.open()?;
    if let Some(file) = &args.age_identity {
        repo = repo.with_identity(Arc::new(read_identity(file)?));
    }
    match destination {
        Destination::Component(file) => restore_component::run(&repo, &args, file, out),
        Destination::Tree(dir) => restore_tree(&repo, &args, dir, out),
        Destination::Stream(file) if file.as_os_str() == "-" => {
            restore_to_stdout(&repo, &args.snapshot)
        }
        Destination::Stream(file) => restore_to_file(&repo, &args.snapshot, file, out),
    }
}

/// A tree into `dir` (staged beside it, moved into place when complete).
fn restore_tree(repo: &Repo, args: &RestoreArgs, dir: &Path, out: Output) -> CliResult {
    let mode = restore_mode(args.mirror, args.overwrite);
    let progress = out.progress("restore");
    let res = repo.restore_tree(&args.snapshot, dir, mode, progress.callback());
    drop(progress);
    let snap = res?;
    out.result(&snap, |s| {
        format!(
            "restored snapshot {} into {}",
            short_id(&s.id),
            dir.display()
        )
    });
    Ok(())
}

/// A stream to standard output (`-o -`): the stream is the output, so no
/// result is printed.
fn restore_to_stdout(repo: &Repo, snapshot: &str) -> CliResult {
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    repo.restore_stream(snapshot, &mut lock)?;
    lock.flush()
        .map_err(|e| CliError::failure("io", format!("writing standard output: {e}")))
}

/// A stream into `output`, written beside it and renamed: a failed restore
/// leaves no truncated file under the requested name.
fn restore_to_file(repo: &Repo, snapshot: &str, output: &Path, out: Output) -> CliResult {
    let dir = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".coffer-restore-")
        .tempfile_in(dir)
        .map_err(|e| {
            CliError::failure("io", format!("creating a file in {}: {e}", dir.display()))
        })?;
    let snap = repo.restore_stream(snapshot, tmp.as_file_mut())?;
    let write_error = |e: &dyn std::fmt::Display| {
        CliError::failure("io", format!("writing {}: {e}", output.display()))
    };
    tmp.as_file().sync_all().map_err(|e| write_error(&e))?;
    tmp.persist(output).map_err(|e| write_error(&e))?;
    out.result(&snap, |s| {
        format!(
            "restored snapshot {} into {}",
            short_id(&s.id),
            output.display()
        )
    });
    Ok(())
}
