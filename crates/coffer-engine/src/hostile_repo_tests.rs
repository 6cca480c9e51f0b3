//! A hostile repository: snapshots whose trees hold names that would escape
//! the restore root (absolute, `..`, `.`, empty, with `/` or NUL) or the
//! same name twice.
//!
//! How the repository is made: rustic_core's own archiver, fed by a source
//! whose entries carry nodes named differently from their paths. The
//! archiver takes the tree's *structure* from the paths and stores each node
//! with the name the node carries, so the result is a valid repository
//! (packs, index, snapshot, all encrypted as restic writes them) whose trees
//! hold exactly the names under test — simpler and sounder than rewriting
//! an encrypted tree blob and every id above it by hand.

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustic_core::repofile::{Metadata, Node, NodeType};
use rustic_core::{
    BackupOptions, ParentOptions, ReadSource, ReadSourceEntry, RusticResult, SnapshotOptions,
};

use crate::{EngineError, Repo, RestoreMode};

/// An entry: path, node, content.
type Entry = (PathBuf, Node, Vec<u8>);

struct Hostile(Vec<Entry>);

impl ReadSource for Hostile {
    type Open = Box<dyn Read + Send>;
    type Iter = std::vec::IntoIter<RusticResult<ReadSourceEntry<Self::Open>>>;

    fn size(&self) -> RusticResult<Option<u64>> {
        Ok(None)
    }

    fn entries(&self) -> Self::Iter {
        let entries: Vec<_> = self
            .0
            .iter()
            .map(|(path, node, content)| {
                let open: Option<Self::Open> = (node.node_type == NodeType::File)
                    .then(|| Box::new(std::io::Cursor::new(content.clone())) as Self::Open);
                Ok(ReadSourceEntry {
                    path: path.clone(),
                    node: node.clone(),
                    open,
                })
            })
            .collect();
        entries.into_iter()
    }
}

fn file(path: &str, name: &[u8], content: &[u8]) -> Entry {
    let meta = Metadata {
        mode: Some(0o644),
        size: content.len() as u64,
        ..Metadata::default()
    };
    let node = Node::new_node(OsStr::from_bytes(name), NodeType::File, meta);
    (PathBuf::from(path), node, content.to_vec())
}

fn dir(path: &str, name: &[u8]) -> Entry {
    let meta = Metadata {
        mode: Some(0o755 | (1 << 31)),
        ..Metadata::default()
    };
    let node = Node::new_node(OsStr::from_bytes(name), NodeType::Dir, meta);
    (PathBuf::from(path), node, Vec::new())
}

/// Records a snapshot of `/files` holding `entries`; returns its id.
fn snapshot(repo: &Repo, entries: Vec<Entry>) -> String {
    let handle = repo.handle(None, None).unwrap().to_indexed_ids().unwrap();
    // Tagged as a tree, so that exports archive it (`portable_form`).
    let snap = SnapshotOptions::default()
        .add_tags("coffer,coffer-kind=tree")
        .and_then(|o| o.to_snapshot())
        .unwrap();
    let opts = BackupOptions::default().parent_opts(ParentOptions::default().force(true));
    let snap = handle
        .archive(&opts, &Hostile(entries), snap, &[PathBuf::from("/files")])
        .unwrap();
    snap.id.to_hex().as_str().to_owned()
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".coffer-restore-"))
        .collect()
}

#[test]
fn unsafe_names_and_duplicates_in_a_tree_are_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let storage: Arc<dyn coffer_targets::Storage> =
        Arc::new(coffer_targets::LocalStorage::new(tmp.path().join("repo")));
    let repo = Repo::init(storage, "pw").unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let absolute = outside.join("evil");
    let ok = || file("/files/ok", b"ok", b"fine");
    let cases: Vec<(&str, Vec<Entry>)> = vec![
        (
            "\"../../evil\"",
            vec![ok(), file("/files/x", b"../../evil", b"evil")],
        ),
        (
            "evil\"",
            vec![
                ok(),
                file("/files/x", absolute.as_os_str().as_bytes(), b"evil"),
            ],
        ),
        ("\"a/b\"", vec![ok(), file("/files/x", b"a/b", b"evil")]),
        ("\".\"", vec![ok(), file("/files/x", b".", b"evil")]),
        ("\"\"", vec![ok(), file("/files/x", b"", b"evil")]),
        ("\"a\\0b\"", vec![ok(), file("/files/x", b"a\0b", b"evil")]),
        (
            "\"..\"",
            vec![
                ok(),
                dir("/files/sub", b".."),
                file("/files/sub/f", b"f", b"evil"),
            ],
        ),
        (
            "dup twice",
            vec![
                file("/files/d1", b"dup", b"one"),
                file("/files/d2", b"dup", b"two"),
            ],
        ),
    ];
    for (shown, entries) in cases {
        let id = snapshot(&repo, entries);
        let dest = tmp.path().join("dest");
        let e = repo
            .restore_tree(&id, &dest, RestoreMode::RefuseNonEmpty, None)
            .unwrap_err();
        assert!(
            matches!(&e, EngineError::Engine(m) if m.contains(shown)),
            "{shown}: {e}"
        );
        assert!(!dest.exists(), "{shown}");
        assert!(!tmp.path().join("evil").exists(), "{shown}");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "{shown}");
        assert!(leftovers(tmp.path()).is_empty(), "{shown}");
        // An export of it is refused by the length pass, before a byte.
        let e = repo.portable_form(&id).unwrap_err();
        assert!(
            matches!(&e, EngineError::Engine(m) if m.contains(shown)),
            "{shown}: {e}"
        );
    }
    // The same machinery with plain names restores.
    let id = snapshot(&repo, vec![ok(), dir("/files/sub", b"sub")]);
    let dest = tmp.path().join("dest");
    repo.restore_tree(&id, &dest, RestoreMode::RefuseNonEmpty, None)
        .unwrap();
    assert_eq!(std::fs::read(dest.join("ok")).unwrap(), b"fine");
    assert!(dest.join("sub").is_dir());
}
