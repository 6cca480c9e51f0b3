//! Progress reporting: one callback for the CLI's progress bar and, later, the
//! server's job status.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustic_core::{Progress, ProgressBars, ProgressType, RusticProgress};

/// A snapshot of an operation's progress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgressInfo {
    /// Bytes processed so far.
    pub bytes_done: u64,
    /// Total bytes, once known.
    pub bytes_total: Option<u64>,
    /// Files processed so far.
    pub files_done: u64,
    /// Total files, once known.
    pub files_total: Option<u64>,
}

/// Called whenever progress advances (possibly often, from several threads):
/// keep it cheap.
pub type ProgressFn = Arc<dyn Fn(ProgressInfo) + Send + Sync>;

/// Shared counters behind a [`ProgressFn`].
#[derive(Default)]
pub(crate) struct Counters {
    bytes_done: AtomicU64,
    bytes_total: AtomicU64,
    files_done: AtomicU64,
    files_total: AtomicU64,
    callback: Option<ProgressFn>,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counters")
            .field("info", &self.info())
            .finish()
    }
}

impl Counters {
    pub(crate) fn new(callback: Option<ProgressFn>) -> Arc<Self> {
        Arc::new(Self {
            callback,
            ..Self::default()
        })
    }

    pub(crate) fn info(&self) -> ProgressInfo {
        let opt = |v: u64| (v != 0).then_some(v);
        ProgressInfo {
            bytes_done: self.bytes_done.load(Ordering::Relaxed),
            bytes_total: opt(self.bytes_total.load(Ordering::Relaxed)),
            files_done: self.files_done.load(Ordering::Relaxed),
            files_total: opt(self.files_total.load(Ordering::Relaxed)),
        }
    }

    fn notify(&self) {
        if let Some(cb) = &self.callback {
            cb(self.info());
        }
    }

    pub(crate) fn add_bytes(&self, n: u64) {
        self.bytes_done.fetch_add(n, Ordering::Relaxed);
        self.notify();
    }

    pub(crate) fn add_file(&self) {
        self.files_done.fetch_add(1, Ordering::Relaxed);
        self.notify();
    }

    /// Whether anybody watches the progress (worth a walk to size it).
    pub(crate) fn has_listener(&self) -> bool {
        self.callback.is_some()
    }

    pub(crate) fn set_totals(&self, bytes: Option<u64>, files: Option<u64>) {
        if let Some(b) = bytes {
            self.bytes_total.store(b, Ordering::Relaxed);
        }
        if let Some(f) = files {
            self.files_total.store(f, Ordering::Relaxed);
        }
        self.notify();
    }
}

/// Feeds rustic_core's byte progress ("backing up…") into our counters and
/// ignores its other progress bars (index loading, etc.).
#[derive(Debug, Clone)]
pub(crate) struct EngineProgressBars(pub(crate) Arc<Counters>);

#[derive(Debug)]
struct BytesProgress(Arc<Counters>);

impl RusticProgress for BytesProgress {
    fn is_hidden(&self) -> bool {
        // rustic_core scans the source for its total size only for visible
        // bars: do that walk only when somebody listens.
        !self.0.has_listener()
    }
    fn set_length(&self, len: u64) {
        self.0.set_totals(Some(len), None);
    }
    fn set_title(&self, _title: &str) {}
    fn inc(&self, inc: u64) {
        self.0.add_bytes(inc);
    }
    fn finish(&self) {}
}

impl ProgressBars for EngineProgressBars {
    fn progress(&self, progress_type: ProgressType, prefix: &str) -> Progress {
        if matches!(progress_type, ProgressType::Bytes) && prefix.starts_with("backing up") {
            Progress::new(BytesProgress(Arc::clone(&self.0)))
        } else {
            Progress::hidden()
        }
    }
}
