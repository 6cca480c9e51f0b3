//! A changed file's chunks in the parent snapshot, as hints for the
//! chunker: most of a changed file is what it was (a log grew, a few rows
//! of a dump changed), and where the parent's next chunk is found again,
//! byte for byte, the chunker need not look for its end.
//!
//! Why the cut points stay exactly the chunker's: a cut depends only on
//! where the chunk starts and on its bytes. A parent chunk that starts
//! where the next chunk starts and whose bytes (its SHA-256) are found
//! again ends where the chunker would end it — unless the parent's file
//! ended there, so the last parent chunk is never a hint. After a change
//! the chunker cuts again, and once it cuts a chunk the parent has, the two
//! are in step from there on.
//!
//! The hints are only hints: every chunk stored is hashed from the bytes
//! read, so a parent that was chunked some other way costs dedup, never
//! data.

use std::collections::HashMap;

use rustic_core::Id;

/// Chunks cut without meeting the parent again before the hints are
/// dropped (a file rewritten whole; its chunks are then hashed by the
/// sealers, in parallel, not by its reader).
const MAX_MISSES: usize = 8;

/// Where a changed file's parent chunks were.
pub(crate) struct Hints {
    /// The parent's chunks, in file order: id and plain length.
    chunks: Vec<(Id, usize)>,
    /// The place of each parent chunk (the last one where an id repeats).
    by_id: HashMap<Id, usize>,
    /// The parent chunk expected where the next chunk starts.
    next: Option<usize>,
    /// Chunks cut since the file and its parent were last in step.
    misses: usize,
}

impl Hints {
    /// Hints from the parent's content (ids and plain lengths). `None`
    /// where they cannot help: a file of one chunk, or chunks the chunker
    /// (`min`..=`max` bytes) cannot have cut.
    pub(crate) fn new(chunks: Vec<(Id, u32)>, min: usize, max: usize) -> Option<Self> {
        let chunks: Vec<(Id, usize)> = chunks
            .into_iter()
            .map(|(id, len)| (id, len as usize))
            .collect();
        let (_, cut) = chunks.split_last()?;
        if cut.is_empty() || cut.iter().any(|&(_, len)| len < min || len > max) {
            return None;
        }
        let by_id = chunks
            .iter()
            .enumerate()
            .map(|(place, &(id, _))| (id, place))
            .collect();
        Some(Self {
            chunks,
            by_id,
            next: Some(0),
            misses: 0,
        })
    }

    /// The parent chunk that may come next: its id and length.
    pub(crate) fn expected(&self) -> Option<(Id, usize)> {
        self.next.and_then(|k| self.chunks.get(k)).copied()
    }

    /// The expected chunk came: the one after it is expected next.
    pub(crate) fn found(&mut self) {
        self.misses = 0;
        self.follow(self.next);
    }

    /// The expected chunk did not come: the chunker cuts until a chunk
    /// of the parent comes again.
    pub(crate) fn lost(&mut self) {
        self.next = None;
    }

    /// The chunker cut a chunk whose id is `id`; false once the hints are
    /// not worth keeping.
    pub(crate) fn cut(&mut self, id: Id) -> bool {
        match self.by_id.get(&id).copied() {
            Some(place) => {
                self.misses = 0;
                self.follow(Some(place));
            }
            None => self.misses += 1,
        }
        self.misses < MAX_MISSES
    }

    /// After parent chunk `place`, its successor is expected — unless it is
    /// the last, whose end was the old file's end, not a cut.
    fn follow(&mut self, place: Option<usize>) {
        self.next = place.map(|k| k + 1).filter(|&k| k + 1 < self.chunks.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> Id {
        Id::new([n; 32])
    }

    #[test]
    fn chunks_the_chunker_cannot_cut_are_no_hints() {
        let ok = vec![(id(1), 600), (id(2), 700), (id(3), 10)];
        assert!(Hints::new(ok, 512, 8192).is_some());
        assert!(Hints::new(vec![(id(1), 600)], 512, 8192).is_none());
        assert!(Hints::new(vec![(id(1), 100), (id(2), 600)], 512, 8192).is_none());
        assert!(Hints::new(vec![(id(1), 9000), (id(2), 600)], 512, 8192).is_none());
        assert!(Hints::new(Vec::new(), 512, 8192).is_none());
    }

    #[test]
    fn the_last_parent_chunk_is_never_expected() {
        let mut h = Hints::new(vec![(id(1), 600), (id(2), 700), (id(3), 800)], 512, 8192)
            .expect("valid hints");
        assert_eq!(h.expected(), Some((id(1), 600)));
        h.found();
        assert_eq!(h.expected(), Some((id(2), 700)));
        h.found();
        assert_eq!(h.expected(), None, "the old file ended there: no cut");
    }

    #[test]
    fn a_chunk_of_the_parent_puts_them_in_step_again() {
        let chunks = (1..=5).map(|n| (id(n), 600)).collect();
        let mut h = Hints::new(chunks, 512, 8192).expect("valid hints");
        h.lost();
        assert_eq!(h.expected(), None);
        assert!(h.cut(id(99)));
        assert!(h.cut(id(2)));
        assert_eq!(h.expected(), Some((id(3), 600)));
        for _ in 0..MAX_MISSES - 1 {
            assert!(h.cut(id(99)));
        }
        assert!(!h.cut(id(99)), "a file rewritten whole drops its hints");
    }
}
