//! `coffer repo restore SNAPSHOT --config FILE`: restores a snapshot through
//! its component's driver into a component of a coffer.toml — a database, a
//! Redis instance, a bucket, a path, of this installation or a new one.

use std::path::Path;

use coffer_components::{RestoreContext, RestoreOptions, RestoreSource};
use coffer_engine::{EngineError, Repo, SnapshotFilter, SnapshotInfo};

use super::restore::RestoreArgs;
use crate::components::{pick, read_config, restore_mode, staging_dir};
use crate::error::{CliError, CliResult};
use crate::output::{Output, short_id};

/// The snapshot `args.snapshot` names: a unique id prefix, or `latest` —
/// the newest of the component named with `--component`.
fn find_snapshot<'a>(all: &'a [SnapshotInfo], args: &RestoreArgs) -> CliResult<&'a SnapshotInfo> {
    let matching: Vec<&SnapshotInfo> = if args.snapshot == "latest" {
        let Some(name) = &args.component else {
            return Err(CliError::usage(
                "`latest` with --config needs --component NAME",
            ));
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
    match matching.as_slice() {
        [one] => Ok(one),
        [] => Err(EngineError::NotFound(format!("no snapshot {:?}", args.snapshot)).into()),
        _ => Err(CliError::usage(format!(
            "snapshot prefix {:?} is ambiguous",
            args.snapshot
        ))),
    }
}

/// Restores into the component of `file` named like the snapshot's
/// component (or `--component`).
pub fn run(repo: &Repo, args: &RestoreArgs, file: &Path, out: Output) -> CliResult {
    let specs = read_config(file).map_err(|e| CliError::usage(format!("{e:#}")))?;
    let all = repo.snapshots(&SnapshotFilter::default())?;
    let snap = find_snapshot(&all, args)?;
    let name = match (&args.component, &snap.backup) {
        (Some(n), _) => n.clone(),
        (None, Some(b)) => b.component.to_string(),
        (None, None) => {
            return Err(CliError::usage(format!(
                "snapshot {} was not written by Coffer; name the destination with --component",
                short_id(&snap.id)
            )));
        }
    };
    let spec = pick(&specs, &name, file).map_err(|e| CliError::usage(format!("{e:#}")))?;
    let options = RestoreOptions {
        mode: restore_mode(args.mirror, args.overwrite),
        clean: args.clean,
        create_database: !args.no_create_database,
        no_owner: args.no_owner,
        role: args.role.clone(),
    };
    let staging = staging_dir(args.staging.as_deref());
    let progress = out.progress(&format!("restore {name}"));
    let ctx = RestoreContext {
        source: RestoreSource::Snapshot {
            repo,
            snapshot: snap,
        },
        staging_dir: &staging,
        options: &options,
        progress: progress.callback(),
        part: None,
    };
    let res = coffer_components::restore(spec, &ctx);
    drop(progress);
    let report = res?;
    out.result(
        &serde_json::json!({ "snapshot": snap.id, "component": name, "notes": report.notes }),
        |_| {
            let mut s = report.notes.join("\n");
            s.push_str(&format!(
                "\nrestored component {name} from snapshot {}",
                short_id(&snap.id)
            ));
            s
        },
    );
    Ok(())
}
