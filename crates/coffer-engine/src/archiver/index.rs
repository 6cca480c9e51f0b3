//! What the repository already holds (for deduplication and the parent's
//! trees), and the index files a backup adds.

use std::collections::{HashMap, HashSet};
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
    /// Every blob id in the index, and every one this backup has taken on
    /// (stored or on its way into a pack).
    ids: Mutex<HashSet<(Id, BlobType)>>,
    /// The plain length of each data blob in the index: a changed file's
    /// parent content says where its old chunks ended (see `hint.rs`).
    data_lengths: HashMap<Id, u32>,
}

impl Known {
    /// Loads every index file of `repo`.
    pub(crate) fn load(repo: &Repository<OpenStatus>) -> EngineResult<Self> {
        let mut trees = HashMap::new();
        let mut ids = HashSet::new();
        let mut data_lengths = HashMap::new();
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
                    if b.tpe == BlobType::Data {
                        // A blob stored plain is its data, the IV and the MAC.
                        let plain = b.location.uncompressed_length.map_or_else(
                            || b.location.length.saturating_sub(crate::crypto::OVERHEAD),
                            std::num::NonZeroU32::get,
                        );
                        data_lengths.insert(id, plain);
                    }
                    ids.insert((id, b.tpe));
                }
            }
        }
        Ok(Self {
            trees,
            ids: Mutex::new(ids),
            data_lengths,
        })
    }

    /// Takes `id` on: true if it is new (the caller stores it), false if
    /// the repository or this backup already has it.
    pub(crate) fn take_on(&self, id: Id, tpe: BlobType) -> bool {
        self.ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((id, tpe))
    }

    /// Whether every data blob of `content` is held.
    pub(crate) fn has_all_data(&self, content: &[rustic_core::DataId]) -> bool {
        let ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        content.iter().all(|c| ids.contains(&(**c, BlobType::Data)))
    }

    /// The plain lengths of `content`'s blobs, if the index has them all.
    pub(crate) fn data_lengths(&self, content: &[rustic_core::DataId]) -> Option<Vec<u32>> {
        content
            .iter()
            .map(|c| self.data_lengths.get(&**c).copied())
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
