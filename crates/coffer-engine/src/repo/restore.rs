//! Restores from a snapshot or from an untrusted tree tar into a staging area, committed atomically.

use std::io::{Read, Write};
use std::path::Path;

use super::{ContentKind, Repo, SnapshotInfo, guarded};
use crate::fetch::ordered::write_file;
use crate::lock::LockMode;
use crate::progress::{Counters, ProgressFn};
use crate::restore::{RestoreMode, Staging};
use crate::tree_tar::{self, TarOrigin};
use crate::{EngineError, EngineResult};

/// Restores a tree from a tar — a `files` component's native or exported
/// form, from outside the repository — into `dest` the way
/// [`Repo::restore_tree`] does: unpacked into staging on `dest`'s mount and
/// moved into place only when complete, so on any failure `dest` is as it
/// was.
///
/// The archive is untrusted ([`TarOrigin::Untrusted`]). Refused, with
/// nothing written outside the staging directory: unsafe paths (absolute,
/// `..`), entries below a symbolic link or at the path of an earlier entry
/// (a symlink's above all; a directory listed twice is allowed), hard links,
/// sparse files, device nodes, and extension headers (PAX, GNU long names)
/// declaring more than 1 MiB each. Restored as content owned by the user
/// Coffer runs as: owners in the archive are ignored, set-uid and set-gid
/// bits are cleared (permissions and the sticky bit are kept), and only
/// `user.*` extended attributes are set (`security.*` — file capabilities,
/// SELinux labels —, `trusted.*` and `system.*` — ACLs — are dropped).
/// Directory metadata is applied through descriptors opened without
/// following symbolic links.
pub fn restore_tree_from_tar(
    tar: &mut dyn Read,
    dest: &Path,
    mode: RestoreMode,
    progress: Option<ProgressFn>,
) -> EngineResult<()> {
    if mode == RestoreMode::RefuseNonEmpty && !crate::restore::is_empty_or_absent(dest)? {
        return Err(EngineError::DestinationNotEmpty(dest.to_path_buf()));
    }
    let counters = Counters::new(progress);
    let staging = Staging::for_dest(dest)?;
    let dirs = tree_tar::unpack_tree(tar, &staging.path, &counters, TarOrigin::Untrusted)
        .map_err(|e| EngineError::InvalidInput(format!("the tree's archive: {e}")))?;
    commit_unpacked(&staging, dest, mode, &dirs)
}

/// Moves an unpacked tree from `staging` into `dest`, then applies its
/// directories' metadata; durable when it returns.
fn commit_unpacked(
    staging: &Staging,
    dest: &Path,
    mode: RestoreMode,
    dirs: &[tree_tar::UnpackedDir],
) -> EngineResult<()> {
    crate::restore::sync_filesystem(&staging.path)?;
    crate::restore::commit(staging, mode)?;
    tree_tar::apply_unpacked_dirs(dest, dirs).map_err(|e| {
        EngineError::io(
            format!("restoring directory metadata in {}", dest.display()),
            e,
        )
    })?;
    // The renames and directory metadata, too.
    crate::restore::sync_filesystem(dest)
}

impl Repo {
    /// Restores a tree snapshot into `dest`. With [`RestoreMode::RefuseNonEmpty`]
    /// a non-empty `dest` is refused before anything is read. The data is
    /// written into a staging directory on `dest`'s own mount (beside it, or
    /// inside it when `dest` is a mount point) and moved into place only when
    /// complete; on any failure `dest` is as it was. Into an existing
    /// destination, each entry is swapped atomically with its old version,
    /// which is deleted only once every entry is in place (per entry, not the
    /// whole tree: see the `commit` module). Names in the snapshot's tree
    /// are checked first (a foreign repository is untrusted): an absolute
    /// name, `..`, `.`, an empty name, `/` or NUL, or a path twice, is refused
    /// before anything is written.
    pub fn restore_tree(
        &self,
        snapshot: &str,
        dest: &Path,
        mode: RestoreMode,
        progress: Option<ProgressFn>,
    ) -> EngineResult<SnapshotInfo> {
        self.restore_tree_at(snapshot, None, dest, mode, progress)
    }

    /// Restores one file or directory of a tree snapshot — `part`, plain
    /// names relative to the snapshot's root — as `dest/<its name>`, with
    /// the same staging, commit and checks as [`Repo::restore_tree`]: with
    /// [`RestoreMode::Overwrite`] only that entry of `dest` is replaced,
    /// atomically; `dest`'s own metadata is left alone. Refused for a sealed
    /// snapshot (restore it whole, with its identity) and for
    /// [`RestoreMode::Mirror`] (it would remove `dest`'s other entries).
    pub fn restore_part(
        &self,
        snapshot: &str,
        part: &Path,
        dest: &Path,
        mode: RestoreMode,
        progress: Option<ProgressFn>,
    ) -> EngineResult<SnapshotInfo> {
        if mode == RestoreMode::Mirror {
            return Err(EngineError::InvalidInput(
                "mirror would remove everything else in the destination: restore a part with \
                 overwrite, or into an empty place"
                    .into(),
            ));
        }
        self.restore_tree_at(snapshot, Some(part), dest, mode, progress)
    }

    fn restore_tree_at(
        &self,
        snapshot: &str,
        part: Option<&Path>,
        dest: &Path,
        mode: RestoreMode,
        progress: Option<ProgressFn>,
    ) -> EngineResult<SnapshotInfo> {
        if mode == RestoreMode::RefuseNonEmpty && !crate::restore::is_empty_or_absent(dest)? {
            return Err(EngineError::DestinationNotEmpty(dest.to_path_buf()));
        }
        let _lock = self.lock(LockMode::Shared, "restore")?;
        let counters = Counters::new(progress);
        guarded(|| {
            let repo = self.handle(None, None)?;
            let snap = self.find_snapshot(&repo, snapshot)?;
            let info = SnapshotInfo::from_snapshot(&snap);
            if info.kind == Some(ContentKind::Stream) {
                return Err(EngineError::InvalidInput(format!(
                    "snapshot {} holds a stream, not a directory tree: restore it to a file",
                    info.id
                )));
            }
            let [root_path] = info.paths.as_slice() else {
                return Err(EngineError::InvalidInput(format!(
                    "snapshot {} has {} paths; Coffer restores snapshots of one tree",
                    info.id,
                    info.paths.len()
                )));
            };
            let repo = repo.to_indexed().map_err(|e| EngineError::rustic(&e))?;
            let staging = Staging::for_dest(dest)?;
            if let Some(part) = part {
                let name = part.file_name().ok_or_else(|| {
                    EngineError::InvalidInput(format!(
                        "{}: name a file or directory below the snapshot's root",
                        part.display()
                    ))
                })?;
                let node = super::browse::find_node(&repo, &snap, &info, part)?;
                let dirs = crate::restore::restore_tree_into(
                    &self.fetcher(),
                    &repo,
                    &node,
                    Some(name),
                    &staging.path,
                    &counters,
                )?;
                crate::restore::sync_filesystem(&staging.path)?;
                crate::restore::commit(&staging, mode)?;
                crate::restore::apply_dir_metadata(dest, &dirs)?;
                crate::restore::sync_filesystem(dest)?;
                return Ok(info);
            }
            let root = repo
                .node_from_snapshot_and_path(&snap, root_path)
                .map_err(|e| EngineError::rustic(&e))?;
            if info.sealed {
                let identity = self.identity_for(&info)?;
                let dirs = self.read_sealed(&repo, &root, identity, true, |plain| {
                    tree_tar::unpack_tree(plain, &staging.path, &counters, TarOrigin::Repository)
                })?;
                commit_unpacked(&staging, dest, mode, &dirs)?;
                return Ok(info);
            }
            let dirs = crate::restore::restore_tree_into(
                &self.fetcher(),
                &repo,
                &root,
                None,
                &staging.path,
                &counters,
            )?;
            crate::restore::sync_filesystem(&staging.path)?;
            crate::restore::commit(&staging, mode)?;
            crate::restore::apply_dir_metadata(dest, &dirs)?;
            if root.node_type == rustic_core::repofile::NodeType::Dir {
                crate::restore::apply_dir_node(dest, Path::new(""), &root.meta)?;
            } else {
                crate::meta::apply(dest, &root.node_type, &root.meta)?;
            }
            // The renames and directory metadata, too.
            crate::restore::sync_filesystem(dest)?;
            Ok(info)
        })
    }

    /// Writes a stream snapshot's bytes to `out`.
    pub fn restore_stream(
        &self,
        snapshot: &str,
        out: &mut dyn Write,
    ) -> EngineResult<SnapshotInfo> {
        let _lock = self.lock(LockMode::Shared, "restore")?;
        guarded(|| {
            let repo = self.handle(None, None)?;
            let snap = self.find_snapshot(&repo, snapshot)?;
            let info = SnapshotInfo::from_snapshot(&snap);
            let [path] = info.paths.as_slice() else {
                return Err(EngineError::InvalidInput(format!(
                    "snapshot {} is not a single stream",
                    info.id
                )));
            };
            if info.kind == Some(ContentKind::Tree) {
                return Err(EngineError::InvalidInput(format!(
                    "snapshot {} holds a directory tree, not a stream: restore it to a directory",
                    info.id
                )));
            }
            let repo = repo.to_indexed().map_err(|e| EngineError::rustic(&e))?;
            let node = repo
                .node_from_snapshot_and_path(&snap, path)
                .map_err(|e| EngineError::rustic(&e))?;
            if info.sealed {
                let identity = self.identity_for(&info)?;
                self.read_sealed(&repo, &node, identity, true, |plain| {
                    std::io::copy(plain, out).map(|_| ())
                })?;
                return Ok(info);
            }
            write_file(&self.fetcher(), &repo, &node, out)?;
            Ok(info)
        })
    }
}
