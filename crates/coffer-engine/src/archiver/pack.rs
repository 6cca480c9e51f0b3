//! Blobs sealed (compressed, encrypted) and gathered into restic packs.
//!
//! A pack is its blobs' encrypted bytes, then the encrypted header (one
//! entry per blob: type, length, plain length when compressed, id), then
//! the header's length (4 bytes, little-endian). Its name is the SHA-256 of
//! all of that. The index entry of each blob is made here too, so an index
//! names exactly what a stored pack holds.

use std::num::NonZeroU32;

use aes256ctr_poly1305aes::Aes256CtrPoly1305Aes;
use rustic_core::Id;
use rustic_core::repofile::BlobType;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::crypto::{encrypt, encrypt_into};

/// A compressed blob shorter than this share of its plain size is not
/// worth compressing: it is stored plain (restic stores such blobs plain
/// too).
const WORTH_NUMERATOR: usize = 97;
const WORTH_DENOMINATOR: usize = 100;

/// Chunks up to this size are compressed whole; for larger ones this much
/// is tried first, and incompressible data (media, archives, encrypted
/// files) is stored plain without paying for a full compression.
const PROBE: usize = 64 * 1024;

/// The id of `data`: its SHA-256 (the SHA extensions are used where the
/// CPU has them).
pub(crate) fn hash(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Compresses and encrypts blobs into packs; one per worker thread (it
/// keeps a compression context and a buffer).
pub(crate) struct Sealer {
    cipher: Aes256CtrPoly1305Aes,
    /// `None`: a version 1 repository, which holds no compressed blobs.
    compressor: Option<zstd::bulk::Compressor<'static>>,
    scratch: Vec<u8>,
}

/// What sealing one blob stored.
pub(crate) struct Sealed {
    /// Its encrypted length in the pack.
    pub packed: u64,
}

impl Sealer {
    pub(crate) fn new(cipher: Aes256CtrPoly1305Aes, level: Option<i32>) -> std::io::Result<Self> {
        let compressor = level.map(zstd::bulk::Compressor::new).transpose()?;
        Ok(Self {
            cipher,
            compressor,
            scratch: Vec::new(),
        })
    }

    /// Compresses `plain` into the scratch buffer; false when that does
    /// not pay (nothing worth keeping is left there then).
    fn compress(&mut self, plain: &[u8]) -> bool {
        let Some(c) = self.compressor.as_mut() else {
            return false;
        };
        let pays = |z: usize, p: usize| z * WORTH_DENOMINATOR < p * WORTH_NUMERATOR;
        let mut attempt = |input: &[u8], out: &mut Vec<u8>| {
            out.clear();
            out.reserve(zstd::zstd_safe::compress_bound(input.len()));
            c.compress_to_buffer(input, out).is_ok() && pays(out.len(), input.len())
        };
        if plain.len() > PROBE && !attempt(&plain[..PROBE], &mut self.scratch) {
            return false;
        }
        attempt(plain, &mut self.scratch)
    }

    /// Seals `plain` (whose id is `id`) as a blob of type `tpe` into `pack`.
    pub(crate) fn seal_into(
        &mut self,
        id: [u8; 32],
        tpe: BlobType,
        plain: &[u8],
        pack: &mut OpenPack,
    ) -> Sealed {
        let offset = pack.bytes.len();
        let uncompressed = if self.compress(plain) {
            encrypt_into(&self.cipher, &self.scratch, &mut pack.bytes);
            u32::try_from(plain.len()).ok().and_then(NonZeroU32::new)
        } else {
            encrypt_into(&self.cipher, plain, &mut pack.bytes);
            None
        };
        let length = pack.bytes.len() - offset;
        pack.blobs.push((
            SealedHead { id },
            IndexedBlob {
                id: Id::new(id),
                tpe,
                // Packs stay far below 4 GiB (see the pack sizes), so do blobs.
                offset: offset as u32,
                length: length as u32,
                uncompressed_length: uncompressed,
            },
        ));
        Sealed {
            packed: length as u64,
        }
    }
}

/// A pack being filled.
#[derive(Default)]
pub(crate) struct OpenPack {
    bytes: Vec<u8>,
    blobs: Vec<(SealedHead, IndexedBlob)>,
}

/// A pack ready to store.
pub(crate) struct SealedPack {
    pub id: Id,
    pub bytes: Vec<u8>,
    /// Its entry in the index.
    pub index: IndexedPack,
}

impl OpenPack {
    /// An empty pack with room for `size` bytes and one more chunk.
    pub(crate) fn with_capacity(size: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(size + (8 << 20) + 4096),
            blobs: Vec::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Appends the encrypted header and names the pack.
    pub(crate) fn seal(mut self, cipher: &Aes256CtrPoly1305Aes) -> SealedPack {
        let mut header = Vec::with_capacity(self.blobs.len() * 41);
        for (head, b) in &self.blobs {
            let kind: u8 = match (b.tpe, b.uncompressed_length.is_some()) {
                (BlobType::Data, false) => 0,
                (BlobType::Tree, false) => 1,
                (BlobType::Data, true) => 2,
                (BlobType::Tree, true) => 3,
            };
            header.push(kind);
            header.extend_from_slice(&b.length.to_le_bytes());
            if let Some(n) = b.uncompressed_length {
                header.extend_from_slice(&n.get().to_le_bytes());
            }
            header.extend_from_slice(&head.id);
        }
        let header = encrypt(cipher, &header);
        self.bytes.extend_from_slice(&header);
        // A header is far below 4 GiB (at most a few thousand entries).
        self.bytes
            .extend_from_slice(&(header.len() as u32).to_le_bytes());
        let id = Id::new(hash(&self.bytes));
        let index = IndexedPack {
            id,
            blobs: self.blobs.into_iter().map(|(_, b)| b).collect(),
        };
        SealedPack {
            id,
            bytes: self.bytes,
            index,
        }
    }
}

/// What the header needs beyond the index entry.
struct SealedHead {
    id: [u8; 32],
}

/// A pack as an index file lists it (restic's JSON).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct IndexedPack {
    pub id: Id,
    pub blobs: Vec<IndexedBlob>,
}

/// A blob as an index file lists it (restic's JSON).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct IndexedBlob {
    pub id: Id,
    #[serde(rename = "type")]
    pub tpe: BlobType,
    pub offset: u32,
    pub length: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uncompressed_length: Option<NonZeroU32>,
}
