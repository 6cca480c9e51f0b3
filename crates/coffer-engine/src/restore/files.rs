//! Writing a tree's regular files from packs: every blob the files need is
//! fetched once, in pack order, and written at each place it belongs
//! (`pwrite`), so small files are filled many to a request and large files
//! by several workers at once. A file is finished (length, metadata) when
//! its last blob is in.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rustic_core::repofile::Node;
use rustic_core::{Id, IndexedFull, Repository};

use super::{HOLE_BLOCK, create_parent};
use crate::fetch::{BlobRef, Fetcher, locate, plan};
use crate::progress::Counters;
use crate::{EngineError, EngineResult, meta};

/// Where one blob goes: file `file` (an index into the files) at `offset`.
#[derive(Debug, Clone, Copy)]
struct Piece {
    file: usize,
    offset: u64,
}

/// Writes `files` (paths below `staging`, with their nodes) in full.
pub(crate) fn write_files<S: IndexedFull>(
    fetcher: &Fetcher,
    repo: &Repository<S>,
    staging: &Path,
    files: &[(PathBuf, Node)],
    progress: &Counters,
) -> EngineResult<()> {
    // The plan: each blob once, with every place it goes, in the order the
    // files first need them.
    let mut order: HashMap<Id, usize> = HashMap::new();
    let mut needs: Vec<(BlobRef, Vec<Piece>)> = Vec::new();
    let mut pending: Vec<AtomicUsize> = Vec::with_capacity(files.len());
    for (file, (rel, node)) in files.iter().enumerate() {
        let content = node.content.as_deref().unwrap_or_default();
        let mut offset = 0u64;
        for id in content {
            let blob = locate(repo, id)?;
            let at = *order.entry(blob.id).or_insert_with(|| {
                needs.push((blob, Vec::new()));
                needs.len() - 1
            });
            needs[at].1.push(Piece { file, offset });
            offset += blob.plain_len();
        }
        if offset != node.meta.size {
            return Err(EngineError::Engine(format!(
                "{}: the snapshot records {} bytes, its blobs hold {offset} (a damaged repository)",
                rel.display(),
                node.meta.size
            )));
        }
        pending.push(AtomicUsize::new(content.len()));
    }
    drop(order);
    let writer = Writer {
        staging,
        files,
        pending: &pending,
        progress,
    };
    // Empty files have nothing to wait for.
    for (file, (_, node)) in files.iter().enumerate() {
        if node.content.as_deref().unwrap_or_default().is_empty() {
            writer.finish(file)?;
        }
    }
    fetcher.for_each(&plan::by_pack(needs), |span, blobs| {
        for ((_, pieces), data) in span.blobs.iter().zip(blobs) {
            for piece in pieces {
                writer.write(*piece, &data)?;
            }
        }
        Ok(())
    })
}

struct Writer<'a> {
    staging: &'a Path,
    files: &'a [(PathBuf, Node)],
    /// Blobs each file still waits for.
    pending: &'a [AtomicUsize],
    progress: &'a Counters,
}

impl Writer<'_> {
    fn path(&self, file: usize) -> PathBuf {
        self.staging.join(&self.files[file].0)
    }

    /// Opens (creating) a file of the tree for writing; its directory may
    /// not exist yet (they are created alongside).
    fn open(&self, path: &Path) -> EngineResult<File> {
        // Never truncate: other workers write other blobs of the same file.
        let open = || {
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
        };
        open()
            .or_else(|e| match e.kind() {
                io::ErrorKind::NotFound => {
                    create_parent(path).map_err(|e| io::Error::other(e.to_string()))?;
                    open()
                }
                _ => Err(e),
            })
            .map_err(|e| EngineError::io(format!("creating {}", path.display()), e))
    }

    /// Writes one blob's content at its place, leaving runs of zeros as
    /// holes (a new file reads zeros there), then finishes the file if that
    /// was its last blob.
    fn write(&self, piece: Piece, data: &[u8]) -> EngineResult<()> {
        let path = self.path(piece.file);
        let file = self.open(&path)?;
        let mut at = piece.offset;
        for block in data.chunks(HOLE_BLOCK) {
            if !(block.len() == HOLE_BLOCK && block.iter().all(|&b| b == 0)) {
                file.write_all_at(block, at)
                    .map_err(|e| EngineError::io(format!("writing {}", path.display()), e))?;
            }
            at += block.len() as u64;
        }
        drop(file);
        self.progress.add_bytes(data.len() as u64);
        if self.pending[piece.file].fetch_sub(1, Ordering::AcqRel) == 1 {
            self.finish(piece.file)?;
        }
        Ok(())
    }

    /// Sets the file's length (a trailing hole is only a seek) and metadata.
    /// Durability comes from one `syncfs` of the staging tree before it is
    /// moved into place, far cheaper than an fsync per file.
    fn finish(&self, file: usize) -> EngineResult<()> {
        let path = self.path(file);
        let node = &self.files[file].1;
        self.open(&path)?
            .set_len(node.meta.size)
            .map_err(|e| EngineError::io(format!("writing {}", path.display()), e))?;
        meta::apply(&path, &node.node_type, &node.meta)?;
        self.progress.add_file();
        Ok(())
    }
}
