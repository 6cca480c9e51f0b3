//! Several packs uploading at once, below rustic_core.
//!
//! rustic_core's packer hands finished packs to the backend one at a time
//! and waits for each write: through a link with a 30 ms round trip every
//! pack costs its round trips (and an upload's ramp-up) on the backup's
//! critical path. Here a pack write returns as soon as an uploader thread
//! has taken it, and up to [`Storage::parallel_writes`] packs travel at
//! once. Durability is unchanged where it matters: every other write
//! (index, snapshot, key, config) and every removal first waits for the
//! uploads under way and fails if any of them failed ([`Uploads::barrier`]),
//! so an index never names a pack that is not stored, and a snapshot is
//! never written before its data. A pack whose upload failed is left for
//! prune like any unreferenced pack.

use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use coffer_targets::{Storage, StorageError, StorageErrorKind};

/// One pack to store: its key and its parts.
type Job = (String, rustic_core::BytesList);

/// What the uploaders report.
#[derive(Default)]
struct Progress {
    /// Packs handed over and not yet stored (or failed).
    pending: usize,
    /// The first failure; every later barrier returns it.
    failure: Option<StorageError>,
}

/// Uploads in flight for one engine handle. The uploaders start with the
/// first pack; dropping the last handle waits for them to finish.
pub(crate) struct Uploads {
    storage: Arc<dyn Storage>,
    width: usize,
    state: Arc<(Mutex<Progress>, Condvar)>,
    sender: Mutex<Option<SyncSender<Job>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Uploads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uploads")
            .field("width", &self.width)
            .finish_non_exhaustive()
    }
}

impl Uploads {
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        let width = storage.parallel_writes().clamp(1, 16);
        Self {
            storage,
            width,
            state: Arc::default(),
            sender: Mutex::new(None),
            workers: Mutex::new(Vec::new()),
        }
    }

    /// Stores a pack: at once on a storage that takes one write at a time,
    /// else handed to an uploader (waiting while all of them are busy).
    pub fn put_pack(
        &self,
        key: String,
        content: rustic_core::BytesList,
    ) -> Result<(), StorageError> {
        if self.width == 1 {
            return store(&*self.storage, &key, &content);
        }
        self.failed()?;
        let sender = self.sender(&key)?;
        lock(&self.state.0).pending += 1;
        if let Err(unsent) = sender.send((key, content)) {
            let key = unsent.0.0;
            // The uploaders are gone: only after a panic in one of them.
            let mut progress = lock(&self.state.0);
            progress.pending -= 1;
            return Err(progress.failure.clone().unwrap_or_else(|| {
                StorageError::new(
                    StorageErrorKind::Other,
                    &self.storage.location(),
                    "put",
                    &key,
                    "a pack uploader stopped",
                )
            }));
        }
        Ok(())
    }

    /// Waits until every pack handed over is stored; the first failure of
    /// any of them, if one failed.
    pub fn barrier(&self) -> Result<(), StorageError> {
        let (state, changed) = &*self.state;
        let mut progress = lock(state);
        while progress.pending > 0 {
            progress = changed.wait(progress).unwrap_or_else(|e| e.into_inner());
        }
        match &progress.failure {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn failed(&self) -> Result<(), StorageError> {
        match &lock(&self.state.0).failure {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// The channel to the uploaders, starting them on first use. It holds
    /// no pack itself: a send waits until an uploader is free, so at most
    /// `width` packs are held here besides the one rustic_core is filling.
    fn sender(&self, key: &str) -> Result<SyncSender<Job>, StorageError> {
        let mut slot = lock(&self.sender);
        if let Some(sender) = &*slot {
            return Ok(sender.clone());
        }
        let (sender, receiver) = sync_channel::<Job>(0);
        let receiver = Arc::new(Mutex::new(receiver));
        let mut workers = lock(&self.workers);
        for i in 0..self.width {
            let receiver = Arc::clone(&receiver);
            let state = Arc::clone(&self.state);
            let storage = Arc::clone(&self.storage);
            let worker = std::thread::Builder::new()
                .name(format!("coffer-upload-{i}"))
                .spawn(move || {
                    loop {
                        let job = lock(&receiver).recv();
                        let Ok((key, content)) = job else { return };
                        let stored = store(&*storage, &key, &content);
                        drop(content);
                        let (progress, changed) = &*state;
                        let mut progress = lock(progress);
                        progress.pending -= 1;
                        if let Err(e) = stored {
                            log::warn!("uploading {key}: {e}");
                            progress.failure.get_or_insert(e);
                        }
                        changed.notify_all();
                    }
                })
                .map_err(|e| {
                    StorageError::new(
                        StorageErrorKind::Other,
                        &self.storage.location(),
                        "put",
                        key,
                        format!("starting a pack uploader: {e}"),
                    )
                })?;
            workers.push(worker);
        }
        *slot = Some(sender.clone());
        Ok(sender)
    }
}

impl Drop for Uploads {
    fn drop(&mut self) {
        // Closing the channel ends each uploader after its current pack.
        lock(&self.sender).take();
        for worker in lock(&self.workers).drain(..) {
            let _ = worker.join();
        }
    }
}

/// Stores one pack's parts, concatenated, under `key`. A storage that
/// panics fails the write instead: on an uploader it must not leave the
/// backup waiting for this pack forever, and inside rustic_core's packer
/// (one write at a time) a panicking writer thread can end its pipeline
/// as if every pack were written — a backup recorded without its data
/// (seen once in 30-odd runs of `a_panic_inside_the_engine_is_a_clean_error`).
pub(crate) fn store(
    storage: &dyn Storage,
    key: &str,
    content: &rustic_core::BytesList,
) -> Result<(), StorageError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let parts: Vec<&[u8]> = content.slice().iter().map(|b| &b[..]).collect();
        storage.put_parts(key, &parts)
    }))
    .unwrap_or_else(|_| {
        Err(StorageError::new(
            StorageErrorKind::Other,
            &storage.location(),
            "put",
            key,
            "the storage panicked while uploading",
        ))
    })
}

/// Locks `m`; a thread that panicked holding it left nothing half-done
/// that matters here.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
