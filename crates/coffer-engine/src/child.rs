//! Running the external programs that produce or consume component data
//! (`pg_dump`, `pg_restore`, …): their standard error is collected on a
//! thread so a chatty program never blocks on a full pipe, and a failure is
//! described with the program, its exit status and the tail of what it said.

use std::io::Read;
use std::process::{ChildStderr, ExitStatus};
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
