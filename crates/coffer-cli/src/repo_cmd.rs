//! `coffer repo …`: offline repository commands.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode as ProcessExit;
use std::sync::Arc;

use clap::{Args, Subcommand};
use coffer_components::{
    BackupContext, ComponentError, RestoreContext, RestoreOptions, RestoreSource,
};
use coffer_engine::lock::{LockInfo, RepoLock};
use coffer_engine::{
    AgeIdentity, AgeRecipients, EngineError, Repo, RestoreMode, SnapshotFilter, SnapshotInfo,
    TreeBackupOptions,
};
use coffer_model::component::{ComponentSpec, parse_components};
use coffer_model::{BackupId, BackupRef, ComponentName, Label};
use coffer_targets::validate::ValidateOptions;
use coffer_targets::{OpenTarget, Storage};
use serde::Serialize;

use crate::exit::ExitCode;
use crate::output::{Output, human_bytes};
use crate::password;
use crate::target;

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
    json: bool,
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
    Backup(BackupArgs),
    /// List snapshots.
    Snapshots {
        /// Only snapshots of this backup id.
        #[arg(long)]
        backup: Option<String>,
        /// Only backups with this label.
        #[arg(long)]
        label: Option<String>,
        /// Only this component.
        #[arg(long)]
        component: Option<String>,
    },
    /// Restore a snapshot: a directory tree into --target, a stream into --output.
    Restore(RestoreArgs),
    /// Verify the repository (and with --read-data, the stored data).
    Check {
        /// Also read and verify pack contents: all, or a subset like 10% or 1/5.
        #[arg(long, value_name = "SUBSET", num_args = 0..=1, default_missing_value = "all")]
        read_data: Option<String>,
    },
    /// Remove snapshots (data stays until `prune`).
    Forget {
        /// Snapshot ids (or unique prefixes).
        snapshots: Vec<String>,
        /// Remove every snapshot of this backup id.
        #[arg(long)]
        backup: Option<String>,
        /// Prune afterwards.
        #[arg(long)]
        prune: bool,
    },
    /// Remove data no snapshot refers to (takes the exclusive lock).
    Prune {
        /// Delete unused packs at once instead of after the 23 h grace period.
        /// Only when no other Coffer process uses the repository.
        #[arg(long)]
        instant: bool,
    },
    /// Manage the repository's keys (passwords).
    #[command(subcommand)]
    Key(KeyCommand),
    /// List the Coffer lock objects in the repository (no password needed).
    Locks,
    /// Probe the target (reachable, authenticated, write, read, ranged read, list,
    /// overwrite, delete, multipart, free space, clock skew, throughput) with at most
    /// 16 MiB of test data; no password needed. Exit 0 only if every step passed.
    Validate,
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Add a password; it will open the repository too.
    Add {
        /// Read the new password from this file (else COFFER_NEW_PASSWORD, else a prompt).
        #[arg(long, value_name = "FILE")]
        new_password_file: Option<PathBuf>,
    },
    /// List the keys.
    List,
    /// Remove a key by id (or unique prefix).
    Remove {
        /// The key id.
        id: String,
    },
}

#[derive(Debug, Args)]
struct BackupArgs {
    /// Backup label (3–25 characters of A-Z a-z 0-9 _ . -, not starting with ..).
    #[arg(long, default_value = "manual")]
    label: String,
    /// Directory component: NAME=PATH.
    #[arg(long = "dir", value_name = "NAME=PATH")]
    dirs: Vec<String>,
    /// Standard input as a stream component: NAME or NAME=FILENAME.
    #[arg(long = "stdin", value_name = "NAME[=FILENAME]")]
    stdin: Option<String>,
    /// The output of a shell command as a stream component: NAME=COMMAND
    /// (e.g. db="pg_dump -Fc app"). A non-zero exit fails the component.
    #[arg(long = "command", value_name = "NAME=COMMAND")]
    commands: Vec<String>,
    /// Exclude glob for directory components (gitignore syntax); repeatable.
    #[arg(long = "exclude", value_name = "GLOB")]
    excludes: Vec<String>,
    /// Back up the `[[components]]` of this coffer.toml (databases, files, …).
    #[arg(long, short = 'c', env = "COFFER_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Only this component of --config; repeatable (default: all of them).
    #[arg(long = "component", value_name = "NAME", requires = "config")]
    components: Vec<String>,
    /// Directory for staging copies (SQLite copies, files a command writes).
    #[arg(long, env = "COFFER_STAGING_DIR", value_name = "DIR")]
    staging: Option<PathBuf>,
    /// Age X25519 public key (age1…) that `sensitive = true` components are
    /// sealed to; repeatable. Default: `[sensitive] recipients` of --config.
    #[arg(
        long = "age-recipient",
        value_name = "AGE1…",
        env = "COFFER_AGE_RECIPIENTS",
        value_delimiter = ','
    )]
    age_recipients: Vec<String>,
    /// Seal every component of this backup, not only sensitive ones.
    #[arg(long)]
    seal: bool,
}

#[derive(Debug, Args)]
struct RestoreArgs {
    /// Snapshot id (or unique prefix, or `latest`).
    snapshot: String,
    /// Directory to restore a tree into (must be empty unless --overwrite or --mirror).
    #[arg(long, value_name = "DIR", conflicts_with = "output")]
    target: Option<PathBuf>,
    /// File to write a stream into (`-` for standard output).
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Restore over existing files, keeping files the snapshot does not have.
    #[arg(long, conflicts_with = "mirror")]
    overwrite: bool,
    /// Make the target exactly the snapshot: also delete files it does not have.
    #[arg(long)]
    mirror: bool,
    /// Restore the snapshot's component through its driver into the
    /// component of the same name in this coffer.toml (a database, a Redis
    /// instance, a path — possibly of a new installation).
    #[arg(long, short = 'c', value_name = "FILE", conflicts_with_all = ["target", "output"])]
    config: Option<PathBuf>,
    /// With --config: restore into this component of the file instead of
    /// the one named like the snapshot's component.
    #[arg(long = "component", value_name = "NAME", requires = "config")]
    component: Option<String>,
    /// Databases, Redis: remove what the destination has first (see docs/components.md).
    #[arg(long, requires = "config")]
    clean: bool,
    /// PostgreSQL: do not restore ownership and privileges (the roles do not exist here).
    #[arg(long, requires = "config")]
    no_owner: bool,
    /// PostgreSQL: SET ROLE to this role while restoring, so it owns the objects.
    #[arg(long, requires = "config", value_name = "ROLE")]
    role: Option<String>,
    /// Databases: fail instead of creating a missing database.
    #[arg(long, requires = "config")]
    no_create_database: bool,
    /// Directory for staging copies (Redis RDB files, `{file}` inputs).
    #[arg(long, env = "COFFER_STAGING_DIR", value_name = "DIR")]
    staging: Option<PathBuf>,
    /// File holding the age identity (AGE-SECRET-KEY-1…, as age-keygen
    /// writes it) that opens a sealed snapshot.
    #[arg(long, env = "COFFER_AGE_IDENTITY_FILE", value_name = "FILE")]
    age_identity: Option<PathBuf>,
}

/// The result of one component of `repo backup`.
#[derive(Debug, Serialize)]
struct ComponentResult {
    component: String,
    ok: bool,
    snapshot: Option<SnapshotInfo>,
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct BackupResult {
    backup_id: String,
    label: String,
    complete: bool,
    components: Vec<ComponentResult>,
}

enum Spec {
    Dir(ComponentName, PathBuf),
    Stdin(ComponentName, String),
    Command(ComponentName, String),
    /// A component from a coffer.toml, backed up by its driver.
    Config(ComponentSpec),
}

/// The `[[components]]` of a coffer.toml, with the file named in errors.
pub(crate) fn read_config(path: &Path) -> anyhow::Result<Vec<ComponentSpec>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    parse_components(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The component called `name` in `specs`.
fn pick<'a>(
    specs: &'a [ComponentSpec],
    name: &str,
    file: &Path,
) -> anyhow::Result<&'a ComponentSpec> {
    specs
        .iter()
        .find(|s| s.name.as_str() == name)
        .ok_or_else(|| {
            let known: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            anyhow::anyhow!(
                "{} has no component {name:?} (it has: {})",
                file.display(),
                known.join(", ")
            )
        })
}

fn split_spec(s: &str, what: &str) -> anyhow::Result<(ComponentName, Option<String>)> {
    let (name, rest) = match s.split_once('=') {
        Some((n, r)) => (n, Some(r.to_owned())),
        None => (s, None),
    };
    let name = ComponentName::new(name).map_err(|e| anyhow::anyhow!("{what} {s:?}: {e}"))?;
    Ok((name, rest))
}

fn parse_specs(args: &BackupArgs) -> anyhow::Result<Vec<Spec>> {
    let mut specs = Vec::new();
    for d in &args.dirs {
        let (name, path) = split_spec(d, "--dir")?;
        let path = path
            .filter(|p| !p.is_empty())
            .ok_or_else(|| anyhow::anyhow!("--dir {d:?}: expected NAME=PATH"))?;
        specs.push(Spec::Dir(name, PathBuf::from(path)));
    }
    if let Some(s) = &args.stdin {
        let (name, file) = split_spec(s, "--stdin")?;
        let file = file.unwrap_or_else(|| name.to_string());
        specs.push(Spec::Stdin(name, file));
    }
    for c in &args.commands {
        let (name, cmd) = split_spec(c, "--command")?;
        let cmd = cmd
            .filter(|c| !c.trim().is_empty())
            .ok_or_else(|| anyhow::anyhow!("--command {c:?}: expected NAME=COMMAND"))?;
        specs.push(Spec::Command(name, cmd));
    }
    if let Some(file) = &args.config {
        let all = read_config(file)?;
        if args.components.is_empty() {
            specs.extend(all.into_iter().map(Spec::Config));
        } else {
            for name in &args.components {
                specs.push(Spec::Config(pick(&all, name, file)?.clone()));
            }
        }
    }
    if specs.is_empty() {
        anyhow::bail!(
            "nothing to back up: give --config FILE, --dir NAME=PATH, --stdin NAME or --command NAME=COMMAND"
        );
    }
    let mut names: Vec<&str> = specs
        .iter()
        .map(|s| match s {
            Spec::Dir(n, _) | Spec::Stdin(n, _) | Spec::Command(n, _) => n.as_str(),
            Spec::Config(c) => c.name.as_str(),
        })
        .collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        anyhow::bail!("component {:?} is given twice", w[0]);
    }
    Ok(specs)
}

/// What to seal components to: `--age-recipient`, else the config file's
/// `[sensitive] recipients`. Refuses a sensitive component (or `--seal`)
/// with nothing to seal to, rather than storing it less protected.
fn sealing(args: &BackupArgs, specs: &[Spec]) -> anyhow::Result<Option<Arc<AgeRecipients>>> {
    let mut keys = args.age_recipients.clone();
    if keys.is_empty()
        && let Some(file) = &args.config
    {
        let text = std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
        let doc: toml::Table =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        if let Some(list) = doc
            .get("sensitive")
            .and_then(|s| s.get("recipients"))
            .and_then(toml::Value::as_array)
        {
            keys = list
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    anyhow::anyhow!("{}: sensitive.recipients must be strings", file.display())
                })?;
        }
    }
    let sensitive = specs
        .iter()
        .any(|s| matches!(s, Spec::Config(c) if c.sensitive));
    if keys.is_empty() {
        if args.seal || sensitive {
            anyhow::bail!(
                "nothing to seal to: sensitive components (and --seal) need an age public key — \
                 give --age-recipient age1… or [sensitive] recipients in the config file"
            );
        }
        return Ok(None);
    }
    AgeRecipients::parse(&keys)
        .map(|r| Some(Arc::new(r)))
        .map_err(|e| anyhow::anyhow!("--age-recipient: {e}"))
}

/// Runs `coffer repo …`.
pub fn run(args: RepoArgs) -> ProcessExit {
    let out = Output { json: args.json };
    let target = match target::parse(&args.repo) {
        Ok(t) => t,
        Err(e) => return out.error(ExitCode::Usage, "usage", &format!("{e:#}")),
    };
    if let RepoCommand::Validate = args.command {
        return validate(&target, out);
    }
    let storage = target.storage();
    let usage = |msg: String| out.error(ExitCode::Usage, "usage", &msg);

    // Validate what can be validated before asking for a password.
    let specs = match &args.command {
        RepoCommand::Backup(b) => {
            if let Err(e) = Label::new(&b.label) {
                return usage(e.to_string());
            }
            match parse_specs(b).and_then(|s| Ok((sealing(b, &s)?, s))) {
                Ok(s) => Some(s),
                Err(e) => return usage(format!("{e:#}")),
            }
        }
        _ => None,
    };
    if let RepoCommand::Restore(r) = &args.command
        && r.target.is_none()
        && r.output.is_none()
        && r.config.is_none()
    {
        return usage(
            "restore needs --target DIR (a directory tree), --output FILE (a stream) or \
             --config FILE (into a configured component)"
                .into(),
        );
    }

    if let RepoCommand::Locks = args.command {
        return locks(&*storage, out);
    }

    let pw = match password::read(args.password_file.as_deref(), "repository password: ") {
        Ok(p) => p,
        Err(e) => return usage(format!("{e:#}")),
    };

    if let RepoCommand::Init = args.command {
        return match Repo::init(storage, &pw) {
            Ok(repo) => {
                out.result(&serde_json::json!({ "location": repo.location(), "created": true }), |_| {
                    format!(
                        "created repository at {}\nKeep the password safe: without it the backups cannot be read.",
                        repo.location()
                    )
                });
                ExitCode::Ok.into()
            }
            Err(e) => out.engine_error(&e),
        };
    }

    let repo = match Repo::open(storage, &pw) {
        Ok(r) => r,
        Err(e) => return out.engine_error(&e),
    };

    match args.command {
        RepoCommand::Init => unreachable!("handled above"),
        RepoCommand::Backup(b) => {
            let (seal, specs) = specs.unwrap_or_default();
            backup(&repo, &b, specs, seal, out)
        }
        RepoCommand::Snapshots {
            backup,
            label,
            component,
        } => {
            let filter = SnapshotFilter {
                backup_id: backup,
                label,
                component,
            };
            match repo.snapshots(&filter) {
                Ok(list) => {
                    out.result(&list, |list| {
                        let mut s = format!(
                            "{:<10} {:<20} {:<48} {:<16} {:>10}\n",
                            "ID", "TIME", "BACKUP", "COMPONENT", "SIZE"
                        );
                        for snap in list {
                            let (b, c) = snap
                                .backup
                                .as_ref()
                                .map(|b| (b.backup_id.to_string(), b.component.to_string()))
                                .unwrap_or_default();
                            s.push_str(&format!(
                                "{:<10} {:<20} {:<48} {:<16} {:>10}\n",
                                &snap.id[..8.min(snap.id.len())],
                                snap.time.get(..19).unwrap_or(&snap.time),
                                b,
                                c,
                                human_bytes(snap.bytes)
                            ));
                        }
                        s.push_str(&format!("{} snapshots", list.len()));
                        s
                    });
                    ExitCode::Ok.into()
                }
                Err(e) => out.engine_error(&e),
            }
        }
        RepoCommand::Restore(r) => restore(&repo, &r, out),
        RepoCommand::Check { read_data } => match repo.check(read_data.as_deref()) {
            Ok(report) => {
                out.result(&report, |r| {
                    let mut s = String::new();
                    for e in &r.errors {
                        s.push_str(&format!("error: {e}\n"));
                    }
                    for w in &r.warnings {
                        s.push_str(&format!("warning: {w}\n"));
                    }
                    s.push_str(if r.is_ok() {
                        "no errors were found"
                    } else {
                        "the repository is damaged"
                    });
                    s
                });
                if report.is_ok() {
                    ExitCode::Ok.into()
                } else {
                    ExitCode::CheckFailed.into()
                }
            }
            Err(e) => out.engine_error(&e),
        },
        RepoCommand::Forget {
            mut snapshots,
            backup,
            prune,
        } => {
            if let Some(b) = backup {
                if let Err(e) = BackupId::parse(&b) {
                    return usage(e.to_string());
                }
                match repo.snapshots(&SnapshotFilter {
                    backup_id: Some(b.clone()),
                    ..Default::default()
                }) {
                    Ok(list) if list.is_empty() => {
                        return out.engine_error(&EngineError::NotFound(format!(
                            "no snapshots of backup {b}"
                        )));
                    }
                    Ok(list) => snapshots.extend(list.into_iter().map(|s| s.id)),
                    Err(e) => return out.engine_error(&e),
                }
            }
            if snapshots.is_empty() {
                return usage("give snapshot ids or --backup ID".into());
            }
            let removed = match repo.forget(&snapshots) {
                Ok(n) => n,
                Err(e) => return out.engine_error(&e),
            };
            let pruned = if prune {
                match repo.prune(false) {
                    Ok(p) => Some(p),
                    Err(e) => return out.engine_error(&e),
                }
            } else {
                None
            };
            out.result(
                &serde_json::json!({ "removed": removed, "prune": pruned }),
                |_| {
                    format!(
                        "removed {removed} snapshots{}",
                        if prune {
                            " and pruned"
                        } else {
                            "; run `coffer repo prune` to free the space"
                        }
                    )
                },
            );
            ExitCode::Ok.into()
        }
        RepoCommand::Prune { instant } => match repo.prune(instant) {
            Ok(report) => {
                out.result(&report, |r| {
                    format!(
                        "removed {} packs ({}), repacked {}; {} packs newly marked and {} waiting \
                         for removal by a prune after the 23 h grace period",
                        r.packs_removed,
                        human_bytes(r.bytes_freed),
                        r.packs_repacked,
                        r.packs_marked,
                        r.packs_waiting
                    )
                });
                ExitCode::Ok.into()
            }
            Err(e) => out.engine_error(&e),
        },
        RepoCommand::Key(k) => key(&repo, k, out),
        RepoCommand::Locks | RepoCommand::Validate => unreachable!("handled above"),
    }
}

fn backup(
    repo: &Repo,
    args: &BackupArgs,
    specs: Vec<Spec>,
    seal: Option<Arc<AgeRecipients>>,
    out: Output,
) -> ProcessExit {
    let label = match Label::new(&args.label) {
        Ok(l) => l,
        Err(e) => return out.error(ExitCode::Usage, "usage", &e.to_string()),
    };
    let backup_id = BackupId::generate(&label);
    let count = u32::try_from(specs.len()).unwrap_or(u32::MAX);
    let opts = TreeBackupOptions {
        excludes: args.excludes.clone(),
    };
    let staging = staging_dir(args.staging.as_deref());
    let configured: Vec<ComponentSpec> = specs
        .iter()
        .filter_map(|s| match s {
            Spec::Config(c) => Some(c.clone()),
            _ => None,
        })
        .collect();
    if let Err(msg) = coffer_components::check_staging_space(&configured, &staging) {
        return out.error(ExitCode::Failure, "preflight", &msg);
    }
    let mut results = Vec::new();
    for spec in specs {
        let (name, what) = match &spec {
            Spec::Dir(n, p) => (n.clone(), format!("{n} ({})", p.display())),
            Spec::Stdin(n, _) => (n.clone(), format!("{n} (stdin)")),
            Spec::Command(n, _) => (n.clone(), format!("{n} (command)")),
            Spec::Config(c) => (c.name.clone(), format!("{} ({})", c.name, c.kind.name())),
        };
        let bref = BackupRef::new(backup_id.clone(), name.clone(), count);
        let sensitive = matches!(&spec, Spec::Config(c) if c.sensitive);
        let repo = &match &seal {
            Some(r) if args.seal || sensitive => repo.sealed_to(Arc::clone(r)),
            _ => repo.clone(),
        };
        let bar = out.progress(&what);
        let cb = bar.as_ref().map(|(_, cb)| Arc::clone(cb));
        let res = match spec {
            Spec::Dir(_, path) => repo.backup_tree(&path, &bref, &opts, cb),
            Spec::Stdin(_, file) => {
                repo.backup_stream(Box::new(std::io::stdin()), &file, &bref, cb)
            }
            Spec::Command(_, cmd) => {
                let mut c = std::process::Command::new("sh");
                c.arg("-c").arg(&cmd);
                repo.backup_command(&mut c, name.as_str(), &bref, cb)
            }
            Spec::Config(spec) => {
                let ctx = BackupContext {
                    repo,
                    backup: &bref,
                    staging_dir: &staging,
                    progress: cb,
                };
                coffer_components::backup(&spec, &ctx).map_err(component_error)
            }
        };
        if let Some((bar, _)) = bar {
            bar.finish_and_clear();
        }
        results.push(match res {
            Ok(snap) => ComponentResult {
                component: name.to_string(),
                ok: true,
                snapshot: Some(snap),
                error: None,
            },
            Err(e @ (EngineError::Locked { .. } | EngineError::Storage(_)))
                if results.is_empty() =>
            {
                // Nothing was written: report it as the error it is.
                return out.engine_error(&e);
            }
            Err(e) => ComponentResult {
                component: name.to_string(),
                ok: false,
                snapshot: None,
                error: Some(e.to_string()),
            },
        });
    }
    let complete = results.iter().all(|r| r.ok);
    let result = BackupResult {
        backup_id: backup_id.to_string(),
        label: label.to_string(),
        complete,
        components: results,
    };
    out.result(&result, |r| {
        let mut s = String::new();
        for c in &r.components {
            match (&c.snapshot, &c.error) {
                (Some(snap), _) => s.push_str(&format!(
                    "{:<16} ok     snapshot {}  {} files  {}  (+{} stored)\n",
                    c.component,
                    &snap.id[..8.min(snap.id.len())],
                    snap.files,
                    human_bytes(snap.bytes),
                    human_bytes(snap.bytes_added)
                )),
                (None, Some(e)) => s.push_str(&format!("{:<16} FAILED {e}\n", c.component)),
                _ => {}
            }
        }
        s.push_str(&format!(
            "backup {} {}",
            r.backup_id,
            if r.complete {
                "is complete"
            } else {
                "is INCOMPLETE"
            }
        ));
        s
    });
    if complete {
        ExitCode::Ok.into()
    } else {
        ExitCode::Partial.into()
    }
}

fn restore(repo: &Repo, args: &RestoreArgs, out: Output) -> ProcessExit {
    let with_identity;
    let repo = match &args.age_identity {
        None => repo,
        Some(file) => {
            let identity = std::fs::read_to_string(file)
                .map_err(|e| format!("reading {}: {e}", file.display()))
                .and_then(|t| {
                    t.parse::<AgeIdentity>()
                        .map_err(|e| format!("{}: {e}", file.display()))
                });
            match identity {
                Ok(id) => {
                    with_identity = repo.with_identity(Arc::new(id));
                    &with_identity
                }
                Err(e) => return out.error(ExitCode::Usage, "usage", &e),
            }
        }
    };
    if let Some(file) = &args.config {
        return restore_component(repo, args, file, out);
    }
    if let Some(target) = &args.target {
        let mode = restore_mode(args.mirror, args.overwrite);
        let bar = out.progress("restore");
        let cb = bar.as_ref().map(|(_, cb)| Arc::clone(cb));
        let res = repo.restore_tree(&args.snapshot, target, mode, cb);
        if let Some((bar, _)) = bar {
            bar.finish_and_clear();
        }
        return match res {
            Ok(snap) => {
                out.result(&snap, |s| {
                    format!(
                        "restored snapshot {} into {}",
                        &s.id[..8.min(s.id.len())],
                        target.display()
                    )
                });
                ExitCode::Ok.into()
            }
            Err(e) => out.engine_error(&e),
        };
    }
    let Some(output) = &args.output else {
        return out.error(
            ExitCode::Usage,
            "usage",
            "restore needs --target or --output",
        );
    };
    if output.as_os_str() == "-" {
        let stdout = std::io::stdout();
        let mut lock = stdout.lock();
        return match repo.restore_stream(&args.snapshot, &mut lock) {
            Ok(_) => match lock.flush() {
                Ok(()) => ExitCode::Ok.into(),
                Err(e) => out.error(
                    ExitCode::Failure,
                    "io",
                    &format!("writing standard output: {e}"),
                ),
            },
            Err(e) => out.engine_error(&e),
        };
    }
    // Write beside the destination and rename: a failed restore leaves no
    // truncated file under the requested name.
    let dir = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = match tempfile::Builder::new()
        .prefix(".coffer-restore-")
        .tempfile_in(dir)
    {
        Ok(t) => t,
        Err(e) => {
            return out.error(
                ExitCode::Failure,
                "io",
                &format!("creating a file in {}: {e}", dir.display()),
            );
        }
    };
    let res = repo.restore_stream(&args.snapshot, tmp.as_file_mut());
    match res {
        Ok(snap) => {
            if let Err(e) = tmp.as_file().sync_all() {
                return out.error(
                    ExitCode::Failure,
                    "io",
                    &format!("writing {}: {e}", output.display()),
                );
            }
            if let Err(e) = tmp.persist(output) {
                return out.error(
                    ExitCode::Failure,
                    "io",
                    &format!("writing {}: {e}", output.display()),
                );
            }
            out.result(&snap, |s| {
                format!(
                    "restored snapshot {} into {}",
                    &s.id[..8.min(s.id.len())],
                    output.display()
                )
            });
            ExitCode::Ok.into()
        }
        Err(e) => out.engine_error(&e),
    }
}

fn key(repo: &Repo, cmd: KeyCommand, out: Output) -> ProcessExit {
    match cmd {
        KeyCommand::Add { new_password_file } => {
            let pw = match new_password_file {
                Some(f) => password::read(Some(&f), ""),
                None => match std::env::var("COFFER_NEW_PASSWORD") {
                    Ok(p) if !p.is_empty() => Ok(p),
                    _ => password::prompt_new(),
                },
            };
            let pw = match pw {
                Ok(p) => p,
                Err(e) => return out.error(ExitCode::Usage, "usage", &format!("{e:#}")),
            };
            match repo.add_key(&pw) {
                Ok(id) => {
                    out.result(&serde_json::json!({ "id": id }), |_| {
                        format!("added key {id}")
                    });
                    ExitCode::Ok.into()
                }
                Err(e) => out.engine_error(&e),
            }
        }
        KeyCommand::List => match repo.list_keys() {
            Ok(keys) => {
                out.result(&keys, |keys| {
                    keys.iter()
                        .map(|k| {
                            format!(
                                "{} {:<8} {} {}",
                                if k.current { "*" } else { " " },
                                &k.id[..8.min(k.id.len())],
                                k.hostname.as_deref().unwrap_or("-"),
                                k.created.as_deref().unwrap_or("-")
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                });
                ExitCode::Ok.into()
            }
            Err(e) => out.engine_error(&e),
        },
        KeyCommand::Remove { id } => match repo.remove_key(&id) {
            Ok(id) => {
                out.result(&serde_json::json!({ "removed": id }), |_| {
                    format!("removed key {id}")
                });
                ExitCode::Ok.into()
            }
            Err(e) => out.engine_error(&e),
        },
    }
}

/// One lock object, as `repo locks` shows it.
#[derive(Debug, Serialize)]
struct LockRow {
    #[serde(flatten)]
    info: LockInfo,
    /// Whether the stale-lock rule applies (the next operation will remove it).
    stale: bool,
}

fn locks(storage: &dyn Storage, out: Output) -> ProcessExit {
    match RepoLock::list(storage) {
        Ok(list) => {
            let rows: Vec<LockRow> = list
                .into_iter()
                .map(|info| LockRow {
                    stale: info.is_stale_now(),
                    info,
                })
                .collect();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            out.result(&rows, |rows| {
                let mut s = String::new();
                for r in rows {
                    s.push_str(&format!(
                        "{:<10} {:<9} {:<12} pid {:<8} on {:<20} refreshed {} s ago{}\n",
                        &r.info.id[..8.min(r.info.id.len())],
                        format!("{:?}", r.info.mode).to_lowercase(),
                        r.info.owner,
                        r.info.pid,
                        r.info.host,
                        now.saturating_sub(r.info.refreshed),
                        if r.stale { " (stale)" } else { "" }
                    ));
                }
                s.push_str(&format!("{} locks", rows.len()));
                s
            });
            ExitCode::Ok.into()
        }
        Err(e) => out.engine_error(&e),
    }
}

/// The staging directory: the option, else a `coffer-staging` directory in
/// the system's temporary directory.
/// `--mirror`, `--overwrite`, or refusing a non-empty destination.
pub(crate) fn restore_mode(mirror: bool, overwrite: bool) -> RestoreMode {
    if mirror {
        RestoreMode::Mirror
    } else if overwrite {
        RestoreMode::Overwrite
    } else {
        RestoreMode::RefuseNonEmpty
    }
}

pub(crate) fn staging_dir(option: Option<&Path>) -> PathBuf {
    option
        .map(Path::to_path_buf)
        .unwrap_or_else(|| std::env::temp_dir().join("coffer-staging"))
}

/// A component failure as an engine error, so it gets the same exit code
/// and message shape as everything else `repo backup` reports.
fn component_error(e: ComponentError) -> EngineError {
    match e {
        ComponentError::Engine { source, .. } => source,
        ComponentError::InvalidInput { .. } => EngineError::InvalidInput(e.to_string()),
        other => EngineError::Engine(other.to_string()),
    }
}

/// `coffer repo restore SNAPSHOT --config FILE`: through the component's driver.
fn restore_component(repo: &Repo, args: &RestoreArgs, file: &Path, out: Output) -> ProcessExit {
    let usage = |msg: String| out.error(ExitCode::Usage, "usage", &msg);
    let specs = match read_config(file) {
        Ok(s) => s,
        Err(e) => return usage(format!("{e:#}")),
    };
    let all = match repo.snapshots(&SnapshotFilter::default()) {
        Ok(list) => list,
        Err(e) => return out.engine_error(&e),
    };
    let matching: Vec<&SnapshotInfo> = if args.snapshot == "latest" {
        // The newest snapshot of the component named with --component.
        let Some(name) = &args.component else {
            return usage("`latest` with --config needs --component NAME".into());
        };
        all.iter()
            .rev()
            .find(|s| {
                s.backup
                    .as_ref()
                    .is_some_and(|b| b.component.as_str() == name)
            })
            .into_iter()
            .collect()
    } else {
        all.iter()
            .filter(|s| s.id.starts_with(&args.snapshot))
            .collect()
    };
    let snap = match matching.as_slice() {
        [one] => *one,
        [] => {
            return out.engine_error(&EngineError::NotFound(format!(
                "no snapshot {:?}",
                args.snapshot
            )));
        }
        _ => return usage(format!("snapshot prefix {:?} is ambiguous", args.snapshot)),
    };
    let name = match (&args.component, &snap.backup) {
        (Some(n), _) => n.clone(),
        (None, Some(b)) => b.component.to_string(),
        (None, None) => {
            return usage(format!(
                "snapshot {} was not written by Coffer; name the destination with --component",
                &snap.id[..8]
            ));
        }
    };
    let spec = match pick(&specs, &name, file) {
        Ok(s) => s,
        Err(e) => return usage(format!("{e:#}")),
    };
    let options = RestoreOptions {
        mode: restore_mode(args.mirror, args.overwrite),
        clean: args.clean,
        create_database: !args.no_create_database,
        no_owner: args.no_owner,
        role: args.role.clone(),
    };
    let staging = staging_dir(args.staging.as_deref());
    let bar = out.progress(&format!("restore {name}"));
    let cb = bar.as_ref().map(|(_, cb)| Arc::clone(cb));
    let ctx = RestoreContext {
        source: RestoreSource::Snapshot {
            repo,
            snapshot: snap,
        },
        staging_dir: &staging,
        options: &options,
        progress: cb,
    };
    let res = coffer_components::restore(spec, &ctx);
    if let Some((bar, _)) = bar {
        bar.finish_and_clear();
    }
    match res {
        Ok(report) => {
            out.result(
                &serde_json::json!({ "snapshot": snap.id, "component": name, "notes": report.notes }),
                |_| {
                    let mut s = report.notes.join("\n");
                    s.push_str(&format!(
                        "\nrestored component {name} from snapshot {}",
                        &snap.id[..8]
                    ));
                    s
                },
            );
            ExitCode::Ok.into()
        }
        Err(e) => out.engine_error(&component_error(e)),
    }
}

/// `coffer repo validate`: the target's probe, step by step.
fn validate(target: &OpenTarget, out: Output) -> ProcessExit {
    let report = target.validate(ValidateOptions::default());
    out.result(&report, |r| {
        let mut s = format!("validating {}\n", r.location);
        for step in &r.steps {
            s.push_str(&format!(
                "{:<8} {:<40} {:>6} ms  {}\n",
                format!("{:?}", step.status).to_lowercase(),
                step.name,
                step.duration_ms,
                step.message
            ));
        }
        s.push_str(if r.ok {
            "the target can be used"
        } else {
            "the target CANNOT be used as it is"
        });
        s
    });
    if report.ok {
        ExitCode::Ok.into()
    } else {
        ExitCode::Failure.into()
    }
}
