//! `coffer repo backup`: one backup of one or more components — directories,
//! standard input, commands' output, or the `[[components]]` of a
//! coffer.toml through their drivers. Each component becomes one snapshot.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use coffer_components::BackupContext;
use coffer_engine::{AgeRecipients, ArchiverKind, EngineError, SnapshotInfo, TreeBackupOptions};
use coffer_model::component::ComponentSpec;
use coffer_model::{BackupId, BackupRef, ComponentName, Label};
use serde::Serialize;

use super::RepoLocation;
use crate::commands::Outcome;
use crate::components::{pick, read_config, staging_dir};
use crate::error::{CliError, CliResult, component_to_engine};
use crate::output::{Output, human_bytes, short_id};

#[derive(Debug, Args)]
pub struct BackupArgs {
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
    /// What writes the backup: Coffer's parallel archiver, or rustic_core's
    /// (the one before it; kept while the new one proves itself).
    #[arg(long, env = "COFFER_ARCHIVER", default_value = "coffer", value_parser = ["coffer", "rustic"])]
    archiver: String,
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

/// One component to back up, as the flags or the config file gave it.
enum Spec {
    Dir(ComponentName, PathBuf),
    Stdin(ComponentName, String),
    Command(ComponentName, String),
    /// A component from a coffer.toml, backed up by its driver.
    Config(ComponentSpec),
}

impl Spec {
    fn name(&self) -> &ComponentName {
        match self {
            Spec::Dir(n, _) | Spec::Stdin(n, _) | Spec::Command(n, _) => n,
            Spec::Config(c) => &c.name,
        }
    }
}

/// `NAME=REST` (or `NAME`) of a `what` flag.
fn split_spec(s: &str, what: &str) -> anyhow::Result<(ComponentName, Option<String>)> {
    let (name, rest) = match s.split_once('=') {
        Some((n, r)) => (n, Some(r.to_owned())),
        None => (s, None),
    };
    let name = ComponentName::new(name).map_err(|e| anyhow::anyhow!("{what} {s:?}: {e}"))?;
    Ok((name, rest))
}

/// Every component the flags name, in the order given; at least one, each
/// name once.
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
    let mut names: Vec<&str> = specs.iter().map(|s| s.name().as_str()).collect();
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

/// Runs `coffer repo backup`. Everything the flags say is checked before the
/// password is asked for. A component that fails records nothing and does
/// not stop the others; the backup is then incomplete (exit 5).
pub fn run(args: BackupArgs, location: &RepoLocation, out: Output) -> CliResult<Outcome> {
    let label = Label::new(&args.label).map_err(|e| CliError::usage(e.to_string()))?;
    let specs = parse_specs(&args).map_err(|e| CliError::usage(format!("{e:#}")))?;
    let seal = sealing(&args, &specs).map_err(|e| CliError::usage(format!("{e:#}")))?;
    let repo = location.open()?;

    let backup_id = BackupId::generate(&label);
    let staging = staging_dir(args.staging.as_deref());
    let configured: Vec<ComponentSpec> = specs
        .iter()
        .filter_map(|s| match s {
            Spec::Config(c) => Some(c.clone()),
            _ => None,
        })
        .collect();
    coffer_components::check_staging_space(&configured, &staging)
        .map_err(|msg| CliError::failure("preflight", msg))?;
    let count = u32::try_from(specs.len()).unwrap_or(u32::MAX);
    // The parser allows only the two names.
    let archiver: ArchiverKind = args.archiver.parse().unwrap_or_default();
    let opts = TreeBackupOptions {
        excludes: args.excludes.clone(),
    };
    let mut results = Vec::new();
    for spec in specs {
        let name = spec.name().clone();
        let what = match &spec {
            Spec::Dir(n, p) => format!("{n} ({})", p.display()),
            Spec::Stdin(n, _) => format!("{n} (stdin)"),
            Spec::Command(n, _) => format!("{n} (command)"),
            Spec::Config(c) => format!("{} ({})", c.name, c.kind.name()),
        };
        let bref = BackupRef::new(backup_id.clone(), name.clone(), count);
        let sensitive = matches!(&spec, Spec::Config(c) if c.sensitive);
        let repo = &match &seal {
            Some(r) if args.seal || sensitive => repo.sealed_to(Arc::clone(r)),
            _ => repo.clone(),
        }
        .with_archiver(archiver);
        let progress = out.progress(&what);
        let cb = progress.callback();
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
                coffer_components::backup(&spec, &ctx).map_err(component_to_engine)
            }
        };
        drop(progress);
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
                return Err(e.into());
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
    out.result(&result, describe);
    Ok(if complete {
        Outcome::Done
    } else {
        Outcome::Partial
    })
}

/// The text output: one line per component, then the verdict.
fn describe(r: &BackupResult) -> String {
    let mut s = String::new();
    for c in &r.components {
        match (&c.snapshot, &c.error) {
            (Some(snap), _) => s.push_str(&format!(
                "{:<16} ok     snapshot {}  {} files  {}  (+{} stored)\n",
                c.component,
                short_id(&snap.id),
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
}
