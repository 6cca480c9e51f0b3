//! Paths from input Coffer does not trust: the names in a repository's trees
//! (a foreign or attached repository is anyone's) and the entries of an
//! uploaded tar.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustic_core::repofile::Node;

use crate::{EngineError, EngineResult};

/// 128-bit keyed hashes of paths: a set of them costs 16 bytes a path
/// instead of the path, for trees of millions of entries. The keys are
/// random per set, so nobody can aim for a collision, and a collision can
/// only make a check refuse more (a path seen twice), never less.
pub(crate) struct PathKeys([RandomState; 2]);

impl Default for PathKeys {
    fn default() -> Self {
        Self([RandomState::new(), RandomState::new()])
    }
}

impl PathKeys {
    pub(crate) fn key(&self, p: &Path) -> (u64, u64) {
        let bytes = p.as_os_str().as_bytes();
        (self.0[0].hash_one(bytes), self.0[1].hash_one(bytes))
    }
}

/// Checks the nodes a repository tree yields, before anything is written.
/// rustic_core's `ls` joins each node's name onto its parent's path, so a
/// name that is absolute (`/etc` replaces the path), `..`, `.`, empty, or
/// holds `/` or NUL would land somewhere else than below the restore root;
/// and two nodes of one name would overwrite each other. restic's restorer
/// refuses both, and so does Coffer.
#[derive(Default)]
pub(crate) struct NodeNames {
    keys: PathKeys,
    seen: HashSet<(u64, u64)>,
}

impl NodeNames {
    /// `rel` is the path `ls` built for `node`.
    pub(crate) fn check(&mut self, rel: &Path, node: &Node) -> EngineResult<()> {
        let name = node.name();
        let b = name.as_bytes();
        if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') || b.contains(&0) {
            return Err(EngineError::Engine(format!(
                "the snapshot's tree holds an entry named {name:?}, which is not a plain file \
                 name and would land outside its directory (a damaged or hostile repository)"
            )));
        }
        if !self.seen.insert(self.keys.key(rel)) {
            return Err(EngineError::Engine(format!(
                "the snapshot's tree holds {} twice (a damaged or hostile repository)",
                rel.display()
            )));
        }
        Ok(())
    }
}
