//! `coffer restore --from-file FILE`: restores an export (a `.coffer` file)
//! into the components of a coffer.toml — a migration to a new installation
//! without a server. The same rules as `POST /api/v1/restores`: the whole
//! file is decrypted and checked first, every component must match one of
//! the same name and kind, or nothing is restored.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use coffer_components::{PortableFile, RestoreContext, RestoreOptions, RestoreSource};
use coffer_engine::{AgeIdentity, ContentKind};
use coffer_export::{Limits, Secret, Unpacked};
use coffer_model::component::ComponentSpec;
use serde::Serialize;

use super::Outcome;
use crate::components::{read_config, restore_mode, staging_dir};
use crate::error::{CliError, CliResult};
use crate::output::Output;
use crate::password;

/// Without a subcommand: restore an export here, offline, into the
/// components of a coffer.toml. `coffer restore upload`: send it to a server.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct RestoreArgs {
    #[command(subcommand)]
    pub upload: Option<RestoreCommand>,
    /// The export to restore (a `.coffer` file from `GET /api/v1/exports/{id}/download`).
    #[arg(long, value_name = "FILE", required = true)]
    from_file: Option<PathBuf>,
    /// The coffer.toml whose `[[components]]` say where each component goes.
    #[arg(
        long,
        short = 'c',
        env = "COFFER_CONFIG",
        value_name = "FILE",
        required = true
    )]
    config: Option<PathBuf>,
    /// The export's password: first line of this file (else
    /// COFFER_EXPORT_PASSWORD, else a prompt on the terminal).
    #[arg(long, value_name = "FILE", conflicts_with = "identity")]
    password_file: Option<PathBuf>,
    /// For an export made for an age recipient: the identity file.
    #[arg(long, value_name = "FILE")]
    identity: Option<PathBuf>,
    /// The age identity file that opens sealed (sensitive) components.
    #[arg(long, env = "COFFER_AGE_IDENTITY_FILE", value_name = "FILE")]
    age_identity: Option<PathBuf>,
    /// Restore only these components of the export (repeatable).
    #[arg(long = "component", value_name = "NAME")]
    components: Vec<String>,
    /// Restore over existing files, keeping files the export does not have.
    #[arg(long, conflicts_with = "mirror")]
    overwrite: bool,
    /// Make directories exactly the export's: also delete what it does not have.
    #[arg(long)]
    mirror: bool,
    /// Databases, Redis, S3: remove what the destination has first.
    #[arg(long)]
    clean: bool,
    /// PostgreSQL: do not restore ownership and privileges.
    #[arg(long)]
    no_owner: bool,
    /// Directory for the unpacked export and staging copies (needs the export's size free).
    #[arg(long, env = "COFFER_STAGING_DIR", value_name = "DIR")]
    staging: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `coffer restore upload`.
#[derive(Debug, clap::Subcommand)]
pub enum RestoreCommand {
    /// Upload an export to a server and restore it into that server's
    /// components (talks to the server: Terraform Enterprise's migration).
    Upload(super::server_restore::UploadArgs),
    /// A server's restores, newest first (talks to the server).
    List(super::server_restore::ListArgs),
    /// One restore: each component's state, notes and error (talks to the server).
    Show(super::server_restore::IdArgs),
    /// A restore's log (talks to the server).
    Log(super::server_restore::IdArgs),
    /// Follow a running restore to READY (exit 0) or ERROR (exit 5) (talks to the server).
    Wait(super::server_restore::IdArgs),
}

impl RestoreCommand {
    /// The subcommand's `--json`.
    pub fn json(&self) -> bool {
        match self {
            RestoreCommand::Upload(a) => a.json,
            RestoreCommand::List(a) => a.json,
            RestoreCommand::Show(a) | RestoreCommand::Log(a) | RestoreCommand::Wait(a) => a.json,
        }
    }
}

#[derive(Debug, Serialize)]
struct Restored {
    backup_id: String,
    label: String,
    components: Vec<ComponentOutcome>,
}

#[derive(Debug, Serialize)]
struct ComponentOutcome {
    component: String,
    ok: bool,
    notes: Vec<String>,
    error: Option<String>,
}

fn read_identity(file: &Path) -> CliResult<String> {
    std::fs::read_to_string(file)
        .map_err(|e| CliError::usage(format!("reading {}: {e}", file.display())))
}

/// What opens the export: `--identity`, else its password.
fn export_secret(args: &RestoreArgs) -> CliResult<Secret> {
    match &args.identity {
        Some(f) => Secret::identity(&read_identity(f)?).map_err(|e| CliError::usage(e.to_string())),
        None => password::read_from(
            args.password_file.as_deref(),
            "COFFER_EXPORT_PASSWORD",
            "export password: ",
        )
        .map(|p| Secret::passphrase(&p))
        .map_err(|e| CliError::usage(format!("{e:#}"))),
    }
}

/// `--age-identity`, which opens sealed components.
fn age_identity(args: &RestoreArgs) -> CliResult<Option<Arc<AgeIdentity>>> {
    let Some(f) = &args.age_identity else {
        return Ok(None);
    };
    let id = read_identity(f)?
        .parse::<AgeIdentity>()
        .map_err(|e| CliError::usage(format!("{}: {e}", f.display())))?;
    Ok(Some(Arc::new(id)))
}

/// Decrypts the export into `dir` and checks it against its manifest — the
/// whole file, before anything is restored.
fn unpack(file: &Path, secret: &Secret, dir: &Path) -> CliResult<Unpacked> {
    let input = std::fs::File::open(file)
        .map(|f| std::io::BufReader::with_capacity(256 << 10, f))
        .map_err(|e| CliError::usage(format!("opening {}: {e}", file.display())))?;
    let unpacked = coffer_export::unpack(input, secret, dir, &Limits::default())?;
    Ok(unpacked)
}

/// Pairs each wanted component of the export with the configured component
/// of the same name and kind. Refuses the lot — nothing restored — if one
/// has no match, is sealed without `--age-identity`, or its file fails the
/// hostile-input checks.
fn plan<'a>(
    args: &RestoreArgs,
    specs: &'a [ComponentSpec],
    unpacked: &Unpacked,
    age_identity: Option<&Arc<AgeIdentity>>,
) -> CliResult<Vec<(&'a ComponentSpec, PortableFile)>> {
    let manifest = &unpacked.manifest;
    if let Some(n) = args
        .components
        .iter()
        .find(|n| !manifest.components.iter().any(|c| &c.name == *n))
    {
        return Err(CliError::usage(format!(
            "the export has no component {n:?}"
        )));
    }
    let mut plan = Vec::new();
    let mut unmatched = Vec::new();
    for c in &manifest.components {
        if !args.components.is_empty() && !args.components.contains(&c.name) {
            continue;
        }
        let spec = specs
            .iter()
            .find(|s| s.name.as_str() == c.name && s.kind.name() == c.kind);
        let (Some(spec), Some(path)) = (spec, unpacked.files.get(&c.name)) else {
            unmatched.push(format!("{} ({})", c.name, c.kind));
            continue;
        };
        if c.sealed && age_identity.is_none() {
            return Err(CliError::usage(format!(
                "component {} is sealed to an age recipient: pass --age-identity FILE \
                 (nothing was restored)",
                c.name
            )));
        }
        plan.push((
            spec,
            PortableFile {
                path: path.clone(),
                file_name: c.file_name().to_owned(),
                content: if c.is_tree() {
                    ContentKind::Tree
                } else {
                    ContentKind::Stream
                },
                sealed: c.sealed,
                identity: age_identity.cloned(),
            },
        ));
    }
    if let Some(e) = plan
        .iter()
        .find_map(|(spec, file)| file.verify(spec.name.as_str()).err())
    {
        return Err(CliError::failure(
            "refused",
            format!("{e} (nothing was restored)"),
        ));
    }
    if !unmatched.is_empty() {
        return Err(CliError::usage(format!(
            "nothing was restored: {} has no component of the same name and kind for {}",
            args.config
                .as_deref()
                .unwrap_or(Path::new("coffer.toml"))
                .display(),
            unmatched.join(", ")
        )));
    }
    Ok(plan)
}

/// Runs `coffer restore --from-file`. A component that fails does not stop
/// the others; the result lists each, and the exit code is 5.
pub fn run(args: RestoreArgs, out: Output) -> CliResult<Outcome> {
    if let Some(command) = args.upload {
        return super::server_restore::restores(command, out);
    }
    let (Some(from_file), Some(config)) = (args.from_file.clone(), args.config.clone()) else {
        return Err(CliError::usage(
            "give --from-file FILE and --config FILE (or `coffer restore upload FILE` for a server)",
        ));
    };
    let specs = read_config(&config).map_err(|e| CliError::usage(format!("{e:#}")))?;
    let secret = export_secret(&args)?;
    let age_identity = age_identity(&args)?;
    let staging = staging_dir(args.staging.as_deref());
    let unpack_dir = std::fs::create_dir_all(&staging)
        .and_then(|()| {
            tempfile::Builder::new()
                .prefix("export-")
                .tempdir_in(&staging)
        })
        .map_err(|e| CliError::usage(format!("staging directory {}: {e}", staging.display())))?;
    let unpacked = unpack(&from_file, &secret, unpack_dir.path())?;
    let plan = plan(&args, &specs, &unpacked, age_identity.as_ref())?;
    let options = RestoreOptions {
        mode: restore_mode(args.mirror, args.overwrite),
        clean: args.clean,
        no_owner: args.no_owner,
        ..RestoreOptions::default()
    };
    let mut outcomes = Vec::new();
    for (spec, file) in &plan {
        let progress = out.progress(&format!("restore {}", spec.name));
        let ctx = RestoreContext {
            source: RestoreSource::File(file),
            staging_dir: &staging,
            options: &options,
            progress: progress.callback(),
            part: None,
        };
        let res = coffer_components::restore(spec, &ctx);
        drop(progress);
        outcomes.push(match res {
            Ok(r) => ComponentOutcome {
                component: spec.name.to_string(),
                ok: true,
                notes: r.notes,
                error: None,
            },
            Err(e) => ComponentOutcome {
                component: spec.name.to_string(),
                ok: false,
                notes: Vec::new(),
                error: Some(e.to_string()),
            },
        });
    }
    let failed = outcomes.iter().filter(|o| !o.ok).count();
    let result = Restored {
        backup_id: unpacked.manifest.backup_id.clone(),
        label: unpacked.manifest.label.clone(),
        components: outcomes,
    };
    out.result(&result, |r| {
        let mut lines = Vec::new();
        for c in &r.components {
            match &c.error {
                None => {
                    for n in &c.notes {
                        lines.push(format!("{}: {n}", c.component));
                    }
                }
                Some(e) => lines.push(format!("{}: FAILED: {e}", c.component)),
            }
        }
        lines.push(format!(
            "restored {} of {} components of backup {} ({})",
            r.components.len() - failed,
            r.components.len(),
            r.backup_id,
            r.label
        ));
        lines.join("\n")
    });
    Ok(if failed > 0 {
        Outcome::Partial
    } else {
        Outcome::Done
    })
}
