//! Property tests: any generated tree survives backup and restore.

use std::fs;
use std::io::{self};

use coffer_engine::{Repo, RestoreMode};
use coffer_testkit::tree::{self};

mod common;

use common::*;
use proptest::prelude::*;

fn name() -> impl Strategy<Value = String> {
    // unicode, spaces, newlines, dots — but never "." or ".."
    "[a-zA-Z0-9 ü€\n._-]{1,12}".prop_filter("not . or ..", |s| s != "." && s != "..")
}

/// One generated file: path components, content, mode, mtime seconds and nanoseconds.
type GenFile = (Vec<String>, Vec<u8>, u32, i64, u32);

fn files() -> impl Strategy<Value = Vec<GenFile>> {
    prop::collection::vec(
        (
            prop::collection::vec(name(), 1..4),
            prop::collection::vec(any::<u8>(), 0..20_000),
            prop::sample::select(vec![0o600u32, 0o644, 0o755, 0o400, 0o4755]),
            0i64..2_000_000_000,
            0u32..1_000_000_000,
        ),
        1..12,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn random_trees_round_trip_exactly(files in files()) {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir_all(&src).unwrap();
        let mut made = Vec::new();
        for (parts, content, mode, secs, nanos) in &files {
            let rel: std::path::PathBuf = parts.iter().collect();
            let path = src.join(&rel);
            // skip paths that collide with an existing file or directory
            if made.iter().any(|m: &std::path::PathBuf| m.starts_with(&rel) || rel.starts_with(m)) {
                continue;
            }
            tree::write(&path, content);
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(*mode)).unwrap();
            tree::set_mtime(&path, *secs, *nanos);
            made.push(rel);
        }
        let dir = tmp.path().join("repo");
        let repo = Repo::init(storage(&dir), PW).unwrap();
        let snap = backup_dir(&repo, &src, "files");
        let dest = tmp.path().join("dest");
        repo.restore_tree(&snap.id, &dest, RestoreMode::RefuseNonEmpty, None).unwrap();
        let (a, b) = (tree::walk(&src), tree::walk(&dest));
        for (k, e) in &a {
            // directory mtimes changed while files were added; compare files exactly
            if e.kind == "file" {
                prop_assert_eq!(Some(e), b.get(k), "{}", k.display());
            }
        }
        prop_assert_eq!(a.len(), b.len());
    }

    /// Mutated native tars (flipped, overwritten and cut bytes) never
    /// panic, and whatever they do, nothing lands outside the root.
    #[test]
    fn mutated_tree_tars_never_escape(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..24),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        use std::sync::OnceLock;
        static TAR: OnceLock<Vec<u8>> = OnceLock::new();
        let base = TAR.get_or_init(|| {
            let tmp = tempfile::tempdir().unwrap();
            let src = tmp.path().join("src");
            tree::build_rich_tree(&src);
            // From the staging directory beside `dest`, this is `root/outside`.
            std::os::unix::fs::symlink("../outside", src.join("escape")).unwrap();
            let mut out = Vec::new();
            coffer_engine::write_dir_tar(&src, &[], &mut out, None).unwrap();
            out
        });
        let mut bytes = base.clone();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if let Some(c) = cut {
            bytes.truncate(c.index(bytes.len()));
        }
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        fs::create_dir(&root).unwrap();
        let _ = coffer_engine::seal::verify_tree_tar(&mut bytes.as_slice());
        let _ = coffer_engine::restore_tree_from_tar(
            &mut bytes.as_slice(),
            &root.join("dest"),
            RestoreMode::RefuseNonEmpty,
            None,
        );
        // Only `dest` (when it restored), no staging, nothing through the link.
        let top: Vec<_> = fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name()).collect();
        prop_assert!(top.is_empty() || top == ["dest"], "{:?}", top);
        prop_assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);
    }

    #[test]
    fn random_streams_round_trip_exactly(data in prop::collection::vec(any::<u8>(), 0..3_000_000)) {
        let tmp = tempfile::tempdir().unwrap();
        let repo = Repo::init(storage(&tmp.path().join("repo")), PW).unwrap();
        let snap = repo
            .backup_stream(Box::new(io::Cursor::new(data.clone())), "s", &bref("test", "s", 1), None)
            .unwrap();
        let mut out = Vec::new();
        repo.restore_stream(&snap.id, &mut out).unwrap();
        prop_assert_eq!(out, data);
    }
}
