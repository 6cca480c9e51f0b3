//! Running the external programs that produce or consume component data
//! (`pg_dump`, `pg_restore`, …): their standard error is collected on a
//! thread so a chatty program never blocks on a full pipe, and a failure is
//! described with the program, its exit status and the tail of what it said.

use std::io::Read;
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};

use crate::cancel::CancelToken;
use crate::{EngineError, EngineResult};
use std::thread::JoinHandle;

/// How much of a program's standard error is kept (the end is what matters).
pub const STDERR_TAIL: usize = 64 * 1024;

/// The last [`STDERR_TAIL`] bytes a child wrote to standard error, collected
/// on a background thread.
pub struct StderrTail(Option<JoinHandle<Vec<u8>>>);

impl StderrTail {
    /// Starts collecting `stderr`.
    pub fn collect(mut stderr: ChildStderr) -> Self {
        Self(Some(std::thread::spawn(move || {
            let mut tail = Vec::new();
            let mut buf = [0u8; 8192];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > STDERR_TAIL {
                    tail.drain(..tail.len() - STDERR_TAIL);
                }
            }
            tail
        })))
    }

    /// Waits for the child to close standard error and returns what it
    /// wrote, trimmed. Call after the child has exited.
    pub fn finish(&mut self) -> String {
        let bytes = self
            .0
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        String::from_utf8_lossy(&bytes).trim().to_owned()
    }
}

/// `"<program> exit status: 1: <stderr>"` — the message for a program that failed.
pub fn describe_failure(program: &str, status: ExitStatus, stderr: &str) -> String {
    if stderr.is_empty() {
        format!("{program} {status}")
    } else {
        format!("{program} {status}: {stderr}")
    }
}

/// The standard output of a child process, failing at EOF unless the child
/// exited with status 0, so a dump command's failure is seen *before* the
/// snapshot would be recorded.
pub(crate) struct ChildReader {
    child: Child,
    stdout: std::process::ChildStdout,
    stderr: StderrTail,
    program: String,
    finished: bool,
    /// Checked while the program is silent, so a cancel stops a dump that
    /// writes nothing for a long time (a `sleep`, a server-side lock wait).
    cancel: Option<CancelToken>,
}

impl ChildReader {
    /// Checks `cancel` while the program is silent.
    pub(crate) fn with_cancel(mut self, cancel: Option<CancelToken>) -> Self {
        self.cancel = cancel;
        self
    }

    /// The program, as shown in errors.
    pub(crate) fn program(&self) -> &str {
        &self.program
    }

    /// Starts `command` with its output piped (standard input closed).
    pub(crate) fn spawn(command: &mut Command) -> EngineResult<Self> {
        let program = format!("{:?}", command.get_program());
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| EngineError::io(format!("starting {program}"), e))?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            let _ = child.kill();
            return Err(EngineError::Engine(format!("{program}: no pipes")));
        };
        Ok(Self {
            child,
            stdout,
            stderr: StderrTail::collect(stderr),
            program,
            finished: false,
            cancel: None,
        })
    }

    /// Waits until the pipe has data (or EOF), checking the cancel token every
    /// 200 ms; on cancel, kills the program.
    fn wait_readable(&mut self) -> std::io::Result<()> {
        let Some(cancel) = &self.cancel else {
            return Ok(());
        };
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        let every = Timespec {
            tv_sec: 0,
            tv_nsec: 200_000_000,
        };
        loop {
            if cancel.is_cancelled() {
                self.finished = true;
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(std::io::Error::other(crate::source::CANCELLED));
            }
            let mut fds = [PollFd::new(&self.stdout, PollFlags::IN)];
            match poll(&mut fds, Some(&every)) {
                Ok(0) | Err(rustix::io::Errno::INTR) => {}
                Ok(_) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn finish(&mut self) -> std::io::Result<()> {
        self.finished = true;
        let status = self.child.wait()?;
        let stderr = self.stderr.finish();
        if status.success() {
            return Ok(());
        }
        Err(std::io::Error::other(describe_failure(
            &self.program,
            status,
            &stderr,
        )))
    }
}

impl Read for ChildReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.finished {
            return Ok(0);
        }
        self.wait_readable()?;
        let n = self.stdout.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.finish()?;
        }
        Ok(n)
    }
}

impl Drop for ChildReader {
    fn drop(&mut self) {
        if !self.finished {
            // The backup was abandoned: do not leave the dump running.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
