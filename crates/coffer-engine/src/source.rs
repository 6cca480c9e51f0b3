//! Backup sources that account for every entry, open and byte.
//!
//! rustic_core logs and skips what it cannot read and records the snapshot
//! anyway. These wrappers report each such problem to the job's
//! [`SnapshotGate`], which then stops the snapshot from being written.

use std::ffi::OsStr;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rustic_core::repofile::{Metadata, Node, NodeType};
use rustic_core::{
    ErrorKind, ReadSource, ReadSourceEntry, ReadSourceOpen, RusticError, RusticResult,
};

use crate::backend::SnapshotGate;
use crate::cancel::CancelToken;
use crate::progress::Counters;

/// What a checked source saw, for the post-backup cross-check.
#[derive(Debug, Default)]
pub(crate) struct SourceTally {
    /// Non-directory entries the source yielded (regular files, symlinks,
    /// special files): what rustic_core counts as `total_files_processed`.
    pub(crate) files: AtomicU64,
    /// Bytes read from opened files or the stream.
    pub(crate) bytes_read: AtomicU64,
}

struct Shared {
    gate: Arc<SnapshotGate>,
    tally: Arc<SourceTally>,
    progress: Arc<Counters>,
    cancel: Option<CancelToken>,
}

impl Shared {
    /// True (and the gate closed) once the job's cancel token fired.
    fn cancelled(&self) -> bool {
        let fired = self.cancel.as_ref().is_some_and(CancelToken::is_cancelled);
        if fired && self.gate.is_open() {
            self.gate.fail(CANCELLED.to_owned());
        }
        fired
    }
}

/// The gate reason recorded when a job is cancelled.
pub(crate) const CANCELLED: &str = "cancelled";

/// Wraps any source (the local directory walker) so that failures reach the gate.
pub(crate) struct CheckedSource<R> {
    inner: R,
    shared: Arc<Shared>,
}

impl<R> CheckedSource<R> {
    pub(crate) fn new(
        inner: R,
        gate: Arc<SnapshotGate>,
        tally: Arc<SourceTally>,
        progress: Arc<Counters>,
        cancel: Option<CancelToken>,
    ) -> Self {
        Self {
            inner,
            shared: Arc::new(Shared {
                gate,
                tally,
                progress,
                cancel,
            }),
        }
    }
}

pub(crate) struct CheckedIter<I> {
    inner: I,
    shared: Arc<Shared>,
}

pub(crate) struct CheckedOpen<O> {
    inner: O,
    path: PathBuf,
    expected: Option<u64>,
    shared: Arc<Shared>,
}

pub(crate) struct CheckedReader<Rd> {
    inner: Rd,
    path: PathBuf,
    expected: Option<u64>,
    read: u64,
    done: bool,
    shared: Arc<Shared>,
}

impl<R> ReadSource for CheckedSource<R>
where
    R: ReadSource,
    R::Open: Send + 'static,
    R::Iter: Send,
{
    type Open = CheckedOpen<R::Open>;
    type Iter = CheckedIter<R::Iter>;

    fn size(&self) -> RusticResult<Option<u64>> {
        self.inner.size()
    }

    fn entries(&self) -> Self::Iter {
        CheckedIter {
            inner: self.inner.entries(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<I, O> Iterator for CheckedIter<I>
where
    I: Iterator<Item = RusticResult<ReadSourceEntry<O>>>,
{
    type Item = RusticResult<ReadSourceEntry<CheckedOpen<O>>>;

    fn next(&mut self) -> Option<Self::Item> {
        // A cancelled walk ends here; the closed gate keeps the snapshot out.
        if self.shared.cancelled() {
            return None;
        }
        let item = self.inner.next()?;
        Some(match item {
            Err(e) => {
                self.shared
                    .gate
                    .fail(format!("cannot read source entry: {}", e.display_log()));
                Err(e)
            }
            Ok(ReadSourceEntry { path, node, open }) => {
                if node.node_type != NodeType::Dir {
                    self.shared.tally.files.fetch_add(1, Ordering::Relaxed);
                }
                if node.node_type == NodeType::File {
                    self.shared.progress.add_file();
                }
                let open = open.map(|inner| CheckedOpen {
                    inner,
                    path: path.clone(),
                    // streams have no size up front
                    expected: (node.meta.size > 0).then_some(node.meta.size),
                    shared: Arc::clone(&self.shared),
                });
                Ok(ReadSourceEntry { path, node, open })
            }
        })
    }
}

impl<O: ReadSourceOpen> ReadSourceOpen for CheckedOpen<O> {
    type Reader = CheckedReader<O::Reader>;

    fn open(self) -> RusticResult<Self::Reader> {
        match self.inner.open() {
            Ok(inner) => Ok(CheckedReader {
                inner,
                path: self.path,
                expected: self.expected,
                read: 0,
                done: false,
                shared: self.shared,
            }),
            Err(e) => {
                self.shared.gate.fail(format!(
                    "cannot open {}: {}",
                    self.path.display(),
                    e.display_log()
                ));
                Err(e)
            }
        }
    }
}

impl<Rd: Read> Read for CheckedReader<Rd> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.shared.cancelled() {
            // Dropping the reader closes a dump tool's pipe, which stops it.
            return Err(io::Error::other(CANCELLED));
        }
        match self.inner.read(buf) {
            Ok(0) if !buf.is_empty() => {
                if !self.done {
                    self.done = true;
                    if let Some(expected) = self.expected
                        && expected != self.read
                    {
                        // The file changed while it was read. What was read is
                        // a consistent prefix of some version of the file,
                        // which is what every file-level backup tool stores;
                        // application data that must be consistent comes from
                        // a component's snapshot mechanism instead.
                        log::warn!(
                            "{} changed size during backup ({} bytes expected, {} read)",
                            self.path.display(),
                            expected,
                            self.read
                        );
                    }
                }
                Ok(0)
            }
            Ok(n) => {
                self.read += n as u64;
                self.shared
                    .tally
                    .bytes_read
                    .fetch_add(n as u64, Ordering::Relaxed);
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                self.shared.gate.fail(format!(
                    "read error in {} after {} bytes: {e}",
                    self.path.display(),
                    self.read
                ));
                Err(e)
            }
        }
    }
}

/// A byte stream as a one-file source, without a temporary file.
pub(crate) struct StreamSource {
    path: PathBuf,
    reader: Mutex<Option<Box<dyn Read + Send>>>,
}

impl StreamSource {
    pub(crate) fn new(path: &Path, reader: Box<dyn Read + Send>) -> Self {
        Self {
            path: path.to_path_buf(),
            reader: Mutex::new(Some(reader)),
        }
    }
}

impl ReadSource for StreamSource {
    type Open = Box<dyn Read + Send>;
    type Iter = std::option::IntoIter<RusticResult<ReadSourceEntry<Self::Open>>>;

    fn size(&self) -> RusticResult<Option<u64>> {
        Ok(None)
    }

    fn entries(&self) -> Self::Iter {
        let reader = self.reader.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(reader) = reader else {
            return Some(Err(RusticError::new(
                ErrorKind::Internal,
                "stream source iterated twice",
            )))
            .into_iter();
        };
        let name = self.path.file_name().unwrap_or(OsStr::new("stream"));
        let meta = Metadata {
            mode: Some(crate::meta::GO_MODE_REGULAR | 0o600),
            mtime: Some(rustic_core::jiff::Timestamp::now()),
            ..Metadata::default()
        };
        let node = Node::new_node(name, NodeType::File, meta);
        Some(Ok(ReadSourceEntry {
            path: self.path.clone(),
            node,
            open: Some(reader),
        }))
        .into_iter()
    }
}
