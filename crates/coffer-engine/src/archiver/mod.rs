//! Coffer's archiver: writes a backup into a restic repository (format 1
//! or 2) with every core busy.
//!
//! ```text
//! walk ──entries──▶ assembler (trees, in walk order) ──▶ tree packs ─┐
//!   │                    ▲ content lists                             │
//!   └─files──▶ readers ×N (read, chunk) ──chunks──▶                  │
//!            sealers ×N (SHA-256, dedup, zstd, AES+Poly1305) ──▶ data packs
//!                                                                   │
//!                uploads (several packs in flight) ◀────────────────┘
//!                then the index, then the snapshot (restic's order)
//! ```
//!
//! Several files are read at once; a large file or a stream is chunked by
//! one reader while its chunks are hashed, compressed and encrypted by all
//! the sealers ([`file`]). Every queue is bounded, so memory does not grow with the data.
//! The walk compares each entry with the parent snapshot ([`parent`]) and
//! does not read unchanged files. The completeness gate, the progress
//! counters and cancellation come from the source wrappers
//! ([`crate::source`]) as on rustic_core's path; a failure or a
//! cancellation stops every thread, and nothing but orphaned packs (which
//! prune removes) is left: no index, no snapshot.

mod chunker;
mod file;
mod hint;
mod index;
mod pack;
mod parent;
mod tree;

use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use aes256ctr_poly1305aes::Aes256CtrPoly1305Aes;
use rustic_core::repofile::{
    BlobType, Chunker, ConfigFile, MasterKey, Metadata, Node, NodeType, SnapshotFile,
};
use rustic_core::{
    FileType, Id, OpenStatus, ReadSource, ReadSourceEntry, Repository, StringList, WriteBackend,
};

use self::chunker::{BufferPool, Rabin};
use self::file::{ChunkJob, FileState, read_file};
use self::index::Known;
use self::pack::{IndexedPack, OpenPack, Sealer, hash};
use self::parent::{Match, Parent};
use self::tree::{Assembler, Event};
use crate::backend::{SnapshotGate, StorageBackend};
use crate::cancel::CancelToken;
use crate::fetch::Fetcher;
use crate::progress::Counters;
use crate::uploads::lock;
use crate::{EngineError, EngineResult};

/// Data packs are closed at this size (restic's default pack size).
pub(crate) const DATA_PACK_SIZE: usize = 16 * 1024 * 1024;
/// Tree packs too: trees are small, so few tree packs are written.
pub(crate) const TREE_PACK_SIZE: usize = 4 * 1024 * 1024;
/// The zstd level where the repository asks for the default: level 1
/// keeps the bench repository within 1 % of restic's "auto" in size, at
/// 1.2–1.6 times level 3's speed; negative levels cost 30–37 % of the size
/// for 10–16 % of speed (docs/benchmarks.md).
const DEFAULT_LEVEL: i32 = 1;
/// Walk entries that may wait for the assembler.
const EVENTS_AHEAD: usize = 4096;

/// How a repository wants its data written.
pub(crate) struct Settings {
    rabin: Rabin,
    /// zstd level; `None` for a version 1 repository (no compression).
    level: Option<i32>,
}

impl Settings {
    /// The settings of `config`; `None` for what this archiver does not
    /// write (rustic's fixed-size chunker), which rustic_core then writes.
    pub(crate) fn of(config: &ConfigFile) -> EngineResult<Option<Self>> {
        if matches!(config.chunker, Some(Chunker::FixedSize)) {
            return Ok(None);
        }
        let poly = config.poly().map_err(|e| EngineError::rustic(&e))?;
        let level = match config.zstd().map_err(|e| EngineError::rustic(&e))? {
            Some(0) => Some(DEFAULT_LEVEL),
            other => other,
        };
        let rabin = Rabin::new(
            poly,
            config.chunk_size.unwrap_or(1024 * 1024),
            config.chunk_min_size.unwrap_or(512 * 1024),
            config.chunk_max_size.unwrap_or(8 * 1024 * 1024),
        )
        .map_err(EngineError::Engine)?;
        Ok(Some(Self { rabin, level }))
    }
}

/// What one backup writes with.
pub(crate) struct Job<'a> {
    pub repo: &'a Repository<OpenStatus>,
    pub storage: Arc<dyn coffer_targets::Storage>,
    pub key: &'a MasterKey,
    pub settings: Settings,
    pub gate: Arc<SnapshotGate>,
    pub counters: Arc<Counters>,
    pub cancel: CancelToken,
}

/// Where the source is and how it is recorded.
pub(crate) struct Layout<'a> {
    /// The source's own path, as its entries name it.
    pub source: &'a Path,
    /// What the snapshot names it instead (`/<component>` for a tree).
    pub as_path: Option<&'a Path>,
    /// The parent snapshot's root tree, for change detection.
    pub parent: Option<(rustic_core::repofile::SnapshotId, Id)>,
}

/// Stores packs (of data and of trees) and remembers what the index must
/// list.
pub(crate) struct Sink {
    backend: StorageBackend,
    cipher: Aes256CtrPoly1305Aes,
    packs: Mutex<Vec<IndexedPack>>,
}

impl Sink {
    fn store(&self, pack: OpenPack) -> EngineResult<()> {
        let sealed = pack.seal(&self.cipher);
        self.backend
            .write_bytes(FileType::Pack, &sealed.id, false, sealed.bytes.into())
            .map_err(|e| EngineError::rustic(&e))?;
        lock(&self.packs).push(sealed.index);
        Ok(())
    }
}

/// The first failure of any thread; once set, every thread stops.
#[derive(Default)]
struct Failure {
    stopped: AtomicBool,
    first: Mutex<Option<EngineError>>,
}

impl Failure {
    fn set(&self, e: EngineError) {
        lock(&self.first).get_or_insert(e);
        self.stopped.store(true, Ordering::SeqCst);
    }

    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Records `r`'s error, if any.
    fn check<T>(&self, r: EngineResult<T>) -> Option<T> {
        r.map_err(|e| self.set(e)).ok()
    }
}

/// What the sealers added.
#[derive(Default)]
struct DataStats {
    blobs: AtomicU64,
    plain: AtomicU64,
    packed: AtomicU64,
}

impl DataStats {
    /// Adds what the sealers stored to `summary` (which counts the trees).
    fn count_into(&self, summary: &mut rustic_core::repofile::SnapshotSummary) {
        summary.data_blobs = self.blobs.load(Ordering::Relaxed);
        summary.data_added_files = self.plain.load(Ordering::Relaxed);
        summary.data_added_files_packed = self.packed.load(Ordering::Relaxed);
        summary.data_added += summary.data_added_files;
        summary.data_added_packed += summary.data_added_files_packed;
    }
}

/// The next item of a queue its workers share, or `None` once it is closed.
/// The lock is held while waiting, not while the item is worked on: a guard
/// taken in a `while let` condition lives through the loop's body, and
/// serialized the workers (the backup used 1.45 of 2 cores).
fn next_of<T>(rx: &Mutex<std::sync::mpsc::Receiver<T>>) -> Option<T> {
    lock(rx).recv().ok()
}

/// A sealer: hashes each chunk and, unless the repository or this backup
/// has it, compresses and encrypts it into a pack of its own (no lock).
/// After a failure it only drains its queue.
fn seal_chunks(
    chunk_rx: &Mutex<std::sync::mpsc::Receiver<ChunkJob>>,
    mut sealer: Option<Sealer>,
    failure: &Failure,
    sink: &Sink,
    stats: &DataStats,
    pool: &BufferPool,
    known: &Known,
) {
    let mut pack = OpenPack::default();
    while let Some(ChunkJob {
        file,
        index,
        data,
        id,
    }) = next_of(chunk_rx)
    {
        let Some(sealer) = sealer.as_mut().filter(|_| !failure.stopped()) else {
            continue;
        };
        let id = id.unwrap_or_else(|| hash(&data));
        file.set_id(index, id);
        if known.take_on(Id::new(id), BlobType::Data, data.len()) {
            if pack.is_empty() {
                pack = OpenPack::with_capacity(DATA_PACK_SIZE);
            }
            let sealed = sealer.seal_into(id, BlobType::Data, &data, &mut pack);
            stats.blobs.fetch_add(1, Ordering::Relaxed);
            stats.plain.fetch_add(data.len() as u64, Ordering::Relaxed);
            stats.packed.fetch_add(sealed.packed, Ordering::Relaxed);
            if pack.len() >= DATA_PACK_SIZE {
                failure.check(sink.store(std::mem::take(&mut pack)));
            }
        }
        pool.give(data);
        file.done();
    }
    if !pack.is_empty() && !failure.stopped() {
        failure.check(sink.store(pack));
    }
}

/// A file for a reader.
struct FileJob<O> {
    open: O,
    state: Arc<FileState>,
    /// Its chunks in the parent snapshot (ids and plain lengths), if it
    /// changed since.
    parent: Option<Vec<(Id, u32)>>,
}

/// Backs up `src` into `job.repo` and records the snapshot made from
/// `snap`; returns it with its id.
pub(crate) fn archive<R>(
    job: Job<'_>,
    src: &R,
    layout: &Layout<'_>,
    mut snap: SnapshotFile,
) -> EngineResult<SnapshotFile>
where
    R: ReadSource,
    R::Open: Send,
    R::Iter: Send,
{
    let start = rustic_core::jiff::Zoned::now();
    let known = Known::load(job.repo)?;
    let fetcher = Fetcher::new(Arc::clone(&job.storage), job.key);
    let cipher = crate::crypto::cipher(job.key);
    let sink = Sink {
        backend: StorageBackend::new(Arc::clone(&job.storage), Some(Arc::clone(&job.gate))),
        cipher: cipher.clone(),
        packs: Mutex::new(Vec::new()),
    };
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 16));
    let failure = Failure::default();
    let stats = DataStats::default();
    // Kept buffers stay resident at the largest chunk they held: one per
    // reader and per sealer spares most zeroing (a queued chunk's buffer is
    // made anew) and keeps the peak memory within its goal.
    let pool = BufferPool::new(&job.settings.rabin, workers * 2);
    let (file_tx, file_rx) = sync_channel::<FileJob<R::Open>>(workers * 2);
    let (chunk_tx, chunk_rx) = sync_channel::<ChunkJob>(workers * 2);
    let (event_tx, event_rx) = sync_channel::<Event>(EVENTS_AHEAD);
    // Shared by their workers, and dropped with the last of them: should
    // every worker of a queue die, its senders fail instead of waiting.
    let (file_rx, chunk_rx) = (
        Arc::new(Mutex::new(file_rx)),
        Arc::new(Mutex::new(chunk_rx)),
    );
    let tree_sealer = Sealer::new(cipher.clone(), job.settings.level)
        .map_err(|e| EngineError::io("starting zstd", e))?;

    let assembled = std::thread::scope(|s| {
        if job.counters.has_listener() {
            s.spawn(|| match src.size() {
                Ok(size) => job.counters.set_totals(size, None),
                Err(e) => log::warn!("sizing the backup: {}", e.display_log()),
            });
        }
        for _ in 0..workers {
            let (chunk_tx, file_rx) = (chunk_tx.clone(), Arc::clone(&file_rx));
            let (failure, job, pool) = (&failure, &job, &pool);
            // After a failure every queue is still drained (and its items
            // dropped) until its senders are gone, so no thread waits forever.
            s.spawn(move || {
                while let Some(next) = next_of(&file_rx) {
                    if !failure.stopped() {
                        failure.check(read_file(job, pool, next, &chunk_tx));
                    }
                }
            });
        }
        drop((chunk_tx, file_rx));
        for _ in 0..workers {
            let chunk_rx = Arc::clone(&chunk_rx);
            let (failure, sink, stats, pool, known) = (&failure, &sink, &stats, &pool, &known);
            let level = job.settings.level;
            let cipher = cipher.clone();
            s.spawn(move || {
                let sealer = failure.check(
                    Sealer::new(cipher, level).map_err(|e| EngineError::io("starting zstd", e)),
                );
                seal_chunks(&chunk_rx, sealer, failure, sink, stats, pool, known);
            });
        }
        drop(chunk_rx);
        let assembler = s.spawn(|| {
            let mut assembler = Assembler::new(&known, &sink, tree_sealer);
            for event in event_rx {
                if !failure.stopped() {
                    // A file that could not be read is left out; the gate
                    // holds why, and keeps the snapshot out.
                    failure.check(assembler.add(event));
                }
            }
            if failure.stopped() {
                return None;
            }
            failure.check(assembler.finish(layout.parent.map(|p| p.1)))
        });
        let walked = walk(
            &job, src, layout, &known, &fetcher, &failure, &file_tx, &event_tx,
        );
        drop((file_tx, event_tx));
        failure.check(walked);
        assembler.join().unwrap_or_else(|_| {
            failure.set(EngineError::Panicked("the tree assembler".into()));
            None
        })
    });
    if job.cancel.is_cancelled() {
        return Err(EngineError::Cancelled {
            component: String::new(),
        });
    }
    if let Some(e) = lock(&failure.first).take() {
        return Err(e);
    }
    let (root, mut summary) =
        assembled.ok_or_else(|| EngineError::Engine("the backup stopped".into()))?;
    let packs = std::mem::take(&mut *lock(&sink.packs));
    index::write_index(&sink.backend, &cipher, job.settings.level, &packs)?;

    stats.count_into(&mut summary);
    let end = rustic_core::jiff::Zoned::now();
    let seconds = |from: &rustic_core::jiff::Zoned| {
        end.since(from)
            .and_then(|span| span.total(rustic_core::jiff::Unit::Second))
            .unwrap_or_default()
    };
    summary.backup_duration = seconds(&start);
    summary.total_duration = seconds(&snap.time);
    summary.backup_start = start;
    summary.backup_end = end;
    snap.summary = Some(summary);
    snap.tree = root.into();
    let mut paths = StringList::default();
    paths.add(
        layout
            .as_path
            .unwrap_or(layout.source)
            .to_string_lossy()
            .into_owned(),
    );
    snap.paths = paths;
    if let Some((parent, _)) = layout.parent {
        snap.parent = Some(parent);
        snap.parents = vec![parent];
    }
    snap.id = rustic_core::repofile::SnapshotId::default();
    let id = index::save_json(
        &sink.backend,
        &cipher,
        job.settings.level,
        FileType::Snapshot,
        &snap,
    )?;
    snap.id = id.into();
    Ok(snap)
}

/// Walks the source: directory events and entries in order to the
/// assembler, files to read to the readers.
#[allow(clippy::too_many_arguments)]
fn walk<R: ReadSource>(
    job: &Job<'_>,
    src: &R,
    layout: &Layout<'_>,
    known: &Known,
    fetcher: &Fetcher,
    failure: &Failure,
    file_tx: &SyncSender<FileJob<R::Open>>,
    event_tx: &SyncSender<Event>,
) -> EngineResult<()> {
    let gone = || EngineError::Engine("the backup stopped".into());
    let send = |e: Event| event_tx.send(e).map_err(|_| gone());
    let mut parent = Parent::new(known, fetcher, layout.parent.map(|p| p.1))?;
    // The directory the next entries belong to, as the snapshot names it.
    let mut current = PathBuf::new();
    for entry in src.entries() {
        if failure.stopped() {
            return Ok(());
        }
        // The source wrapper has told the gate about an unreadable entry.
        let Ok(ReadSourceEntry {
            path,
            mut node,
            open,
        }) = entry
        else {
            continue;
        };
        let path = match layout.as_path {
            Some(as_path) => as_path.join(path.strip_prefix(layout.source).unwrap_or(&path)),
            None => path,
        };
        let dir = if node.is_dir() {
            path.as_path()
        } else {
            path.parent().unwrap_or(Path::new(""))
        };
        while current.file_name().is_some() && !dir.starts_with(&current) {
            current.pop();
            parent.leave();
            send(Event::Leave)?;
        }
        let missing: Vec<Component<'_>> = dir
            .strip_prefix(&current)
            .map_err(|_| EngineError::Engine(format!("{} is out of order", path.display())))?
            .components()
            .collect();
        let mut entered_self = false;
        for comp in missing {
            current.push(comp);
            let Component::Normal(name) = comp else {
                continue;
            };
            let dir_node = if node.is_dir() && current == dir {
                entered_self = true;
                node.clone()
            } else {
                // A directory above the source: restic records it as 0755.
                let meta = Metadata {
                    mode: Some(0o755),
                    ..Metadata::default()
                };
                Node::new_node(name, NodeType::Dir, meta)
            };
            let (matched, old) = parent.enter(&dir_node)?;
            send(Event::Enter(dir_node, matched, old))?;
        }
        if entered_self || node.is_dir() {
            continue;
        }
        let (matched, old) = parent.file(&mut node);
        let reading = match (node.node_type == NodeType::File, matched, open) {
            (true, Match::New | Match::Changed, Some(open)) => {
                let (reply, result) = sync_channel(1);
                let state = FileState::new(reply);
                file_tx
                    .send(FileJob {
                        open,
                        state,
                        parent: old,
                    })
                    .map_err(|_| gone())?;
                Some(result)
            }
            _ => {
                if matched == Match::Unchanged {
                    job.counters.add_bytes(node.meta.size);
                }
                None
            }
        };
        send(Event::Entry(node, matched, reading))?;
    }
    while current.file_name().is_some() {
        current.pop();
        parent.leave();
        send(Event::Leave)?;
    }
    Ok(())
}
