//! `command`: the escape hatch. A dump program's standard output is the
//! backup — or, for tools that only write files (`etcdctl snapshot save
//! {file}`), the file it writes at `{file}` in a staging directory. The
//! restore program reads the backup on standard input or from `{file}`.

use std::fs::File;
use std::path::Path;
use std::process::Command;

use coffer_model::component::{CommandSpec, FILE_PLACEHOLDER};

use crate::error::{ComponentError, Ctx};
use crate::sink::Sink;
use crate::tools::{output, staging_dir as make_staging};
use crate::{RestoreContext, RestoreReport};

/// `argv` as a command, `{file}` replaced by `file`.
fn build(spec: &CommandSpec, argv: &[String], file: Option<&Path>) -> Command {
    let expand = |a: &String| match file {
        Some(f) => a.replace(FILE_PLACEHOLDER, &f.to_string_lossy()),
        None => a.clone(),
    };
    let mut cmd = Command::new(expand(&argv[0]));
    cmd.args(argv[1..].iter().map(expand)).envs(&spec.env);
    cmd
}

pub(crate) fn backup<T>(
    c: &Ctx,
    spec: &CommandSpec,
    name: &str,
    staging_dir: &Path,
    sink: impl Sink<Out = T>,
) -> Result<T, ComponentError> {
    if !spec.backup_uses_file() {
        let mut cmd = build(spec, &spec.backup, None);
        return sink.command(&mut cmd, name).map_err(|e| c.engine(e));
    }
    let staging = make_staging(c, staging_dir)?;
    let path = staging.path().join(name);
    let mut cmd = build(spec, &spec.backup, Some(&path));
    output(c, &mut cmd, b"")?;
    let file = File::open(&path).map_err(|e| {
        c.io(
            format!(
                "the dump command exited 0 but its output file {} cannot be opened",
                path.display()
            ),
            e,
        )
    })?;
    sink.stream(Box::new(file), name).map_err(|e| c.engine(e))
}

pub(crate) fn restore(
    c: &Ctx,
    spec: &CommandSpec,
    ctx: &RestoreContext,
) -> Result<RestoreReport, ComponentError> {
    let Some(argv) = &spec.restore else {
        return Err(c.invalid("no restore command is configured for this component"));
    };
    if argv.iter().any(|a| a.contains(FILE_PLACEHOLDER)) {
        let staging = make_staging(c, ctx.staging_dir)?;
        let path = staging.path().join(ctx.file_name());
        let mut file = File::create(&path).map_err(|e| c.io("creating the staging file", e))?;
        ctx.stream_into(c, &mut file)?;
        drop(file);
        output(c, &mut build(spec, argv, Some(&path)), b"")?;
    } else {
        ctx.stream_into_command(c, &mut build(spec, argv, None), "restore.command.running")?;
    }
    Ok(RestoreReport {
        notes: vec![format!("restore command {:?} succeeded", argv[0])],
    })
}
