//! Fuzzing the tree tar reader (restores of uploaded trees: a files
//! component's native upload, a tree inside an export): a real tree tar —
//! directories, files, symlinks, hard links, long and odd names, extended
//! attributes — with random edits. Refused, or restored inside the
//! destination; never a panic, never a file written outside it.
//! `COFFER_FUZZ_CASES` cases (docs/testing.md).

use coffer_engine::{RestoreMode, restore_tree_from_tar, write_dir_tar};
use proptest::prelude::*;

fn real_tar() -> &'static [u8] {
    static TAR: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    TAR.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        coffer_testkit::tree::build_rich_tree(&src);
        let mut out = Vec::new();
        write_dir_tar(&src, &[], &mut out, None).unwrap();
        out
    })
}

fn outside(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if name != "dest" {
            out.push(name);
        }
    }
    out
}

proptest! {
    #![proptest_config(coffer_testkit::fuzz::config())]

    #[test]
    fn a_real_tree_tar_mutated_is_refused_or_restored_inside(
        tar in coffer_testkit::fuzz::mutated(real_tar().to_vec())
    ) {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("dest");
        let _ = restore_tree_from_tar(&mut tar.as_slice(), &dest, RestoreMode::RefuseNonEmpty, None);
        let escaped = outside(root.path());
        prop_assert!(escaped.is_empty(), "written outside: {escaped:?}");
    }
}
