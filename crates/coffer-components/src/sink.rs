//! Where a component's backup goes: a snapshot in a repository, or the
//! component's native form written to a stream (a per-component download).
//! The drivers produce their data once and hand it to either.

use std::io::{self, Read, Write};
use std::path::Path;
use std::process::Command;

use coffer_engine::{EngineError, ProgressFn, Repo, SnapshotInfo, TreeBackupOptions};
use coffer_model::BackupRef;

/// A destination for a component's data. Each call consumes the sink: a
/// component is stored once.
pub(crate) trait Sink {
    /// What storing yields: a snapshot, or the bytes written.
    type Out;
    /// Stores a stream named `name` (`db.pgdump`).
    fn stream(self, reader: Box<dyn Read + Send>, name: &str) -> Result<Self::Out, EngineError>;
    /// Stores a program's standard output; its failure fails the store.
    fn command(self, cmd: &mut Command, name: &str) -> Result<Self::Out, EngineError>;
    /// Stores the directory tree at `path`.
    fn tree(self, path: &Path, excludes: &[String]) -> Result<Self::Out, EngineError>;
}

/// Into the repository, as one snapshot of the backup.
pub(crate) struct RepoSink<'a> {
    pub repo: &'a Repo,
    pub backup: &'a BackupRef,
    pub progress: Option<ProgressFn>,
}

impl Sink for RepoSink<'_> {
    type Out = SnapshotInfo;
    fn stream(self, reader: Box<dyn Read + Send>, name: &str) -> Result<SnapshotInfo, EngineError> {
        self.repo
            .backup_stream(reader, name, self.backup, self.progress)
    }
    fn command(self, cmd: &mut Command, name: &str) -> Result<SnapshotInfo, EngineError> {
        self.repo
            .backup_command(cmd, name, self.backup, self.progress)
    }
    fn tree(self, path: &Path, excludes: &[String]) -> Result<SnapshotInfo, EngineError> {
        let opts = TreeBackupOptions {
            excludes: excludes.to_vec(),
        };
        self.repo
            .backup_tree(path, self.backup, &opts, self.progress)
    }
}

/// Into a writer, in the component's native form: the stream's bytes, a
/// GNU tar of a tree.
pub(crate) struct NativeSink<'a> {
    pub out: &'a mut dyn Write,
    /// Names the component in errors.
    pub component: &'a str,
}

impl Sink for NativeSink<'_> {
    type Out = u64;
    fn stream(self, mut reader: Box<dyn Read + Send>, _name: &str) -> Result<u64, EngineError> {
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            // A read failure is the source's (as in a backup, "incomplete");
            // a write failure is the receiver's.
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(EngineError::Incomplete {
                        component: self.component.to_owned(),
                        reasons: vec![e.to_string()],
                    });
                }
            };
            self.out
                .write_all(&buf[..n])
                .map_err(|e| EngineError::io("sending the component's data", e))?;
            total += n as u64;
        }
        self.out
            .flush()
            .map_err(|e| EngineError::io("sending the component's data", e))?;
        Ok(total)
    }
    fn command(self, cmd: &mut Command, _name: &str) -> Result<u64, EngineError> {
        coffer_engine::write_command_output(cmd, self.out)
    }
    fn tree(self, path: &Path, excludes: &[String]) -> Result<u64, EngineError> {
        coffer_engine::write_dir_tar(path, excludes, self.out, None)
    }
}
