//! Coffer's own restore loop over rustic_core's public API.
//!
//! rustic_core's stock restore keeps ~20 reader threads each holding a whole
//! decompressed pack (≈1.45 GiB RSS for 2 GiB of data) and panics on some I/O
//! errors. This loop walks the snapshot tree, creates directories and special
//! files, and streams each regular file with `dump` from a small pool of
//! workers, writing zero blocks as holes. Everything goes into a staging
//! directory beside the destination that is moved into place only when every
//! file is complete.

use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustic_core::repofile::{Node, NodeType};
use rustic_core::{IndexedFull, LsOptions, Repository};

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

/// Worker threads writing files. Two saturate local disks on this class of
/// machine while keeping memory near one blob per worker.
const RESTORE_WORKERS: usize = 2;

/// Zero runs of this size (aligned) become holes.
const HOLE_BLOCK: usize = 64 * 1024;

/// Writes zero blocks as holes (seeks) and sets the final length, so sparse
/// files come back sparse.
struct SparseWriter {
    file: File,
    pos: u64,
}

impl Write for SparseWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for block in buf.chunks(HOLE_BLOCK) {
            if block.len() == HOLE_BLOCK && block.iter().all(|&b| b == 0) {
                self.file.seek(SeekFrom::Current(HOLE_BLOCK as i64))?;
            } else {
                self.file.write_all(block)?;
            }
            self.pos += block.len() as u64;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl SparseWriter {
    fn finish(self) -> io::Result<()> {
        // A trailing hole is only a seek: make the length real. Durability
        // comes from one `syncfs` of the staging tree before it is moved into
        // place ([`sync_filesystem`]), far cheaper than an fsync per file.
        self.file.set_len(self.pos)
    }
}

/// Flushes everything written to the filesystem holding `dir` to disk, so a
/// restore is durable before it is moved into place.
pub(crate) fn sync_filesystem(dir: &Path) -> EngineResult<()> {
    use std::os::fd::AsRawFd;
    let handle =
        File::open(dir).map_err(|e| EngineError::io(format!("opening {}", dir.display()), e))?;
    // SAFETY: syncfs takes any open descriptor of the filesystem; `handle` stays open for the call.
    if unsafe { libc::syncfs(handle.as_raw_fd()) } != 0 {
        return Err(EngineError::io(
            format!("syncing the filesystem of {}", dir.display()),
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// A sibling staging directory, removed on drop unless it was moved into place.
pub(crate) struct Staging {
    pub(crate) path: PathBuf,
}

impl Staging {
    pub(crate) fn beside(dest: &Path) -> EngineResult<Self> {
        let parent = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs::create_dir_all(parent)
            .map_err(|e| EngineError::io(format!("creating {}", parent.display()), e))?;
        let name = format!(
            ".coffer-restore-{}-{:08x}",
            dest.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            rand::random::<u32>()
        );
        let path = parent.join(name);
        fs::create_dir(&path)
            .map_err(|e| EngineError::io(format!("creating staging {}", path.display()), e))?;
        Ok(Self { path })
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.path.exists() {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
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
/// The walk only collects entries; creating thousands of directories is slow
/// (ext4's `mkdir` dominated the profile), so the file workers start at once,
/// largest files first, creating their own parent directories, while this
/// thread creates every directory, symlink and special file in parallel.
pub(crate) fn restore_tree_into<S: IndexedFull + Sync>(
    repo: &Repository<S>,
    root: &Node,
    staging: &Path,
    progress: &Counters,
) -> EngineResult<Vec<(PathBuf, Node)>> {
    let started = std::time::Instant::now();
    let opts = LsOptions::default().recursive(true);
    let mut dirs: Vec<(PathBuf, Node)> = Vec::new();
    let mut files: Vec<(PathBuf, Node)> = Vec::new();
    let mut others: Vec<(PathBuf, Node)> = Vec::new();
    let mut total_bytes = 0u64;
    for item in repo.ls(root, &opts).map_err(|e| EngineError::rustic(&e))? {
        let (rel, node) = item.map_err(|e| EngineError::rustic(&e))?;
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

    // Large files first: the pool then ends with many small files instead of
    // one worker finishing a large file alone.
    files.sort_by_key(|f| std::cmp::Reverse(f.1.meta.size));
    let queue = Mutex::new(files.iter());
    let first_error: Mutex<Option<EngineError>> = Mutex::new(None);
    let record = |e: EngineError| {
        if let Ok(mut slot) = first_error.lock() {
            slot.get_or_insert(e);
        }
    };
    let failed = || first_error.lock().map(|e| e.is_some()).unwrap_or(true);
    std::thread::scope(|s| {
        for _ in 0..RESTORE_WORKERS {
            s.spawn(|| {
                while !failed() {
                    let next = queue.lock().ok().and_then(|mut q| q.next());
                    let Some((rel, node)) = next else { return };
                    let path = staging.join(rel);
                    if let Err(e) = create_parent(&path)
                        .and_then(|()| restore_file(repo, node, &path, progress))
                    {
                        record(e);
                    }
                }
            });
        }
        for (rel, node) in dirs.iter().chain(others.iter()) {
            if failed() {
                break;
            }
            if let Err(e) = create_entry(&staging.join(rel), node) {
                record(e);
            }
        }
    });
    if let Some(e) = first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    log::debug!("restore: files written after {:?}", started.elapsed());
    Ok(dirs)
}

/// Creates the parent directories of `path` if the walker has not yet.
fn create_parent(path: &Path) -> EngineResult<()> {
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

fn restore_file<S: IndexedFull>(
    repo: &Repository<S>,
    node: &Node,
    path: &Path,
    progress: &Counters,
) -> EngineResult<()> {
    let file = File::create(path)
        .map_err(|e| EngineError::io(format!("creating {}", path.display()), e))?;
    let mut w = SparseWriter { file, pos: 0 };
    repo.dump(node, &mut w).map_err(|e| {
        EngineError::Engine(format!("restoring {}: {}", path.display(), e.display_log()))
    })?;
    let written = w.pos;
    w.finish()
        .map_err(|e| EngineError::io(format!("writing {}", path.display()), e))?;
    if written != node.meta.size {
        return Err(EngineError::Engine(format!(
            "restoring {}: wrote {written} bytes, the snapshot records {}",
            path.display(),
            node.meta.size
        )));
    }
    meta::apply(path, &node.node_type, &node.meta)?;
    progress.add_bytes(written);
    progress.add_file();
    Ok(())
}

pub(crate) fn make_special(path: &Path, kind: libc::mode_t, device: u64) -> EngineResult<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| EngineError::InvalidInput(format!("NUL in path {}", path.display())))?;
    // SAFETY: `c` is a valid NUL-terminated path; mknod has no other preconditions.
    let rc = unsafe { libc::mknod(c.as_ptr(), kind | 0o600, device as libc::dev_t) };
    if rc != 0 {
        return Err(EngineError::io(
            format!("creating special file {}", path.display()),
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Applies directory metadata deepest first, so setting a child's times does
/// not disturb its parent's afterwards.
pub(crate) fn apply_dir_metadata(base: &Path, dirs: &[(PathBuf, Node)]) -> EngineResult<()> {
    let mut order: Vec<&(PathBuf, Node)> = dirs.iter().collect();
    order.sort_by_key(|(rel, _)| std::cmp::Reverse(rel.components().count()));
    for (rel, node) in order {
        meta::apply(&base.join(rel), &node.node_type, &node.meta)?;
    }
    Ok(())
}

/// Moves a completed staging tree into `dest` according to `mode`.
pub(crate) fn commit(staging: &Path, dest: &Path, mode: RestoreMode) -> EngineResult<()> {
    let io = |what: String| move |e| EngineError::io(what, e);
    if is_empty_or_absent(dest)? {
        if dest.exists() {
            fs::remove_dir(dest).map_err(io(format!("replacing {}", dest.display())))?;
        }
        return fs::rename(staging, dest).map_err(io(format!(
            "moving {} into place at {}",
            staging.display(),
            dest.display()
        )));
    }
    match mode {
        RestoreMode::RefuseNonEmpty => Err(EngineError::DestinationNotEmpty(dest.to_path_buf())),
        RestoreMode::Overwrite => merge(staging, dest, false),
        RestoreMode::Mirror => merge(staging, dest, true),
    }
}

/// Moves every entry of `from` into `into`, replacing what is there; with
/// `mirror`, also deletes entries of `into` that `from` lacks.
fn merge(from: &Path, into: &Path, mirror: bool) -> EngineResult<()> {
    let io = |what: String| move |e| EngineError::io(what, e);
    if mirror {
        for entry in fs::read_dir(into).map_err(io(format!("reading {}", into.display())))? {
            let entry = entry.map_err(io(format!("reading {}", into.display())))?;
            if fs::symlink_metadata(from.join(entry.file_name())).is_err() {
                remove_any(&entry.path())?;
            }
        }
    }
    for entry in fs::read_dir(from).map_err(io(format!("reading {}", from.display())))? {
        let entry = entry.map_err(io(format!("reading {}", from.display())))?;
        let src = entry.path();
        let dst = into.join(entry.file_name());
        let src_is_dir = entry
            .file_type()
            .map_err(io(format!("reading {}", src.display())))?
            .is_dir();
        let dst_meta = fs::symlink_metadata(&dst).ok();
        match dst_meta {
            Some(m) if m.is_dir() && src_is_dir => merge(&src, &dst, mirror)?,
            Some(_) => {
                remove_any(&dst)?;
                fs::rename(&src, &dst).map_err(io(format!("moving into {}", dst.display())))?;
            }
            None => {
                fs::rename(&src, &dst).map_err(io(format!("moving into {}", dst.display())))?;
            }
        }
    }
    Ok(())
}

fn remove_any(path: &Path) -> EngineResult<()> {
    let is_dir = fs::symlink_metadata(path)
        .map(|m| m.is_dir())
        .unwrap_or(false);
    let res = if is_dir {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    res.map_err(|e| EngineError::io(format!("removing {}", path.display()), e))
}
