//! Coffer's own restore loop over rustic_core's public API.
//!
//! rustic_core's stock restore keeps ~20 reader threads each holding a whole
//! decompressed pack (≈1.45 GiB RSS for 2 GiB of data) and panics on some I/O
//! errors; its `dump` reads one blob per request, slow from off-site targets.
//! This loop reads the snapshot's tree a level at a time, creates
//! directories and special files, and fills the regular files from spans of
//! packs fetched several at once ([`crate::fetch`]), with bounded memory,
//! writing zero blocks as holes. Everything goes into a staging
//! directory on the destination's mount that is moved into place only when
//! every file is complete (see [`crate::commit`]). Names in the tree are
//! checked first: a foreign repository is untrusted input.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rustic_core::repofile::{Metadata, Node, NodeType};
use rustic_core::{IndexedFull, Repository};

pub(crate) use crate::commit::{Staging, commit};
use crate::fetch::Fetcher;
use crate::fsops::{self, DirMeta};
use crate::paths::NodeNames;
use crate::progress::Counters;
use crate::{EngineError, EngineResult, meta};

/// What to do when the destination already has content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestoreMode {
    /// Refuse a destination that is not empty (the default).
    #[default]
    RefuseNonEmpty,
    /// Replace files the backup has; leave other existing files alone.
    Overwrite,
    /// Make the destination exactly the backup: also delete what it lacks.
    Mirror,
}

mod files;

/// Zero runs of this size (aligned) become holes.
const HOLE_BLOCK: usize = 64 * 1024;

/// Flushes everything written to the filesystem holding `dir` to disk, so a
/// restore is durable before it is moved into place.
pub(crate) fn sync_filesystem(dir: &Path) -> EngineResult<()> {
    let handle =
        File::open(dir).map_err(|e| EngineError::io(format!("opening {}", dir.display()), e))?;
    rustix::fs::syncfs(&handle).map_err(|e| {
        EngineError::io(
            format!("syncing the filesystem of {}", dir.display()),
            io::Error::from(e),
        )
    })
}

/// Whether `dest` is absent or an empty directory.
pub(crate) fn is_empty_or_absent(dest: &Path) -> EngineResult<bool> {
    match fs::read_dir(dest) {
        Ok(mut it) => Ok(it.next().is_none()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(EngineError::io(format!("reading {}", dest.display()), e)),
    }
}

/// Restores the tree below `root` into `staging`. Returns the directories
/// (with their metadata, applied by the caller once everything is in place).
///
/// The tree is read first, a level at a time ([`crate::fetch::walk`]); then
/// the files are written from whole spans of packs ([`files`]) while this
/// thread creates every directory, symlink and special file (creating
/// thousands of directories is slow: ext4's `mkdir` dominated the profile,
/// so the file writers create the parents they need themselves).
pub(crate) fn restore_tree_into<S: IndexedFull + Sync>(
    fetcher: &Fetcher,
    repo: &Repository<S>,
    root: &Node,
    named: Option<&OsStr>,
    staging: &Path,
    progress: &Counters,
) -> EngineResult<Vec<(PathBuf, Node)>> {
    let started = std::time::Instant::now();
    let mut dirs: Vec<(PathBuf, Node)> = Vec::new();
    let mut files: Vec<(PathBuf, Node)> = Vec::new();
    let mut others: Vec<(PathBuf, Node)> = Vec::new();
    let mut total_bytes = 0u64;
    // `named`: the root itself is restored under that name (one file or
    // directory of a snapshot), its entries below it.
    let walked = match named {
        None => crate::fetch::walk::walk(fetcher, repo, root)?,
        Some(name) => {
            let base = PathBuf::from(name);
            let mut all = vec![(base.clone(), root.clone())];
            if root.is_dir() {
                let below = crate::fetch::walk::walk(fetcher, repo, root)?;
                all.extend(below.into_iter().map(|(rel, n)| (base.join(rel), n)));
            }
            all
        }
    };
    // Every name is judged before anything is written.
    let mut names = NodeNames::default();
    for (rel, node) in walked {
        names.check(&rel, &node)?;
        match &node.node_type {
            NodeType::Dir => dirs.push((rel, node)),
            NodeType::File => {
                total_bytes += node.meta.size;
                files.push((rel, node));
            }
            _ => others.push((rel, node)),
        }
    }
    progress.set_totals(Some(total_bytes), Some(files.len() as u64));
    log::debug!(
        "restore: walked the snapshot ({} directories, {} files, {total_bytes} bytes) in {:?}",
        dirs.len(),
        files.len(),
        started.elapsed()
    );
    let stop = AtomicBool::new(false);
    let (written, created) = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let r = files::write_files(fetcher, repo, staging, &files, progress);
            stop.store(true, Ordering::Relaxed);
            r
        });
        let created = (|| -> EngineResult<()> {
            for (rel, node) in dirs.iter().chain(others.iter()) {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                create_entry(&staging.join(rel), node)?;
            }
            Ok(())
        })();
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(EngineError::Panicked("writing the restored files".into())));
        (written, created)
    });
    written?;
    created?;
    log::debug!("restore: files written after {:?}", started.elapsed());
    Ok(dirs)
}

/// Creates the parent directories of `path` if the walker has not yet.
pub(super) fn create_parent(path: &Path) -> EngineResult<()> {
    match path.parent() {
        Some(parent) => fs::create_dir_all(parent)
            .map_err(|e| EngineError::io(format!("creating {}", parent.display()), e)),
        None => Ok(()),
    }
}

/// Creates a directory, symlink or special file (regular files are the
/// workers' job). A directory may already exist: a worker made it for a file.
fn create_entry(path: &Path, node: &Node) -> EngineResult<()> {
    let ctx = |what: &str| format!("{what} {}", path.display());
    if !matches!(node.node_type, NodeType::Dir | NodeType::Socket) {
        create_parent(path)?;
    }
    match &node.node_type {
        NodeType::Dir => {
            return fs::create_dir_all(path).map_err(|e| EngineError::io(ctx("creating"), e));
        }
        NodeType::File | NodeType::Socket => {
            // Files are written by the workers; a socket is recreated by the
            // program that listens on it.
            return Ok(());
        }
        NodeType::Symlink { .. } => symlink(node.node_type.to_link(), path)
            .map_err(|e| EngineError::io(ctx("creating symlink"), e))?,
        NodeType::Fifo => make_special(path, libc::S_IFIFO, 0)?,
        NodeType::Dev { device } => make_special(path, libc::S_IFBLK, *device)?,
        NodeType::Chardev { device } => make_special(path, libc::S_IFCHR, *device)?,
    }
    meta::apply(path, &node.node_type, &node.meta)
}

pub(crate) fn make_special(path: &Path, kind: libc::mode_t, device: u64) -> EngineResult<()> {
    use std::os::unix::ffi::OsStrExt;
    if path.as_os_str().as_bytes().contains(&0) {
        return Err(EngineError::InvalidInput(format!(
            "NUL in path {}",
            path.display()
        )));
    }
    use rustix::fs::{CWD, FileType, Mode, mknodat};
    mknodat(
        CWD,
        path,
        FileType::from_raw_mode(kind),
        Mode::from_raw_mode(0o600),
        device,
    )
    .map_err(|e| {
        EngineError::io(
            format!("creating special file {}", path.display()),
            io::Error::from(e),
        )
    })
}

/// Applies directory metadata deepest first, so setting a child's times does
/// not disturb its parent's afterwards. Each directory is opened without
/// following a symbolic link (see [`apply_dir_node`]).
pub(crate) fn apply_dir_metadata(base: &Path, dirs: &[(PathBuf, Node)]) -> EngineResult<()> {
    let mut order: Vec<&(PathBuf, Node)> = dirs.iter().collect();
    order.sort_by_key(|(rel, _)| std::cmp::Reverse(rel.components().count()));
    for (rel, node) in order {
        apply_dir_node(base, rel, &node.meta)?;
    }
    Ok(())
}

/// Applies a directory node's metadata (owner as root, mode, extended
/// attributes, time) to `rel` below `base` through a descriptor opened with
/// `O_NOFOLLOW` component by component, so a symbolic link in the
/// destination cannot redirect it elsewhere (`rel` empty: `base` itself).
pub(crate) fn apply_dir_node(base: &Path, rel: &Path, meta: &Metadata) -> EngineResult<()> {
    let xattrs: Vec<(String, Vec<u8>)> = meta
        .extended_attributes
        .iter()
        .map(|x| (x.name.clone(), x.value.clone().unwrap_or_default()))
        .collect();
    let owner = match (meta.uid, meta.gid) {
        (Some(uid), Some(gid)) if meta::is_root() => Some((uid, gid)),
        _ => None,
    };
    let dir_meta = DirMeta {
        owner,
        mode: meta.mode.map(meta::unix_mode_from_go),
        xattrs: &xattrs,
        mtime: meta.mtime.map(|t| meta::split_time(&t)),
    };
    fsops::apply_dir_meta(base, rel, &dir_meta).map_err(|e| {
        EngineError::io(
            format!("restoring the metadata of {}", base.join(rel).display()),
            e,
        )
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;

    /// `link -> outside` and `hop -> outside` (with `outside/sub`): metadata
    /// for the directories `link` and `hop/sub` must not reach `outside`.
    #[test]
    fn directory_metadata_never_follows_a_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let (base, outside) = (tmp.path().join("base"), tmp.path().join("outside"));
        fs::create_dir_all(&base).unwrap();
        fs::create_dir_all(outside.join("sub")).unwrap();
        for d in [&outside, &outside.join("sub")] {
            fs::set_permissions(d, fs::Permissions::from_mode(0o700)).unwrap();
        }
        symlink(&outside, base.join("link")).unwrap();
        symlink(&outside, base.join("hop")).unwrap();
        let meta = Metadata {
            mode: Some(0o777 | (1 << 31)),
            mtime: Some(rustic_core::jiff::Timestamp::new(1000, 0).unwrap()),
            ..Metadata::default()
        };
        let node = Node::new_node(std::ffi::OsStr::new("x"), NodeType::Dir, meta);
        for rel in ["link", "hop/sub"] {
            let e = apply_dir_metadata(&base, &[(PathBuf::from(rel), node.clone())]).unwrap_err();
            assert!(e.to_string().contains("not a directory"), "{rel}: {e}");
        }
        for d in [&outside, &outside.join("sub")] {
            let m = fs::metadata(d).unwrap();
            assert_eq!(m.mode() & 0o7777, 0o700, "{}", d.display());
            assert_ne!(m.mtime(), 1000, "{}", d.display());
        }
        // A real directory gets it.
        fs::create_dir(base.join("real")).unwrap();
        apply_dir_metadata(&base, &[(PathBuf::from("real"), node)]).unwrap();
        assert_eq!(
            fs::metadata(base.join("real")).unwrap().mode() & 0o7777,
            0o777
        );
    }
}
