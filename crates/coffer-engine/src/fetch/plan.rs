//! Grouping blobs into spans of packs, each read with one request.

use std::ops::Range;

use rustic_core::Id;

use super::BlobRef;

/// The most bytes one span reads (and, separately, the most plain bytes its
/// blobs hold), so a worker holds at most about twice this: 8 workers at
/// 4 MiB keep a restore within ≈ 200 MiB (the 2 GiB benchmark peaked at
/// 255 MiB with 8 MiB spans). A single blob larger than this (rustic's
/// chunker cuts at up to 8 MiB) is a span of its own.
pub(crate) const MAX_SPAN: u64 = 4 * 1024 * 1024;

/// Blobs this close in a pack are read together, the bytes between them
/// thrown away: one more request costs a round trip, which at 30 ms is worth
/// more than a few hundred KiB of transfer.
pub(crate) const MAX_GAP: u64 = 512 * 1024;

/// One ranged read: `length` bytes at `offset` of `pack`, holding `blobs`
/// (each with what the caller needs it for).
#[derive(Debug)]
pub(crate) struct PackSpan<T> {
    pub pack: Id,
    pub offset: u64,
    pub length: u64,
    pub blobs: Vec<(BlobRef, T)>,
    /// The plain bytes of the blobs.
    plain: u64,
}

impl<T> PackSpan<T> {
    fn start(blob: BlobRef, with: T) -> Self {
        Self {
            pack: blob.pack,
            offset: blob.offset.into(),
            length: blob.length.into(),
            plain: blob.plain_len(),
            blobs: vec![(blob, with)],
        }
    }

    /// Adds `blob` if it lies in the same pack at or after this span's end
    /// (or is the very blob that ends it, read once), close enough and
    /// small enough; gives it back otherwise.
    fn try_extend(&mut self, blob: BlobRef, with: T) -> Result<(), (BlobRef, T)> {
        let end = self.offset + self.length;
        let repeat = self.blobs.last().is_some_and(|(b, _)| *b == blob);
        let fits = blob.pack == self.pack
            && (repeat
                || (u64::from(blob.offset) >= end
                    && u64::from(blob.offset) - end <= MAX_GAP
                    && blob.end() - self.offset <= MAX_SPAN))
            && self.plain + blob.plain_len() <= MAX_SPAN;
        if !fits {
            return Err((blob, with));
        }
        self.length = self.length.max(blob.end() - self.offset);
        self.plain += blob.plain_len();
        self.blobs.push((blob, with));
        Ok(())
    }
}

/// Spans covering `blobs` in the order given, for output that must come in
/// that order (a file streamed out): consecutive blobs share a span when
/// they follow each other in one pack, as a file's blobs usually do.
pub(crate) fn in_order<T>(blobs: impl IntoIterator<Item = (BlobRef, T)>) -> Vec<PackSpan<T>> {
    let mut spans: Vec<PackSpan<T>> = Vec::new();
    for (blob, with) in blobs {
        let rest = match spans.last_mut() {
            Some(span) => span.try_extend(blob, with),
            None => Err((blob, with)),
        };
        if let Err((blob, with)) = rest {
            spans.push(PackSpan::start(blob, with));
        }
    }
    spans
}

/// Spans covering `blobs` in any order (each blob given once): sorted by
/// pack and offset so every pack is read front to back in as few requests
/// as possible. Packs come in the order `blobs` first needs them, so the
/// files needing the first packs complete first.
pub(crate) fn by_pack<T>(blobs: Vec<(BlobRef, T)>) -> Vec<PackSpan<T>> {
    let mut first_need: std::collections::HashMap<Id, usize> = std::collections::HashMap::new();
    for (blob, _) in &blobs {
        let next = first_need.len();
        first_need.entry(blob.pack).or_insert(next);
    }
    let mut blobs = blobs;
    blobs.sort_by_key(|(b, _)| (first_need.get(&b.pack).copied(), b.offset));
    in_order(blobs)
}

/// Groups consecutive `spans` into runs read with one
/// [`coffer_targets::Storage::get_ranges`] call: spans of one pack, each
/// starting at or after the previous one's end, all within `run_bytes` of
/// the run's first byte. With `run_bytes` 0 each span is a run of its own.
pub(crate) fn runs<T>(spans: &[PackSpan<T>], run_bytes: u64) -> Vec<Range<usize>> {
    let mut runs: Vec<Range<usize>> = Vec::new();
    for (i, span) in spans.iter().enumerate() {
        let joins = runs.last_mut().filter(|run| {
            let (first, last) = (&spans[run.start], &spans[i - 1]);
            first.pack == span.pack
                && span.offset >= last.offset + last.length
                && span.offset + span.length - first.offset <= run_bytes
        });
        match joins {
            Some(run) => run.end = i + 1,
            None => runs.push(i..i + 1),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(pack: u8, offset: u32, length: u32) -> BlobRef {
        let mut id = [0u8; 32];
        id[0] = pack;
        id[1..5].copy_from_slice(&offset.to_le_bytes());
        BlobRef {
            id: Id::new(id),
            pack: Id::new([pack; 32]),
            offset,
            length,
            uncompressed: None,
        }
    }

    #[test]
    fn adjacent_blobs_of_a_pack_share_a_read() {
        let spans = in_order([
            (blob(1, 0, 100), 0),
            (blob(1, 100, 100), 1),
            (blob(1, 300, 50), 2),
            (blob(2, 0, 10), 3),
        ]);
        assert_eq!(spans.len(), 2);
        assert_eq!((spans[0].offset, spans[0].length), (0, 350));
        assert_eq!(spans[0].blobs.len(), 3);
        assert_eq!((spans[1].offset, spans[1].length), (0, 10));
    }

    #[test]
    fn far_apart_backwards_or_large_blobs_start_new_reads() {
        let gap = MAX_GAP as u32;
        let big = MAX_SPAN as u32;
        let spans = in_order([
            (blob(1, 0, 100), ()),
            (blob(1, 100 + gap + 1, 100), ()),
            (blob(1, 0, 100), ()),
            (blob(1, 200, big), ()),
        ]);
        let offsets: Vec<u64> = spans.iter().map(|s| s.offset).collect();
        assert_eq!(offsets, [0, u64::from(100 + gap + 1), 0, 200]);
    }

    #[test]
    fn a_repeated_blob_is_read_once_but_kept_twice() {
        // A run of identical chunks (zeros) is one blob repeated.
        let spans = in_order((0..4).map(|i| (blob(1, 0, 1000), i)));
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].length, 1000);
        assert_eq!(spans[0].blobs.len(), 4);
    }

    #[test]
    fn repeats_are_bounded_by_their_plain_size() {
        let one = (MAX_SPAN / 4) as u32;
        let spans = in_order((0..10).map(|i| (blob(1, 0, one), i)));
        assert!(spans.len() >= 3, "{}", spans.len());
        for s in &spans {
            assert!(s.plain <= MAX_SPAN);
        }
    }

    #[test]
    fn by_pack_reads_each_pack_front_to_back_in_order_of_need() {
        let spans = by_pack(vec![
            (blob(2, 500, 10), 'a'),
            (blob(1, 100, 10), 'b'),
            (blob(2, 0, 10), 'c'),
            (blob(1, 0, 10), 'd'),
        ]);
        let order: Vec<char> = spans
            .iter()
            .flat_map(|s| s.blobs.iter().map(|(_, c)| *c))
            .collect();
        assert_eq!(order, ['c', 'a', 'd', 'b']);
        assert_eq!(spans.len(), 2);
    }

    #[test]
    fn runs_join_following_spans_of_a_pack_within_the_limit() {
        let mib = 1024 * 1024;
        let spans: Vec<PackSpan<()>> = [(1, 0), (1, 5), (1, 9), (1, 14), (2, 0), (2, 0), (1, 20)]
            .into_iter()
            .map(|(pack, at)| PackSpan::start(blob(pack, at * mib, mib), ()))
            .collect();
        // 16 MiB: the four of pack 1 (the last ends at 15 MiB), then pack 2,
        // pack 2 again from its start (backwards), pack 1 again (after
        // another pack). 10 MiB: the fourth of pack 1 goes too far.
        assert_eq!(runs(&spans, 16 * u64::from(mib)), [0..4, 4..5, 5..6, 6..7]);
        assert_eq!(
            runs(&spans, 10 * u64::from(mib)),
            [0..3, 3..4, 4..5, 5..6, 6..7]
        );
        assert_eq!(runs(&spans, 0).len(), spans.len());
    }
}
