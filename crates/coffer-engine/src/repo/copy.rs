//! Copies: the same snapshots in a second repository (the 3-2-1 rule).
//! rustic_core's copy reads each blob the destination lacks (its hash
//! checked as it is decrypted), re-encrypts it with the destination's key,
//! writes packs and their index, then the snapshot files — so a crash
//! leaves no snapshot without its data. The copy is then verified from the
//! destination's own listing.

use super::{Repo, SnapshotInfo, guarded};
use crate::lock::{IN_PROCESS_PATIENCE, LockMode};
use crate::{EngineError, EngineResult};

impl Repo {
    /// Copies the snapshots `ids` (full ids) into `dest`, skipping those it
    /// already holds, and returns each one's copy as `dest` lists it, in the
    /// order of `ids`. A snapshot whose copy `dest` does not then list with
    /// the same tree, time, tags and paths is an error.
    pub fn copy_to(&self, dest: &Repo, ids: &[String]) -> EngineResult<Vec<SnapshotInfo>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let _src_lock = self.lock_patiently(LockMode::Shared, "copy", IN_PROCESS_PATIENCE)?;
        let _dest_lock = dest.lock_patiently(LockMode::Shared, "copy", IN_PROCESS_PATIENCE)?;
        guarded(|| {
            let src = self.handle(None, None)?;
            let snaps = src
                .get_snapshots(ids)
                .map_err(|e| EngineError::rustic(&e))?;
            let src = src.to_indexed().map_err(|e| EngineError::rustic(&e))?;
            let target = dest
                .handle(None, None)?
                .to_indexed_ids()
                .map_err(|e| EngineError::rustic(&e))?;
            let todo: Vec<_> = target
                .relevant_copy_snapshots(|_| true, &snaps)
                .map_err(|e| EngineError::rustic(&e))?
                .into_iter()
                .filter(|c| c.relevant)
                .map(|c| c.sn)
                .collect();
            if !todo.is_empty() {
                src.copy(&target, todo.iter())
                    .map_err(|e| EngineError::rustic(&e))?;
            }
            let listed = dest
                .handle(None, None)?
                .get_all_snapshots()
                .map_err(|e| EngineError::rustic(&e))?;
            snaps
                .iter()
                .map(|s| {
                    listed
                        .iter()
                        .find(|d| {
                            d.tree == s.tree
                                && d.time == s.time
                                && d.tags == s.tags
                                && d.paths == s.paths
                        })
                        .map(SnapshotInfo::from_snapshot)
                        .ok_or_else(|| {
                            EngineError::Engine(format!(
                                "the copy of snapshot {} is not in the destination after copying",
                                s.id
                            ))
                        })
                })
                .collect()
        })
    }
}
