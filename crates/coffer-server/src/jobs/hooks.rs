//! Hooks: the operator's commands run around backups and restores
//! (`[hooks]` in coffer.toml), each with `sh -c`, in order, their output in
//! the job's log.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::state::Shared;

/// Which hooks.
#[derive(Debug, Clone, Copy)]
pub enum HookPoint {
    /// Before a backup's components start.
    PreBackup,
    /// After every component of a backup ended.
    PostBackup,
    /// Before a restore.
    PreRestore,
    /// After a restore.
    PostRestore,
}

impl HookPoint {
    fn name(self) -> &'static str {
        match self {
            Self::PreBackup => "pre-backup",
            Self::PostBackup => "post-backup",
            Self::PreRestore => "pre-restore",
            Self::PostRestore => "post-restore",
        }
    }
}

/// Longest hook output line kept in the log; the rest of a longer line is dropped.
const MAX_LINE: usize = 16 * 1024;
/// How long the output of a hook that exited is still read: a command it
/// left running in the background may hold its output open.
const OUTPUT_GRACE: Duration = Duration::from_secs(2);

/// Runs the hooks at `point` in order; output goes to the job's log. The
/// first failure stops the rest and is returned. Blocking.
pub fn run_hooks(
    state: &Shared,
    job: &str,
    point: HookPoint,
    env: &[(&str, String)],
) -> Result<(), String> {
    let hooks = &state.config.hooks;
    let list = match point {
        HookPoint::PreBackup => &hooks.pre_backup,
        HookPoint::PostBackup => &hooks.post_backup,
        HookPoint::PreRestore => &hooks.pre_restore,
        HookPoint::PostRestore => &hooks.post_restore,
    };
    let timeout = Duration::from_secs(hooks.timeout_secs);
    for cmd in list {
        state.log(job, &format!("{} hook: {cmd}", point.name()));
        let started = Instant::now();
        let result = run_one(state, job, point, cmd, env, timeout);
        state.log(
            job,
            &format!(
                "{} hook {} in {:.1} s",
                point.name(),
                if result.is_ok() {
                    "succeeded"
                } else {
                    "FAILED"
                },
                started.elapsed().as_secs_f64()
            ),
        );
        result?;
    }
    if !list.is_empty() {
        coffer_model::crash::crash_point(match point {
            HookPoint::PreBackup => "hook.pre-backup.ran",
            HookPoint::PostBackup => "hook.post-backup.ran",
            HookPoint::PreRestore => "hook.pre-restore.ran",
            HookPoint::PostRestore => "hook.post-restore.ran",
        });
    }
    Ok(())
}

fn run_one(
    state: &Shared,
    job: &str,
    point: HookPoint,
    cmd: &str,
    env: &[(&str, String)],
    timeout: Duration,
) -> Result<(), String> {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout stops what it started too.
        .process_group(0)
        .env("COFFER_JOB_ID", job)
        .env("COFFER_HOOK", point.name());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("{} hook {cmd:?} could not start: {e}", point.name()))?;
    let (done_tx, done_rx) = mpsc::channel();
    let mut pumps = 0;
    if let Some(out) = child.stdout.take() {
        pump(state, job, out, "stdout", done_tx.clone());
        pumps += 1;
    }
    if let Some(err) = child.stderr.take() {
        pump(state, job, err, "stderr", done_tx);
        pumps += 1;
    }
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if Instant::now() >= deadline => {
                kill_group(child.id());
                let _ = child.wait();
                break Err(format!(
                    "{} hook {cmd:?} timed out after {} s and was killed",
                    point.name(),
                    timeout.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => break Err(format!("{} hook {cmd:?}: {e}", point.name())),
        }
    };
    let grace = Instant::now() + OUTPUT_GRACE;
    for _ in 0..pumps {
        if done_rx
            .recv_timeout(grace.saturating_duration_since(Instant::now()))
            .is_err()
        {
            state.log(
                job,
                &format!(
                    "  (output of the {} hook still open after it exited: a background command \
                     holds it; no longer read)",
                    point.name()
                ),
            );
            break;
        }
    }
    match status? {
        s if s.success() => Ok(()),
        s => Err(format!("{} hook {cmd:?} failed ({s})", point.name())),
    }
}

/// Kills the process group the hook's shell leads (it was started with
/// `process_group(0)`).
fn kill_group(pid: u32) {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// Copies `stream` line by line into the job's log on a thread of its own;
/// signals `done` at the end of the stream.
fn pump(
    state: &Shared,
    job: &str,
    stream: impl Read + Send + 'static,
    tag: &'static str,
    done: mpsc::Sender<()>,
) {
    let state = std::sync::Arc::clone(state);
    let job = job.to_owned();
    let spawned = std::thread::Builder::new()
        .name(format!("coffer-hook-{tag}"))
        .spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut line = Vec::new();
            loop {
                line.clear();
                match (&mut reader)
                    .take(MAX_LINE as u64)
                    .read_until(b'\n', &mut line)
                {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let complete = line.last() == Some(&b'\n');
                let text = String::from_utf8_lossy(&line);
                state.log(
                    &job,
                    &format!("  {tag}: {}", text.trim_end_matches(['\n', '\r'])),
                );
                if !complete && line.len() == MAX_LINE {
                    skip_line(&mut reader);
                }
            }
            let _ = done.send(());
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot read a hook's {tag}: {e}");
    }
}

/// Discards the rest of an over-long line.
fn skip_line(reader: &mut impl BufRead) {
    loop {
        let (consumed, found) = match reader.fill_buf() {
            Ok([]) | Err(_) => return,
            Ok(buf) => match buf.iter().position(|b| *b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            },
        };
        reader.consume(consumed);
        if found {
            return;
        }
    }
}
