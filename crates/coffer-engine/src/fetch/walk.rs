//! Reading a snapshot's tree level by level, every directory of a level at
//! once. rustic_core's `ls` loads one tree after another: a round trip per
//! directory, minutes for a deep tree behind a slow link.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use rustic_core::repofile::{Node, Tree};
use rustic_core::{IndexedFull, Repository, TreeId};

use super::{Fetcher, locate, plan};
use crate::{EngineError, EngineResult};

/// Every entry below the directory `root`, with its path relative to it,
/// sorted by path (a directory before what it holds), as `ls` lists them.
/// Names are not judged here: callers check them ([`crate::paths::NodeNames`]).
pub(crate) fn walk<S: IndexedFull>(
    fetcher: &Fetcher,
    repo: &Repository<S>,
    root: &Node,
) -> EngineResult<Vec<(PathBuf, Node)>> {
    let mut found: Vec<(PathBuf, Node)> = Vec::new();
    let mut level: Vec<(PathBuf, TreeId)> = root
        .subtree
        .map(|id| (PathBuf::new(), id))
        .into_iter()
        .collect();
    while !level.is_empty() {
        // A tree stored once may appear at several paths (identical
        // directories): read once, listed at each.
        let mut wanted: HashMap<TreeId, Vec<PathBuf>> = HashMap::new();
        for (path, id) in level.drain(..) {
            wanted.entry(id).or_default().push(path);
        }
        let blobs = wanted
            .into_iter()
            .map(|(id, paths)| locate(repo, &id).map(|b| (b, paths)))
            .collect::<EngineResult<Vec<_>>>()?;
        let next = Mutex::new((Vec::new(), Vec::new()));
        fetcher.for_each(&plan::by_pack(blobs), |span, trees| {
            let mut entries = Vec::new();
            let mut subtrees = Vec::new();
            for ((blob, paths), json) in span.blobs.iter().zip(trees) {
                let tree: Tree = serde_json::from_slice(&json).map_err(|e| {
                    EngineError::Engine(format!(
                        "tree {} does not parse: {e} (a damaged repository)",
                        blob.id.to_hex().as_str()
                    ))
                })?;
                for parent in paths {
                    for node in &tree.nodes {
                        let path = parent.join(node.name());
                        if node.is_dir()
                            && let Some(sub) = node.subtree
                        {
                            subtrees.push((path.clone(), sub));
                        }
                        entries.push((path, node.clone()));
                    }
                }
            }
            let mut next = next
                .lock()
                .map_err(|_| EngineError::Panicked("walking the tree".into()))?;
            next.0.append(&mut entries);
            next.1.append(&mut subtrees);
            Ok(())
        })?;
        let (mut entries, subtrees) = next
            .into_inner()
            .map_err(|_| EngineError::Panicked("walking the tree".into()))?;
        found.append(&mut entries);
        level = subtrees;
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}
