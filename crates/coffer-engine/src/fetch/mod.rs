//! Reading blobs pack by pack: the fast path of every restore.
//!
//! rustic_core reads one blob per request (`dump`), which from an off-site
//! target costs a round trip per blob (≈ 1 MiB/s at 30 ms). Here the blobs a
//! restore needs are looked up in the index first, grouped into spans of
//! adjacent blobs of one pack ([`plan`]), and each span is fetched with one
//! ranged read, several in flight ([`Fetcher::parallel`]); where a request
//! is dear (FTP), a run of spans of one pack shares one stream
//! ([`plan::runs`]). Each blob is then decrypted, decompressed and checked
//! against its id (SHA-256), so damaged or foreign data is refused, never
//! written out.
//!
//! Memory stays bounded whatever the data size: at most
//! [`Fetcher::parallel`] spans of at most [`plan::MAX_SPAN`] bytes are held
//! at once (twice that for ordered output, see [`ordered`]).

use std::io::Read;
use std::num::NonZeroU32;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use aes256ctr_poly1305aes::Aes256CtrPoly1305Aes;
use coffer_targets::Storage;
use rustic_core::repofile::MasterKey;
use rustic_core::{Id, IndexedFull, PackedId, Repository};

use crate::{EngineError, EngineResult};

pub(crate) mod ordered;
pub(crate) mod plan;
pub(crate) mod walk;

pub(crate) use plan::PackSpan;

/// restic's per-blob overhead: IV and MAC.
const CRYPTO_OVERHEAD: u32 = 32;

/// Where one blob lives, from the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlobRef {
    /// The blob's id: the SHA-256 of its plain content.
    pub id: Id,
    /// The pack holding it.
    pub pack: Id,
    /// Its encrypted bytes' offset in the pack.
    pub offset: u32,
    /// Its encrypted length.
    pub length: u32,
    /// Its length after decompression, when it is compressed.
    pub uncompressed: Option<NonZeroU32>,
}

impl BlobRef {
    /// The length of its plain content.
    pub fn plain_len(&self) -> u64 {
        match self.uncompressed {
            Some(n) => n.get().into(),
            None => self.length.saturating_sub(CRYPTO_OVERHEAD).into(),
        }
    }

    /// The offset just past its encrypted bytes.
    fn end(&self) -> u64 {
        u64::from(self.offset) + u64::from(self.length)
    }
}

/// Looks `id` up in the index.
pub(crate) fn locate<S: IndexedFull, T: PackedId>(
    repo: &Repository<S>,
    id: &T,
) -> EngineResult<BlobRef> {
    let entry = repo
        .get_index_entry(id)
        .map_err(|e| EngineError::rustic(&e))?;
    let blob: rustic_core::BlobId = (*id).into();
    Ok(BlobRef {
        id: *blob,
        pack: *entry.pack,
        offset: entry.location.offset,
        length: entry.location.length,
        uncompressed: entry.location.uncompressed_length,
    })
}

/// Reads spans of packs from one storage, and opens the blobs in them.
pub(crate) struct Fetcher {
    storage: Arc<dyn Storage>,
    cipher: Aes256CtrPoly1305Aes,
    parallel: usize,
}

impl Fetcher {
    pub fn new(storage: Arc<dyn Storage>, key: &MasterKey) -> Self {
        let parallel = storage.parallel_reads().clamp(1, 32);
        Self {
            storage,
            cipher: crate::crypto::cipher(key),
            parallel,
        }
    }

    /// How many spans are read at once.
    pub fn parallel(&self) -> usize {
        self.parallel
    }

    /// The runs `spans` are read in: see [`plan::runs`].
    pub fn runs<T>(&self, spans: &[PackSpan<T>]) -> Vec<Range<usize>> {
        plan::runs(spans, self.storage.read_run_bytes())
    }

    /// Reads a run of spans (see [`Fetcher::runs`]) and hands the plain
    /// content of each span's blobs to `each` with the span's index in the
    /// run, in order. Stops at the first error, `each`'s or its own.
    pub fn fetch_run<T>(
        &self,
        run: &[PackSpan<T>],
        mut each: impl FnMut(usize, Vec<Vec<u8>>) -> EngineResult<()>,
    ) -> EngineResult<()> {
        let Some(first) = run.first() else {
            return Ok(());
        };
        let key = crate::backend::key_of(rustic_core::FileType::Pack, &first.pack);
        let ranges = run.iter().map(|s| (s.offset, s.length)).collect();
        let mut reads = self.storage.get_ranges(&key, ranges);
        for (i, span) in run.iter().enumerate() {
            let raw = reads
                .next()
                .ok_or_else(|| EngineError::Engine(format!("{key}: a ranged read went missing")))?
                .map_err(EngineError::from)?;
            each(i, self.open_span(span, &raw)?)?;
        }
        Ok(())
    }

    /// Reads and opens one blob.
    pub fn read_blob(&self, blob: &BlobRef) -> EngineResult<Vec<u8>> {
        let key = crate::backend::key_of(rustic_core::FileType::Pack, &blob.pack);
        let raw = self
            .storage
            .get_range(&key, blob.offset.into(), blob.length.into())?;
        self.open(blob, &raw)
    }

    /// The plain content of each blob of `span`, in the span's order, from
    /// the span's bytes.
    fn open_span<T>(&self, span: &PackSpan<T>, raw: &[u8]) -> EngineResult<Vec<Vec<u8>>> {
        span.blobs
            .iter()
            .map(|(blob, _)| {
                let start = usize::try_from(u64::from(blob.offset) - span.offset)
                    .map_err(|_| EngineError::Engine("span offset overflow".into()))?;
                let bytes = raw
                    .get(start..start + blob.length as usize)
                    .ok_or_else(|| damaged(blob, "lies outside the bytes read"))?;
                self.open(blob, bytes)
            })
            .collect()
    }

    /// Decrypts, decompresses and checks one blob's bytes.
    fn open(&self, blob: &BlobRef, raw: &[u8]) -> EngineResult<Vec<u8>> {
        let decrypted =
            crate::crypto::decrypt(&self.cipher, raw).map_err(|e| damaged(blob, &e.to_string()))?;
        let plain = match blob.uncompressed {
            None => decrypted,
            Some(n) => {
                // Decompress no more than the index declares (plus one byte,
                // to notice more): a damaged or hostile blob cannot inflate
                // without bound.
                let declared = u64::from(n.get());
                let mut out = Vec::with_capacity(declared.min(plan::MAX_SPAN) as usize);
                zstd::stream::read::Decoder::new(&decrypted[..])
                    .and_then(|d| d.take(declared + 1).read_to_end(&mut out))
                    .map_err(|e| damaged(blob, &format!("does not decompress: {e}")))?;
                out
            }
        };
        if plain.len() as u64 != blob.plain_len() {
            return Err(damaged(
                blob,
                &format!(
                    "holds {} bytes, the index says {}",
                    plain.len(),
                    blob.plain_len()
                ),
            ));
        }
        if !blob
            .id
            .blob_matches_reader(plain.len() as u64, &mut &plain[..])
        {
            return Err(damaged(blob, "does not match its id (SHA-256)"));
        }
        Ok(plain)
    }

    /// Fetches every span with [`Fetcher::parallel`] threads, a run at a
    /// time, and hands each one's blobs to `each` (on the thread that
    /// fetched it). Stops at the first error, which it returns.
    pub fn for_each<T: Sync>(
        &self,
        spans: &[PackSpan<T>],
        each: impl Fn(&PackSpan<T>, Vec<Vec<u8>>) -> EngineResult<()> + Sync,
    ) -> EngineResult<()> {
        let runs = self.runs(spans);
        let queue = Mutex::new(runs.iter());
        let first_error: Mutex<Option<EngineError>> = Mutex::new(None);
        let failed = || first_error.lock().map(|e| e.is_some()).unwrap_or(true);
        std::thread::scope(|s| {
            for _ in 0..self.parallel.min(runs.len()) {
                s.spawn(|| {
                    while !failed() {
                        let next = queue.lock().ok().and_then(|mut q| q.next());
                        let Some(run) = next else { return };
                        let run = &spans[run.clone()];
                        if let Err(e) = self.fetch_run(run, |i, blobs| each(&run[i], blobs))
                            && let Ok(mut slot) = first_error.lock()
                        {
                            slot.get_or_insert(e);
                        }
                    }
                });
            }
        });
        match first_error.into_inner() {
            Ok(None) => Ok(()),
            Ok(Some(e)) => Err(e),
            Err(poisoned) => Err(poisoned
                .into_inner()
                .unwrap_or_else(|| EngineError::Panicked("a restore worker".into()))),
        }
    }
}

fn damaged(blob: &BlobRef, what: &str) -> EngineError {
    EngineError::Engine(format!(
        "blob {} in pack {} {what}: the repository is damaged (run a check)",
        blob.id.to_hex().as_str(),
        blob.pack.to_hex().as_str()
    ))
}

#[cfg(test)]
mod tests {
    use aes256ctr_poly1305aes::aead::{Aead, generic_array::GenericArray};
    use coffer_targets::LocalStorage;

    use super::*;

    /// A fetcher and the same key's cipher, to seal blobs for it.
    fn fetcher() -> (Fetcher, Aes256CtrPoly1305Aes, tempfile::TempDir) {
        let tmp = tempfile::tempdir().unwrap();
        let key = MasterKey::new();
        let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(tmp.path()));
        (
            Fetcher::new(storage, &key),
            crate::crypto::cipher(&key),
            tmp,
        )
    }

    fn seal(cipher: &Aes256CtrPoly1305Aes, plain: &[u8]) -> Vec<u8> {
        let iv = [7u8; 16];
        let mut out = iv.to_vec();
        out.extend(
            cipher
                .encrypt(GenericArray::from_slice(&iv), plain)
                .unwrap(),
        );
        out
    }

    fn blob(raw: &[u8], uncompressed: Option<u32>) -> BlobRef {
        BlobRef {
            id: Id::new([1; 32]),
            pack: Id::new([2; 32]),
            offset: 0,
            length: raw.len() as u32,
            uncompressed: uncompressed.and_then(NonZeroU32::new),
        }
    }

    #[test]
    fn a_blob_that_is_not_what_its_id_says_is_refused() {
        let (fetcher, cipher, _tmp) = fetcher();
        let raw = seal(&cipher, b"some content");
        let err = fetcher.open(&blob(&raw, None), &raw).unwrap_err();
        assert!(err.to_string().contains("does not match its id"), "{err}");
    }

    #[test]
    fn a_blob_sealed_with_another_key_or_damaged_is_refused() {
        let (fetcher, _, _tmp) = fetcher();
        let (_, other, _tmp2) = self::fetcher();
        let raw = seal(&other, b"some content");
        let err = fetcher.open(&blob(&raw, None), &raw).unwrap_err();
        assert!(err.to_string().contains("MAC"), "{err}");
        let err = fetcher
            .open(&blob(&raw[..10], None), &raw[..10])
            .unwrap_err();
        assert!(err.to_string().contains("too short"), "{err}");
    }

    #[test]
    fn a_compressed_blob_inflates_no_further_than_declared() {
        let (fetcher, cipher, _tmp) = fetcher();
        // 64 MiB of zeros compress to a few KiB; the index says 16 bytes.
        let bomb = zstd::encode_all(std::io::repeat(0).take(64 << 20), 3).unwrap();
        let raw = seal(&cipher, &bomb);
        let err = fetcher.open(&blob(&raw, Some(16)), &raw).unwrap_err();
        assert!(
            err.to_string()
                .contains("holds 17 bytes, the index says 16"),
            "{err}"
        );
    }
}
