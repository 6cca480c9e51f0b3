//! `coffer restore --from-file FILE`: restores an export (a `.coffer` file)
//! into the components of a coffer.toml — a migration to a new installation
//! without a server. The same rules as `POST /api/v1/restores`: the whole
//! file is decrypted and checked first, every component must match one of
//! the same name and kind, or nothing is restored.

use std::path::{Path, PathBuf};
use std::process::ExitCode as ProcessExit;
use std::sync::Arc;

use clap::Args;
use coffer_components::{PortableFile, RestoreContext, RestoreOptions, RestoreSource};
use coffer_engine::{AgeIdentity, ContentKind};
use coffer_export::{ExportError, Limits, Secret};
use coffer_model::component::ComponentSpec;
use serde::Serialize;

use crate::exit::ExitCode;
use crate::output::Output;
use crate::password;
use crate::repo_cmd::{read_config, restore_mode, staging_dir};

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The export to restore (a `.coffer` file from `GET /api/v1/exports/{id}/download`).
    #[arg(long, value_name = "FILE")]
    from_file: PathBuf,
    /// The coffer.toml whose `[[components]]` say where each component goes.
    #[arg(long, short = 'c', env = "COFFER_CONFIG", value_name = "FILE")]
    config: PathBuf,
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
    json: bool,
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

fn read_identity(file: &Path) -> Result<String, String> {
    std::fs::read_to_string(file).map_err(|e| format!("reading {}: {e}", file.display()))
}

pub fn run(args: RestoreArgs) -> ProcessExit {
    let out = Output { json: args.json };
    let usage = |m: String| out.error(ExitCode::Usage, "usage", &m);
    let specs = match read_config(&args.config) {
        Ok(s) => s,
        Err(e) => return usage(format!("{e:#}")),
    };
    let secret = match &args.identity {
        Some(f) => read_identity(f).and_then(|t| Secret::identity(&t).map_err(|e| e.to_string())),
        None => password::read_from(
            args.password_file.as_deref(),
            "COFFER_EXPORT_PASSWORD",
            "export password: ",
        )
        .map(|p| Secret::passphrase(&p))
        .map_err(|e| format!("{e:#}")),
    };
    let secret = match secret {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    let age_identity = match &args.age_identity {
        None => None,
        Some(f) => match read_identity(f).and_then(|t| {
            t.parse::<AgeIdentity>()
                .map_err(|e| format!("{}: {e}", f.display()))
        }) {
            Ok(id) => Some(Arc::new(id)),
            Err(e) => return usage(e),
        },
    };
    let staging = staging_dir(args.staging.as_deref());
    let unpack_dir = match std::fs::create_dir_all(&staging).and_then(|()| {
        tempfile::Builder::new()
            .prefix("export-")
            .tempdir_in(&staging)
    }) {
        Ok(d) => d,
        Err(e) => return usage(format!("staging directory {}: {e}", staging.display())),
    };
    let input = match std::fs::File::open(&args.from_file) {
        Ok(f) => std::io::BufReader::with_capacity(256 << 10, f),
        Err(e) => return usage(format!("opening {}: {e}", args.from_file.display())),
    };
    // Verified whole before anything is touched.
    let unpacked =
        match coffer_export::unpack(input, &secret, unpack_dir.path(), &Limits::default()) {
            Ok(u) => u,
            Err(ExportError::WrongSecret) => {
                return out.error(
                    ExitCode::WrongPassword,
                    "wrong_password",
                    "wrong password or identity: the export cannot be decrypted with it (nothing \
                 was restored)",
                );
            }
            Err(e @ ExportError::Io { .. }) => {
                return out.error(ExitCode::Failure, "io", &e.to_string());
            }
            Err(e) => {
                return out.error(
                    ExitCode::Failure,
                    "refused",
                    &format!("{e} (nothing was restored)"),
                );
            }
        };
    let manifest = &unpacked.manifest;
    if let Some(n) = args
        .components
        .iter()
        .find(|n| !manifest.components.iter().any(|c| &c.name == *n))
    {
        return usage(format!("the export has no component {n:?}"));
    }
    let mut plan: Vec<(&ComponentSpec, PortableFile)> = Vec::new();
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
            return usage(format!(
                "component {} is sealed to an age recipient: pass --age-identity FILE \
                 (nothing was restored)",
                c.name
            ));
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
                identity: age_identity.clone(),
            },
        ));
    }
    if let Some(e) = plan
        .iter()
        .find_map(|(spec, file)| file.verify(spec.name.as_str()).err())
    {
        return out.error(
            ExitCode::Failure,
            "refused",
            &format!("{e} (nothing was restored)"),
        );
    }
    if !unmatched.is_empty() {
        return usage(format!(
            "nothing was restored: {} has no component of the same name and kind for {}",
            args.config.display(),
            unmatched.join(", ")
        ));
    }
    let options = RestoreOptions {
        mode: restore_mode(args.mirror, args.overwrite),
        clean: args.clean,
        no_owner: args.no_owner,
        ..RestoreOptions::default()
    };
    let mut outcomes = Vec::new();
    for (spec, file) in &plan {
        let bar = out.progress(&format!("restore {}", spec.name));
        let ctx = RestoreContext {
            source: RestoreSource::File(file),
            staging_dir: &staging,
            options: &options,
            progress: bar.as_ref().map(|(_, cb)| Arc::clone(cb)),
        };
        let res = coffer_components::restore(spec, &ctx);
        if let Some((bar, _)) = bar {
            bar.finish_and_clear();
        }
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
        backup_id: manifest.backup_id.clone(),
        label: manifest.label.clone(),
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
    if failed > 0 {
        ExitCode::Partial.into()
    } else {
        ExitCode::Ok.into()
    }
}
