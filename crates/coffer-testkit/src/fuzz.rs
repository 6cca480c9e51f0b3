//! Mutation fuzzing with proptest: a valid input (a real export, a real tree
//! tar, a real configuration) damaged by a few random edits — bits flipped,
//! bytes set, ranges cut, duplicated, inserted, the end truncated — which
//! reaches far deeper into a parser than random bytes do. Each parser's fuzz
//! test runs [`cases`] cases: a few hundred in CI, `COFFER_FUZZ_CASES=100000`
//! for the long runs docs/testing.md records.

use proptest::prelude::*;
use proptest::sample::Index;

/// How many cases a fuzz test runs: `COFFER_FUZZ_CASES`, else 256.
pub fn cases() -> u32 {
    std::env::var("COFFER_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// A proptest configuration with [`cases`] cases and no persisted failures
/// (a failing case is printed, minimized, in the test's output).
pub fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// One edit of an input.
#[derive(Debug, Clone)]
pub enum Edit {
    /// Flip one bit.
    Flip(Index, u8),
    /// Set one byte.
    Set(Index, u8),
    /// Cut a range out.
    Cut(Index, usize),
    /// Insert bytes.
    Insert(Index, Vec<u8>),
    /// Copy a range elsewhere (repeated structures: headers, entries).
    Duplicate(Index, usize, Index),
    /// Keep only a prefix.
    Truncate(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Edit::Flip(i, b)),
        3 => (any::<Index>(), any::<u8>()).prop_map(|(i, v)| Edit::Set(i, v)),
        1 => (any::<Index>(), 1usize..600).prop_map(|(i, n)| Edit::Cut(i, n)),
        1 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..64))
            .prop_map(|(i, b)| Edit::Insert(i, b)),
        1 => (any::<Index>(), 1usize..1024, any::<Index>())
            .prop_map(|(i, n, to)| Edit::Duplicate(i, n, to)),
        1 => any::<Index>().prop_map(Edit::Truncate),
    ]
}

/// Applies `edits` to `input`.
pub fn apply(input: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut out = input.to_vec();
    for e in edits {
        if out.is_empty() {
            out.push(0);
        }
        let len = out.len();
        match e {
            Edit::Flip(i, b) => out[i.index(len)] ^= 1 << b,
            Edit::Set(i, v) => out[i.index(len)] = *v,
            Edit::Cut(i, n) => {
                let at = i.index(len);
                out.drain(at..(at + n).min(len));
            }
            Edit::Insert(i, b) => {
                let at = i.index(len + 1);
                out.splice(at..at, b.iter().copied());
            }
            Edit::Duplicate(i, n, to) => {
                let at = i.index(len);
                let chunk = out[at..(at + n).min(len)].to_vec();
                let to = to.index(len + 1);
                out.splice(to..to, chunk);
            }
            Edit::Truncate(i) => out.truncate(i.index(len)),
        }
    }
    out
}

/// `seed` with one to four random edits.
pub fn mutated(seed: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(edit(), 1..5).prop_map(move |edits| apply(&seed, &edits))
}
