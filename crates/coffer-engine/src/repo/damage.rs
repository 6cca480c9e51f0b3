//! Which snapshots a damaged pack hurts: the blobs the index places in
//! those packs, and every snapshot whose tree walk meets one of them (or
//! cannot be walked at all).

use std::collections::BTreeSet;
use std::path::Path;

use rustic_core::repofile::{IndexFile, NodeType};

use super::{Repo, SnapshotInfo, guarded};
use crate::{EngineError, EngineResult};

/// A snapshot a damaged pack hurts, and how.
#[derive(Debug, Clone)]
pub struct Affected {
    /// The snapshot.
    pub snapshot: SnapshotInfo,
    /// What of it is in a damaged pack (a file's path, a directory), or why
    /// it could not be walked.
    pub why: String,
}

/// What damaged packs hurt.
#[derive(Debug, Clone, Default)]
pub struct Damage {
    /// The full ids of the packs the given ids (or their prefixes, as a
    /// check reports them: `Pack:3c9a5dc5`) name.
    pub packs: Vec<String>,
    /// The snapshots using a blob of one of them.
    pub affected: Vec<Affected>,
}

impl Repo {
    /// The packs `ids` name (full ids or prefixes of at least 8 hex digits)
    /// and the snapshots that use a blob of any of them.
    pub fn snapshots_using_packs(&self, ids: &[String]) -> EngineResult<Damage> {
        let ids: Vec<String> = ids
            .iter()
            .filter(|i| i.len() >= 8)
            .map(|i| i.to_ascii_lowercase())
            .collect();
        if ids.is_empty() {
            return Ok(Damage::default());
        }
        guarded(|| {
            let repo = self.handle(None, None)?;
            let mut blobs = BTreeSet::new();
            let mut packs = BTreeSet::new();
            for item in repo
                .stream_files::<IndexFile>()
                .map_err(|e| EngineError::rustic(&e))?
            {
                let (_, index) = item.map_err(|e| EngineError::rustic(&e))?;
                for pack in &index.packs {
                    let id = pack.id.to_hex().as_str().to_owned();
                    if ids.iter().any(|i| id.starts_with(i.as_str())) {
                        blobs.extend(pack.blobs.iter().map(|b| b.id.to_hex().as_str().to_owned()));
                        packs.insert(id);
                    }
                }
            }
            let snaps = repo
                .get_all_snapshots()
                .map_err(|e| EngineError::rustic(&e))?;
            let repo = repo.to_indexed().map_err(|e| EngineError::rustic(&e))?;
            let mut out = Vec::new();
            for snap in &snaps {
                let info = SnapshotInfo::from_snapshot(snap);
                let why = (|| -> Result<Option<String>, String> {
                    if blobs.contains(snap.tree.to_hex().as_str()) {
                        return Ok(Some("its root directory".into()));
                    }
                    let root = repo
                        .node_from_path(snap.tree, Path::new(""))
                        .map_err(|e| e.to_string())?;
                    let opts = rustic_core::LsOptions::default().recursive(true);
                    for item in repo.ls(&root, &opts).map_err(|e| e.to_string())? {
                        let (path, node) = item.map_err(|e| e.to_string())?;
                        let hit = match node.node_type {
                            NodeType::Dir => node
                                .subtree
                                .is_some_and(|t| blobs.contains(t.to_hex().as_str())),
                            NodeType::File => node
                                .content
                                .iter()
                                .flatten()
                                .any(|b| blobs.contains(b.to_hex().as_str())),
                            _ => false,
                        };
                        if hit {
                            return Ok(Some(path.display().to_string()));
                        }
                    }
                    Ok(None)
                })();
                match why {
                    Ok(None) => {}
                    Ok(Some(why)) => out.push(Affected {
                        snapshot: info,
                        why,
                    }),
                    Err(e) => out.push(Affected {
                        snapshot: info,
                        why: format!("cannot be read: {e}"),
                    }),
                }
            }
            Ok(Damage {
                packs: packs.into_iter().collect(),
                affected: out,
            })
        })
    }
}
