//! restic's content-defined chunker: a Rabin fingerprint over a 64-byte
//! window, with the repository's random polynomial.
//!
//! Cut points are exactly restic's (and rustic_core's): a chunk ends where
//! the fingerprint of its last 64 bytes has the low bits of the average size
//! all zero, but never before the minimum size and never after the maximum.
//! So a file backed up by restic, rustic or either of Coffer's archivers is
//! split the same way, and its chunks deduplicate across all of them.
//!
//! Why it is fast: the first `min - 64` bytes of every chunk are never
//! hashed (no cut can fall there, and the window forgets them), the window
//! is the chunk buffer itself, and bytes are read straight into the chunk
//! that will be stored, in large reads.

use std::io::{self, Read};

use rustic_core::Id;

use super::hint::Hints;
use super::pack::hash;

/// restic's window: the fingerprint covers the last 64 bytes.
const WINDOW: usize = 64;

/// How much is read at a time once the minimum size is reached.
const READ_STEP: usize = 64 * 1024;

/// Independent rolling hashes run side by side (see [`Rabin::first_cut`]).
const LANES: usize = 4;

/// Bytes scanned by the lanes between two looks for a cut.
const LANE_BLOCK: usize = 64 * 1024;

/// The chunking parameters of a repository.
#[derive(Clone)]
pub(crate) struct Rabin {
    /// The fingerprint of a byte followed by 63 zero bytes: what a byte
    /// leaving the window contributed.
    out: Box<[u64; 256]>,
    /// Reduction by the polynomial of the byte shifted out at the top.
    reduce: Box<[u64; 256]>,
    /// The polynomial's degree minus 8: where the top byte starts.
    shift: u32,
    /// A cut falls where `fingerprint & mask == 0`.
    mask: u64,
    min: usize,
    max: usize,
}

/// The degree of a polynomial over GF(2); -1 for zero.
fn degree(p: u64) -> i32 {
    63 - p.leading_zeros() as i32
}

/// `x mod p` over GF(2).
fn modulo(mut x: u64, p: u64) -> u64 {
    let dp = degree(p);
    while degree(x) >= dp {
        x ^= p << (degree(x) - dp);
    }
    x
}

impl Rabin {
    /// The chunker for `poly` (the repository config's polynomial) and the
    /// sizes (restic's are 1 MiB average, 512 KiB minimum, 8 MiB maximum).
    pub(crate) fn new(poly: u64, avg: usize, min: usize, max: usize) -> Result<Self, String> {
        let deg = degree(poly);
        if !(9..=62).contains(&deg) {
            return Err(format!("chunker polynomial {poly:#x} has degree {deg}"));
        }
        if !avg.is_power_of_two() || min < WINDOW || min > avg || max < avg {
            return Err(format!(
                "chunk sizes (average {avg}, min {min}, max {max}) are not a power-of-two \
                 average between a minimum of at least {WINDOW} bytes and a maximum"
            ));
        }
        let append = |h: u64, b: u8| modulo((h << 8) | u64::from(b), poly);
        let mut out = Box::new([0u64; 256]);
        let mut reduce = Box::new([0u64; 256]);
        for b in 0..=255u8 {
            let mut h = append(0, b);
            for _ in 0..WINDOW - 1 {
                h = append(h, 0);
            }
            out[usize::from(b)] = h;
            let top = u64::from(b) << deg;
            reduce[usize::from(b)] = modulo(top, poly) | top;
        }
        Ok(Self {
            out,
            reduce,
            shift: (deg - 8) as u32,
            mask: avg as u64 - 1,
            min,
            max,
        })
    }

    /// Slides `b` into the fingerprint `d`.
    #[inline(always)]
    fn roll(&self, d: u64, b: u8) -> u64 {
        let top = (d >> self.shift) as u8;
        ((d << 8) | u64::from(b)) ^ self.reduce[usize::from(top)]
    }

    /// The fingerprint of the 64 bytes before `end` (as restic computes it
    /// after its skipped prefix).
    fn window_at(&self, data: &[u8], end: usize) -> u64 {
        data[end - WINDOW..end]
            .iter()
            .fold(0, |d, &b| self.roll(d, b))
    }

    /// The first chunk end `e` in `lo..=hi` (`lo >= 64`) where the window
    /// before `e` cuts.
    ///
    /// Each step of a rolling hash waits for the one before (a table load
    /// on the critical path), so one lane runs at a few bytes per cycle
    /// at best. But the fingerprint at any position depends only on the 64
    /// bytes before it: blocks of the range are split into [`LANES`]
    /// segments, each rolled from its own start, interleaved so the CPU
    /// overlaps them. The first lane with a cut has the first cut.
    fn first_cut(&self, data: &[u8], lo: usize, hi: usize) -> Option<usize> {
        let mut start = lo;
        while start <= hi {
            let end = hi.min(start + LANE_BLOCK - 1);
            let found = if end - start + 1 < LANES * 2 * WINDOW {
                self.first_cut_serial(data, start, end)
            } else {
                self.first_cut_lanes(data, start, end)
            };
            if found.is_some() {
                return found;
            }
            start = end + 1;
        }
        None
    }

    fn first_cut_serial(&self, data: &[u8], lo: usize, hi: usize) -> Option<usize> {
        let mut d = self.window_at(data, lo);
        if d & self.mask == 0 {
            return Some(lo);
        }
        for e in lo + 1..=hi {
            d = self.roll(d ^ self.out[usize::from(data[e - 1 - WINDOW])], data[e - 1]);
            if d & self.mask == 0 {
                return Some(e);
            }
        }
        None
    }

    fn first_cut_lanes(&self, data: &[u8], lo: usize, hi: usize) -> Option<usize> {
        let seg = (hi - lo + 1) / LANES;
        let starts: [usize; LANES] = std::array::from_fn(|l| lo + l * seg);
        let mut d: [u64; LANES] = starts.map(|s| self.window_at(data, s));
        // Lane l's step i takes in `incoming[l][i]` and drops `leaving[l][i]`.
        let incoming: [&[u8]; LANES] = starts.map(|s| &data[s..s + seg - 1]);
        let leaving: [&[u8]; LANES] = starts.map(|s| &data[s - WINDOW..s + seg - 1 - WINDOW]);
        let mut first = [usize::MAX; LANES];
        for l in 0..LANES {
            if d[l] & self.mask == 0 {
                first[l] = starts[l];
            }
        }
        if first[0] == usize::MAX {
            for i in 0..seg - 1 {
                let mut any = false;
                for l in 0..LANES {
                    d[l] = self.roll(d[l] ^ self.out[usize::from(leaving[l][i])], incoming[l][i]);
                    any |= d[l] & self.mask == 0;
                }
                if any {
                    for l in 0..LANES {
                        if d[l] & self.mask == 0 && first[l] == usize::MAX {
                            first[l] = starts[l] + i + 1;
                        }
                    }
                    // The first lane's cut comes before any other's.
                    if first[0] != usize::MAX {
                        break;
                    }
                }
            }
        }
        if let Some(&e) = first.iter().find(|&&e| e != usize::MAX) {
            return Some(e);
        }
        // The last lane's remainder (up to LANES - 1 positions past it).
        let tail = starts[LANES - 1] + seg;
        (tail <= hi)
            .then(|| self.first_cut_serial(data, tail, hi))
            .flatten()
    }
}

/// A chunk's bytes, in a buffer of the pool.
///
/// The buffer's initialized part only grows: bytes are read straight into
/// it, and it is zeroed once in its life rather than before every read
/// (zeroing 2 GiB of chunk buffers measured 4 % of a backup's CPU).
pub(crate) struct ChunkBuf {
    /// Initialized bytes; the chunk is the first `len` of them.
    bytes: Vec<u8>,
    len: usize,
}

impl ChunkBuf {
    /// Makes the first `want` bytes usable (zeroing only those never
    /// used before).
    fn grow_to(&mut self, want: usize) {
        if self.bytes.len() < want {
            self.bytes.resize(want, 0);
        }
    }

    fn extend_from_slice(&mut self, data: &[u8]) {
        let end = self.len + data.len();
        self.grow_to(end);
        self.bytes[self.len..end].copy_from_slice(data);
        self.len = end;
    }
}

impl std::ops::Deref for ChunkBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Chunk buffers, used again once their chunk is stored: a chunk's
/// buffer never grows past room for the largest chunk and its pages are
/// not faulted in and zeroed again for every chunk.
pub(crate) struct BufferPool {
    free: std::sync::Mutex<Vec<ChunkBuf>>,
    /// Buffers kept at most (more are freed).
    keep: usize,
    capacity: usize,
}

impl BufferPool {
    pub(crate) fn new(rabin: &Rabin, keep: usize) -> Self {
        Self {
            free: std::sync::Mutex::new(Vec::new()),
            keep,
            capacity: rabin.max + READ_STEP,
        }
    }

    fn take(&self) -> ChunkBuf {
        let reused = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop();
        reused.unwrap_or_else(|| ChunkBuf {
            bytes: Vec::with_capacity(self.capacity),
            len: 0,
        })
    }

    /// Returns a chunk's buffer.
    pub(crate) fn give(&self, mut buf: ChunkBuf) {
        buf.len = 0;
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < self.keep {
            free.push(buf);
        }
    }
}

/// Splits a reader into chunks.
pub(crate) struct Chunks<'a, R> {
    reader: R,
    rabin: &'a Rabin,
    pool: &'a BufferPool,
    /// Bytes read past the last cut: the start of the next chunk.
    carry: Vec<u8>,
    eof: bool,
    /// The file's chunks in the parent snapshot, while they help.
    hints: Option<Hints>,
}

impl<'a, R: Read> Chunks<'a, R> {
    pub(crate) fn new(reader: R, rabin: &'a Rabin, pool: &'a BufferPool) -> Self {
        Self {
            reader,
            rabin,
            pool,
            carry: Vec::new(),
            eof: false,
            hints: None,
        }
    }

    /// Follows the chunks the file had in the parent snapshot (ids and
    /// plain lengths) where they are found again (see `hint.rs`).
    pub(crate) fn hinted(mut self, parent: Option<Vec<(Id, u32)>>) -> Self {
        self.hints = parent.and_then(|p| Hints::new(p, self.rabin.min, self.rabin.max));
        self
    }

    /// Reads until `buf` holds `want` bytes or the reader ends.
    fn fill(&mut self, buf: &mut ChunkBuf, want: usize) -> io::Result<()> {
        if self.eof || buf.len >= want {
            return Ok(());
        }
        buf.grow_to(want);
        while buf.len < want {
            match self.reader.read(&mut buf.bytes[buf.len..want]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => buf.len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The next chunk, with its id when it was hashed here (the hints
    /// need it); `None` at the end of the data.
    pub(crate) fn next_chunk(&mut self) -> io::Result<Option<(ChunkBuf, Option<[u8; 32]>)>> {
        let (min, max) = (self.rabin.min, self.rabin.max);
        let mut buf = self.pool.take();
        buf.extend_from_slice(&self.carry);
        self.carry.clear();
        if let Some((want, len)) = self.hints.as_ref().and_then(Hints::expected) {
            self.fill(&mut buf, len)?;
            let digest = buf.get(..len).map(hash);
            if let Some(digest) = digest.filter(|d| Id::new(*d) == want) {
                self.carry.extend_from_slice(&buf[len..]);
                buf.len = len;
                if let Some(h) = self.hints.as_mut() {
                    h.found();
                }
                return Ok(Some((buf, Some(digest))));
            }
            if let Some(h) = self.hints.as_mut() {
                h.lost();
            }
        }
        self.fill(&mut buf, min)?;
        if buf.len() < min {
            return Ok((!buf.is_empty()).then_some((buf, None)));
        }
        // Chunk ends from `lo` on are still to be looked at.
        let mut lo = min;
        let cut = loop {
            let hi = buf.len().min(max);
            if let Some(end) = self.rabin.first_cut(&buf, lo, hi) {
                break end;
            }
            if hi >= max {
                break max;
            }
            lo = hi + 1;
            self.fill(&mut buf, (hi + READ_STEP).min(max))?;
            if buf.len() == hi {
                break hi; // the data ended
            }
        };
        self.carry.extend_from_slice(&buf[cut..]);
        buf.len = cut;
        let id = self.hints.as_mut().map(|h| {
            let digest = hash(&buf);
            (digest, h.cut(Id::new(digest)))
        });
        if let Some((_, false)) = id {
            self.hints = None;
        }
        Ok(Some((buf, id.map(|(digest, _)| digest))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// restic's test polynomial.
    const POLY: u64 = 0x003D_A335_8B4D_C173;
    const KIB: usize = 1024;

    fn rabin() -> Rabin {
        Rabin::new(POLY, 1024 * KIB, 512 * KIB, 8 * 1024 * KIB).expect("valid parameters")
    }

    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        coffer_testkit::tree::random_bytes(seed, len)
    }

    fn chunk_lengths(data: &[u8], rabin: &Rabin) -> Vec<usize> {
        let pool = BufferPool::new(rabin, 2);
        let mut chunks = Chunks::new(data, rabin, &pool);
        let mut lens = Vec::new();
        while let Some((c, _)) = chunks.next_chunk().expect("reading a slice") {
            lens.push(c.len());
        }
        lens
    }

    /// The cut points computed the slow way: a fresh fingerprint of the 64
    /// bytes before every candidate end.
    fn reference_cuts(data: &[u8], r: &Rabin) -> Vec<usize> {
        let mut lens = Vec::new();
        let mut start = 0;
        while start < data.len() {
            let rest = &data[start..];
            let mut len = rest.len().min(r.max);
            if rest.len() > r.min {
                for end in r.min..=rest.len().min(r.max) {
                    if r.window_at(rest, end) & r.mask == 0 {
                        len = end;
                        break;
                    }
                }
            }
            lens.push(len);
            start += len;
        }
        lens
    }

    #[test]
    fn cuts_match_a_plain_fingerprint_of_each_window() {
        // Small sizes so that many cuts (and the maximum) are exercised.
        let r = Rabin::new(POLY, 4 * KIB, 1024, 16 * KIB).expect("valid parameters");
        let data = pseudo_random(3 * 1024 * KIB + 17, 7);
        let lens = chunk_lengths(&data, &r);
        assert_eq!(lens, reference_cuts(&data, &r));
        assert_eq!(lens.iter().sum::<usize>(), data.len());
        assert!(lens.len() > 300, "{} chunks", lens.len());
    }

    #[test]
    fn chunks_respect_the_limits_and_reassemble() {
        let r = rabin();
        let data = pseudo_random(40 * 1024 * KIB, 23);
        let pool = BufferPool::new(&r, 2);
        let mut chunks = Chunks::new(&data[..], &r, &pool);
        let mut joined = Vec::new();
        let mut lens = Vec::new();
        while let Some((c, _)) = chunks.next_chunk().expect("reading a slice") {
            lens.push(c.len());
            joined.extend_from_slice(&c);
        }
        assert_eq!(joined, data);
        let (last, rest) = lens.split_last().expect("some chunks");
        assert!(
            rest.iter()
                .all(|&l| (512 * KIB..=8 * 1024 * KIB).contains(&l))
        );
        assert!(*last <= 8 * 1024 * KIB);
        // The fingerprint of zeroes is zero: they cut at the minimum size,
        // as restic's and rustic_core's chunkers do.
        let zeroes = vec![0u8; 2 * 1024 * KIB + 5];
        assert_eq!(
            chunk_lengths(&zeroes, &r),
            vec![512 * KIB, 512 * KIB, 512 * KIB, 512 * KIB, 5]
        );
        assert!(chunk_lengths(&[], &r).is_empty());
        assert_eq!(chunk_lengths(&[1, 2, 3], &r), vec![3]);
    }

    #[test]
    fn reads_in_small_pieces_cut_in_the_same_places() {
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(self.0.len()).min(1000);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let r = rabin();
        let data = pseudo_random(12 * 1024 * KIB, 99);
        let mut trickled = Vec::new();
        let pool = BufferPool::new(&r, 2);
        let mut chunks = Chunks::new(Trickle(&data), &r, &pool);
        while let Some(c) = chunks.next_chunk().expect("reading") {
            trickled.push(c.0.len());
        }
        assert_eq!(trickled, chunk_lengths(&data, &r));
    }

    /// `cargo test --release -p coffer-engine --lib chunker_speed -- --ignored --nocapture`
    #[test]
    #[ignore = "a measurement, not a test"]
    fn chunker_speed() {
        let data = pseudo_random(256 * 1024 * KIB, 5);
        let r = rabin();
        let t = std::time::Instant::now();
        let n = chunk_lengths(&data, &r).len();
        let s = t.elapsed().as_secs_f64();
        eprintln!("{n} chunks, {:.0} MiB/s", 256.0 / s);
    }

    /// Each chunk's bytes and the id its reader gave it (if any).
    fn chunk_with(
        data: &[u8],
        rabin: &Rabin,
        parent: Option<Vec<(Id, u32)>>,
    ) -> Vec<(Vec<u8>, Option<[u8; 32]>)> {
        let pool = BufferPool::new(rabin, 2);
        let mut chunks = Chunks::new(data, rabin, &pool).hinted(parent);
        let mut out = Vec::new();
        while let Some((c, id)) = chunks.next_chunk().expect("reading a slice") {
            out.push((c.to_vec(), id));
            pool.give(c);
        }
        out
    }

    fn as_parent(chunks: &[(Vec<u8>, Option<[u8; 32]>)]) -> Vec<(Id, u32)> {
        chunks
            .iter()
            .map(|(c, _)| (Id::new(hash(c)), c.len() as u32))
            .collect()
    }

    /// Whatever the change — append, insertion, deletion, overwrite, a
    /// shorter file — a file chunked with its parent's chunks as hints is
    /// cut exactly where the chunker alone cuts it, and every id a reader
    /// gives is its chunk's hash.
    #[test]
    fn parent_hints_never_move_a_cut() {
        let r = rabin();
        let old = pseudo_random(12 * 1024 * KIB, 11);
        let parent = as_parent(&chunk_with(&old, &r, None));
        assert!(parent.len() > 6, "enough chunks to change some");
        let noise = pseudo_random(3 * 1024 * KIB, 12);
        let mut changed: Vec<(&str, Vec<u8>)> = Vec::new();
        changed.push(("append", [&old[..], &noise[..100_000]].concat()));
        let mid = old.len() / 2;
        changed.push(("insert", [&old[..mid], &noise[..37], &old[mid..]].concat()));
        changed.push(("delete", [&old[..mid], &old[mid + 4321..]].concat()));
        let mut over = old.clone();
        over[3 * 1024 * KIB..5 * 1024 * KIB].copy_from_slice(&noise[..2 * 1024 * KIB]);
        changed.push(("overwrite", over));
        changed.push(("truncate", old[..old.len() - 700_000].to_vec()));
        changed.push(("same", old.clone()));
        changed.push(("rewritten", noise.clone()));
        for (what, data) in changed {
            let plain: Vec<Vec<u8>> = chunk_with(&data, &r, None)
                .into_iter()
                .map(|(c, _)| c)
                .collect();
            let hinted = chunk_with(&data, &r, Some(parent.clone()));
            let hinted_bytes: Vec<&Vec<u8>> = hinted.iter().map(|(c, _)| c).collect();
            assert!(
                hinted_bytes.iter().copied().eq(plain.iter()),
                "{what}: cuts moved"
            );
            for (c, id) in &hinted {
                assert!(id.is_none_or(|id| id == hash(c)), "{what}: a wrong id");
            }
        }
    }

    /// A parent chunked some other way (lengths the chunker allows, but
    /// not its cuts) costs dedup, never data: the chunks still make up the
    /// file exactly.
    #[test]
    fn hints_from_another_chunking_lose_no_byte() {
        let r = rabin();
        let data = pseudo_random(6 * 1024 * KIB, 13);
        let fixed: Vec<(Id, u32)> = data
            .chunks(600 * KIB)
            .map(|c| (Id::new(hash(c)), c.len() as u32))
            .collect();
        let chunks = chunk_with(&data, &r, Some(fixed));
        let joined: Vec<u8> = chunks.iter().flat_map(|(c, _)| c.iter().copied()).collect();
        assert!(joined == data, "the chunks make up the file");
        for (c, id) in &chunks {
            assert!(c.len() <= r.max);
            assert!(id.is_none_or(|id| id == hash(c)));
        }
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert!(Rabin::new(0, 1024, 512, 2048).is_err());
        assert!(Rabin::new(POLY, 1000, 512, 2048).is_err());
        assert!(Rabin::new(POLY, 1024, 32, 2048).is_err());
        assert!(Rabin::new(POLY, 1024, 512, 512).is_err());
    }
}
