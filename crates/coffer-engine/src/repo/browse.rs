//! Browsing a tree snapshot: the entries of one directory, found by
//! walking the snapshot's trees from its root one name at a time (the
//! trees on the way, no more). Names come from the repository, which is
//! untrusted: the path asked for is plain relative names only, and each is
//! matched exactly.

use std::path::{Component, Path};

use rustic_core::repofile::{Node, NodeType, SnapshotFile};
use rustic_core::{IndexedTree, Repository};
use serde::Serialize;

use super::{ContentKind, Repo, SnapshotInfo, guarded};
use crate::{EngineError, EngineResult};

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// Anything else (device, FIFO, socket).
    Special,
}

/// One entry of a directory in a snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct TreeEntry {
    /// Its name (lossy UTF-8).
    pub name: String,
    /// What it is.
    pub kind: EntryKind,
    /// Its size in bytes (files).
    pub size: u64,
    /// Its modification time (RFC 3339), when recorded.
    pub mtime: Option<String>,
    /// Its Unix permission bits, when recorded.
    pub mode: Option<u32>,
    /// A symlink's target.
    pub link_target: Option<String>,
}

impl Repo {
    /// The entries of the directory `rel` (relative to the snapshot's
    /// root; empty for the root) of tree snapshot `snapshot`, by name.
    /// Refused for a stream or a sealed snapshot; `NotFound` for a path
    /// the snapshot does not have. Takes no lock: it only reads, and a
    /// prune deleting what it reads makes it fail, never damage anything.
    pub fn list_dir(&self, snapshot: &str, rel: &Path) -> EngineResult<Vec<TreeEntry>> {
        guarded(|| {
            let repo = self.handle(None, None)?;
            let snap = self.find_snapshot(&repo, snapshot)?;
            let info = SnapshotInfo::from_snapshot(&snap);
            let repo = repo.to_indexed_ids().map_err(|e| EngineError::rustic(&e))?;
            let dir = find_node(&repo, &snap, &info, rel)?;
            let Some(subtree) = dir.subtree.filter(|_| dir.is_dir()) else {
                return Err(EngineError::InvalidInput(format!(
                    "{} is a file, not a directory",
                    rel.display()
                )));
            };
            let tree = repo
                .get_tree(&subtree)
                .map_err(|e| EngineError::rustic(&e))?;
            Ok(tree.nodes.iter().map(entry).collect())
        })
    }
}

/// The node at `rel` below the snapshot's root.
pub(super) fn find_node<S: IndexedTree>(
    repo: &Repository<S>,
    snap: &SnapshotFile,
    info: &SnapshotInfo,
    rel: &Path,
) -> EngineResult<Node> {
    if info.sealed {
        return Err(EngineError::SealedWithoutIdentity {
            snapshot: info.id.clone(),
        });
    }
    if info.kind == Some(ContentKind::Stream) {
        return Err(EngineError::InvalidInput(format!(
            "snapshot {} holds a stream, not a directory tree",
            info.id
        )));
    }
    let [root_path] = info.paths.as_slice() else {
        return Err(EngineError::InvalidInput(format!(
            "snapshot {} has {} paths; Coffer browses snapshots of one tree",
            info.id,
            info.paths.len()
        )));
    };
    let mut node = repo
        .node_from_snapshot_and_path(snap, root_path)
        .map_err(|e| EngineError::rustic(&e))?;
    for part in rel.components() {
        let Component::Normal(name) = part else {
            return Err(EngineError::InvalidInput(format!(
                "{}: give a path of plain names below the snapshot's root",
                rel.display()
            )));
        };
        let Some(subtree) = node.subtree.filter(|_| node.is_dir()) else {
            return Err(EngineError::NotFound(format!(
                "{} is not in snapshot {} (a file is on the way)",
                rel.display(),
                info.id
            )));
        };
        let tree = repo
            .get_tree(&subtree)
            .map_err(|e| EngineError::rustic(&e))?;
        node = tree
            .nodes
            .into_iter()
            .find(|n| n.name() == name)
            .ok_or_else(|| {
                EngineError::NotFound(format!("{} is not in snapshot {}", rel.display(), info.id))
            })?;
    }
    Ok(node)
}

fn entry(node: &Node) -> TreeEntry {
    let kind = match &node.node_type {
        NodeType::File => EntryKind::File,
        NodeType::Dir => EntryKind::Dir,
        NodeType::Symlink { .. } => EntryKind::Symlink,
        _ => EntryKind::Special,
    };
    TreeEntry {
        name: node.name().to_string_lossy().into_owned(),
        kind,
        size: node.meta.size,
        mtime: node.meta.mtime.map(|t| t.to_string()),
        mode: node.meta.mode.map(crate::meta::unix_mode_from_go),
        link_target: match &node.node_type {
            NodeType::Symlink { .. } => {
                Some(node.node_type.to_link().to_string_lossy().into_owned())
            }
            _ => None,
        },
    }
}
