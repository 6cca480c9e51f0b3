//! What the repository already holds (for deduplication and the parent's
//! trees), and the index files a backup adds.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Mutex;

use aes256ctr_poly1305aes::Aes256CtrPoly1305Aes;
use rustic_core::repofile::{BlobType, IndexFile, Tree};
use rustic_core::{FileType, Id, OpenStatus, Repository, WriteBackend};
use serde::Serialize;

use super::pack::{IndexedPack, hash};
use crate::backend::StorageBackend;
use crate::crypto::encrypt;
use crate::fetch::{BlobRef, Fetcher};
use crate::{EngineError, EngineResult};

/// Blobs per index file (restic starts a new index file at about this size).
const BLOBS_PER_INDEX: usize = 50_000;

/// The blobs a repository holds, and the ones this backup added.
pub(crate) struct Known {
    /// Where each tree blob is, to read the parent's trees.
    trees: HashMap<Id, BlobRef>,
    /// Every blob in the index, and every one this backup has taken on
    /// (stored or on its way into a pack), with its plain length: a changed
    /// file's parent content says where its old chunks ended (`hint.rs`).
    blobs: Mutex<HashMap<(Id, BlobType), u32>>,
}

impl Known {
    /// Loads every index file of `repo`.
    pub(crate) fn load(repo: &Repository<OpenStatus>) -> EngineResult<Self> {
        let mut trees = HashMap::new();
        let mut blobs = HashMap::new();
        for file in repo
            .stream_files::<IndexFile>()
            .map_err(|e| EngineError::rustic(&e))?
        {
            let (_, index) = file.map_err(|e| EngineError::rustic(&e))?;
            for pack in index.packs {
                for b in pack.blobs {
                    let id = *b.id;
                    if b.tpe == BlobType::Tree {
                        trees.insert(
                            id,
                            BlobRef {
                                id,
                                pack: *pack.id,
                                offset: b.location.offset,
                                length: b.location.length,
                                uncompressed: b.location.uncompressed_length,
                            },
                        );
                    }
                    // A blob stored plain is its data, the IV and the MAC.
                    let plain = b.location.uncompressed_length.map_or_else(
                        || b.location.length.saturating_sub(crate::crypto::OVERHEAD),
                        std::num::NonZeroU32::get,
                    );
                    blobs.insert((id, b.tpe), plain);
                }
            }
        }
        Ok(Self {
            trees,
            blobs: Mutex::new(blobs),
        })
    }

    fn blobs(&self) -> std::sync::MutexGuard<'_, HashMap<(Id, BlobType), u32>> {
        self.blobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes `id` (of `plain` bytes) on: true if it is new (the caller
    /// stores it), false if the repository or this backup already has it.
    pub(crate) fn take_on(&self, id: Id, tpe: BlobType, plain: usize) -> bool {
        match self.blobs().entry((id, tpe)) {
            Entry::Occupied(_) => false,
            Entry::Vacant(v) => {
                // Blobs stay far below 4 GiB (chunks and trees are small).
                v.insert(u32::try_from(plain).unwrap_or(u32::MAX));
                true
            }
        }
    }

    /// Whether every data blob of `content` is held.
    pub(crate) fn has_all_data(&self, content: &[rustic_core::DataId]) -> bool {
        let blobs = self.blobs();
        content
            .iter()
            .all(|c| blobs.contains_key(&(**c, BlobType::Data)))
    }

    /// The plain lengths of `content`'s blobs, if they are all held.
    pub(crate) fn data_lengths(&self, content: &[rustic_core::DataId]) -> Option<Vec<u32>> {
        let blobs = self.blobs();
        content
            .iter()
            .map(|c| blobs.get(&(**c, BlobType::Data)).copied())
            .collect()
    }

    /// Reads the tree `id` from the repository.
    pub(crate) fn read_tree(&self, fetcher: &Fetcher, id: Id) -> EngineResult<Tree> {
        let blob = self.trees.get(&id).ok_or_else(|| {
            EngineError::Engine(format!("tree {} is not in the index", id.to_hex().as_str()))
        })?;
        let plain = fetcher.read_blob(blob)?;
        serde_json::from_slice(&plain).map_err(|e| {
            EngineError::Engine(format!("tree {} does not parse: {e}", id.to_hex().as_str()))
        })
    }
}

/// restic's format of an index file.
#[derive(Serialize)]
struct IndexJson<'a> {
    packs: &'a [IndexedPack],
}

/// Writes a repository file (an index) as restic does: JSON, compressed in
/// a version 2 repository, encrypted, named by the SHA-256 of what is stored.
pub(crate) fn save_json(
    backend: &StorageBackend,
    cipher: &Aes256CtrPoly1305Aes,
    compression: Option<i32>,
    tpe: FileType,
    value: &impl Serialize,
) -> EngineResult<Id> {
    let json = serde_json::to_vec(value)
        .map_err(|e| EngineError::Engine(format!("serializing the {tpe:?} file: {e}")))?;
    let plain = match compression {
        Some(level) => {
            // Version 2: a 2, then the zstd frame.
            let mut out = vec![2u8];
            zstd::stream::copy_encode(&json[..], &mut out, level)
                .map_err(|e| EngineError::io("compressing an index", e))?;
            out
        }
        None => json,
    };
    let sealed = encrypt(cipher, &plain);
    let id = Id::new(hash(&sealed));
    backend
        .write_bytes(tpe, &id, true, sealed.into())
        .map_err(|e| EngineError::rustic(&e))?;
    Ok(id)
}

/// Writes the index files that list `packs` (after every pack is stored:
/// the backend waits for the uploads under way).
pub(crate) fn write_index(
    backend: &StorageBackend,
    cipher: &Aes256CtrPoly1305Aes,
    compression: Option<i32>,
    packs: &[IndexedPack],
) -> EngineResult<()> {
    let mut start = 0;
    while start < packs.len() {
        let mut end = start;
        let mut blobs = 0;
        while end < packs.len()
            && (end == start || blobs + packs[end].blobs.len() <= BLOBS_PER_INDEX)
        {
            blobs += packs[end].blobs.len();
            end += 1;
        }
        save_json(
            backend,
            cipher,
            compression,
            FileType::Index,
            &IndexJson {
                packs: &packs[start..end],
            },
        )?;
        start = end;
    }
    Ok(())
}
