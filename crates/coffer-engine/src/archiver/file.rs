//! One file being backed up: its reader chunks it, the sealers hash,
//! deduplicate, compress and encrypt its chunks, in parallel — so a large
//! file or a stream keeps every core busy, not one — and whoever finishes
//! last hands the content list, in order, to the tree assembler.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};

use rustic_core::{DataId, Id, ReadSourceOpen};

use super::chunker::{BufferPool, ChunkBuf, Chunks};
use super::tree::FileResult;
use super::{FileJob, Job};
use crate::uploads::lock;
use crate::{EngineError, EngineResult};

/// A chunk for the sealers: its file, its place in the file, its bytes
/// and, if its reader hashed it already, its id.
pub(crate) struct ChunkJob {
    pub file: Arc<FileState>,
    pub index: usize,
    pub data: ChunkBuf,
    pub id: Option<[u8; 32]>,
}

/// What is known of a file while its chunks are sealed.
pub(crate) struct FileState {
    /// The chunk ids, in file order (filled in by the sealers).
    ids: Mutex<Vec<[u8; 32]>>,
    /// Chunks not sealed yet, plus one while the reader reads.
    pending: AtomicUsize,
    size: AtomicUsize,
    /// The file could not be read whole (the gate holds why).
    failed: AtomicBool,
    reply: Mutex<Option<SyncSender<FileResult>>>,
}

impl FileState {
    pub(crate) fn new(reply: SyncSender<FileResult>) -> Arc<Self> {
        Arc::new(Self {
            ids: Mutex::new(Vec::new()),
            pending: AtomicUsize::new(1),
            size: AtomicUsize::new(0),
            failed: AtomicBool::new(false),
            reply: Mutex::new(Some(reply)),
        })
    }

    /// Records the id of chunk `index`.
    pub(crate) fn set_id(&self, index: usize, id: [u8; 32]) {
        if let Some(slot) = lock(&self.ids).get_mut(index) {
            *slot = id;
        }
    }

    /// One chunk (or the reading) is done; the last one replies.
    pub(crate) fn done(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let result = (!self.failed.load(Ordering::Acquire)).then(|| {
            let ids = std::mem::take(&mut *lock(&self.ids));
            let content = ids
                .into_iter()
                .map(|id| DataId::from(Id::new(id)))
                .collect();
            (content, self.size.load(Ordering::Acquire) as u64)
        });
        if let Some(reply) = lock(&self.reply).take() {
            // The assembler may have stopped: then nobody waits.
            drop(reply.send(result));
        }
    }
}

/// Reads and chunks one file; its chunks go to the sealers. A file that
/// does not open or read is answered `None`; a cancellation or a stopped
/// pipeline is an error.
pub(crate) fn read_file<O: ReadSourceOpen>(
    job: &Job<'_>,
    pool: &BufferPool,
    FileJob {
        open,
        state: file,
        parent,
    }: FileJob<O>,
    chunk_tx: &SyncSender<ChunkJob>,
) -> EngineResult<()> {
    let stopped = || EngineError::Cancelled {
        component: String::new(),
    };
    let result = (|| {
        // The source wrapper has told the gate why a file did not open or read.
        let Ok(reader) = open.open() else {
            return Ok(false);
        };
        let mut chunks = Chunks::new(reader, &job.settings.rabin, pool).hinted(parent);
        loop {
            let (data, id) = match chunks.next_chunk() {
                Ok(Some(chunk)) => chunk,
                Ok(None) => return Ok(true),
                Err(_) if job.cancel.is_cancelled() => return Err(stopped()),
                Err(_) => return Ok(false),
            };
            let len = data.len();
            let index = {
                let mut ids = lock(&file.ids);
                ids.push([0; 32]);
                ids.len() - 1
            };
            file.size.fetch_add(len, Ordering::AcqRel);
            file.pending.fetch_add(1, Ordering::AcqRel);
            let chunk = ChunkJob {
                file: Arc::clone(&file),
                index,
                data,
                id,
            };
            chunk_tx.send(chunk).map_err(|_| stopped())?;
            job.counters.add_bytes(len as u64);
        }
    })();
    if !matches!(result, Ok(true)) {
        file.failed.store(true, Ordering::Release);
    }
    file.done();
    result.map(|_| ())
}
