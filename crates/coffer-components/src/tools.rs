//! Finding and running the external programs the components drive.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};

use coffer_engine::child::{StderrTail, describe_failure};

use crate::error::{ComponentError, Ctx};

/// The first of `candidates` found in `bin_dir`, or on `PATH` without one
/// (e.g. `["mariadb-dump", "mysqldump"]`).
pub(crate) fn find_program(
    ctx: &Ctx,
    bin_dir: Option<&Path>,
    candidates: &[&str],
) -> Result<PathBuf, ComponentError> {
    let dirs: Vec<PathBuf> = match bin_dir {
        Some(d) => vec![d.to_path_buf()],
        None => std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default(),
    };
    for name in candidates {
        for dir in &dirs {
            let path = dir.join(name);
            if is_executable(&path) {
                return Ok(path);
            }
        }
    }
    let names = candidates.join(" or ");
    Err(ctx.invalid(match bin_dir {
        Some(d) => format!("{names} not found in bin_dir {}", d.display()),
        None => format!("{names} not found on PATH: install the client tools or set bin_dir"),
    }))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The short name of a command's program, for messages.
pub(crate) fn program_name(cmd: &Command) -> String {
    Path::new(cmd.get_program())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| cmd.get_program().to_string_lossy().into_owned())
}

/// Runs `cmd` to completion with `input` on standard input and returns its
/// standard output; a non-zero exit is an error carrying its standard error.
pub(crate) fn output(ctx: &Ctx, cmd: &mut Command, input: &[u8]) -> Result<String, ComponentError> {
    let name = program_name(cmd);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ctx.io(format!("starting {name}"), e))?;
    // Small inputs: written before reading the output cannot deadlock.
    let written = child.stdin.take().map(|mut s| s.write_all(input));
    let out = child
        .wait_with_output()
        .map_err(|e| ctx.io(format!("running {name}"), e))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(ctx.tool(describe_failure(&name, out.status, stderr.trim())));
    }
    if let Some(Err(e)) = written {
        return Err(ctx.io(format!("writing to {name}"), e));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `cmd` and lets `feed` write its standard input (a restore stream).
/// The program's failure takes precedence over the broken pipe `feed` sees
/// when the program gives up early: its own message says why.
pub(crate) fn pipe_into(
    ctx: &Ctx,
    cmd: &mut Command,
    feed: impl FnOnce(&mut ChildStdin) -> Result<(), ComponentError>,
) -> Result<(), ComponentError> {
    let name = program_name(cmd);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ctx.io(format!("starting {name}"), e))?;
    let mut stderr = match child.stderr.take() {
        Some(s) => StderrTail::collect(s),
        None => return Err(ctx.tool(format!("{name}: no standard error pipe"))),
    };
    let fed = match child.stdin.take() {
        Some(mut stdin) => {
            let r = feed(&mut stdin);
            drop(stdin); // EOF: the program can finish.
            r
        }
        None => Err(ctx.tool(format!("{name}: no standard input pipe"))),
    };
    if fed.is_err() {
        // Do not wait forever on a program that still expects input.
        let _ = child.kill();
    }
    let status = child
        .wait()
        .map_err(|e| ctx.io(format!("waiting for {name}"), e))?;
    let text = stderr.finish();
    match fed {
        Err(e) if status.success() || is_kill(status) => Err(e),
        _ if !status.success() => Err(ctx.tool(describe_failure(&name, status, &text))),
        r => r,
    }
}

/// Killed by us (SIGKILL) after `feed` failed: `feed`'s error is the story.
fn is_kill(status: std::process::ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    const SIGKILL: i32 = 9;
    status.signal() == Some(SIGKILL)
}

/// A private staging directory for one component, removed when dropped.
pub(crate) fn staging_dir(ctx: &Ctx, parent: &Path) -> Result<tempfile::TempDir, ComponentError> {
    std::fs::create_dir_all(parent).map_err(|e| {
        ctx.io(
            format!("creating staging directory {}", parent.display()),
            e,
        )
    })?;
    tempfile::Builder::new()
        .prefix(&format!("coffer-{}-", ctx.0))
        .tempdir_in(parent)
        .map_err(|e| {
            ctx.io(
                format!("creating a staging directory in {}", parent.display()),
                e,
            )
        })
}
