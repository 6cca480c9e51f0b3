//! Portable forms: a snapshot as one file (a stream, a tree tar, a sealed age file).

use std::io::Write;
use std::path::Path;
use std::process::Command;

use rustic_core::repofile::SnapshotFile;
use rustic_core::{Excludes, Repository};
use serde::Serialize;

use super::{ContentKind, Repo, SnapshotInfo, canonical_dir, exclude_globs, guarded};
use crate::cancel::CancelToken;
use crate::child::ChildReader;
use crate::fetch::Fetcher;
use crate::fetch::ordered::write_file;
use crate::lock::LockMode;
use crate::tree_tar::{self};
use crate::{EngineError, EngineResult};

/// A snapshot as one file: see [`Repo::portable_form`].
#[derive(Debug, Clone, Serialize)]
pub struct PortableForm {
    /// `db.pgdump`, `keys.tar.age`, `uploads.tar`.
    pub file_name: String,
    /// Its exact length in bytes.
    pub len: u64,
    /// What it restores as.
    pub content: ContentKind,
    /// An age file (a sealed snapshot, carried as stored).
    pub sealed: bool,
}

/// The node a portable form starts from, and whether it is a single file
/// (a stream or a sealed tree) rather than a tree to archive.
pub(super) fn portable_root<S: rustic_core::IndexedFull>(
    repo: &Repository<S>,
    snap: &SnapshotFile,
    info: &SnapshotInfo,
) -> EngineResult<(rustic_core::repofile::Node, bool)> {
    let [path] = info.paths.as_slice() else {
        return Err(EngineError::InvalidInput(format!(
            "snapshot {} has {} paths; Coffer exports snapshots of one tree or stream",
            info.id,
            info.paths.len()
        )));
    };
    let node = repo
        .node_from_snapshot_and_path(snap, path)
        .map_err(|e| EngineError::rustic(&e))?;
    let single = info.sealed || info.kind != Some(ContentKind::Tree);
    if single && node.node_type != rustic_core::repofile::NodeType::File {
        return Err(EngineError::InvalidInput(format!(
            "snapshot {} should hold one file at {path}",
            info.id
        )));
    }
    Ok((node, single))
}

/// Writes a GNU tar of the directory `root` (with `excludes`, walked as a
/// backup walks it) to `out` — a `files` component's native form, laid out
/// like the trees in exports. Returns the bytes written.
pub fn write_dir_tar(
    root: &Path,
    excludes: &[String],
    out: &mut dyn Write,
    cancel: Option<&CancelToken>,
) -> EngineResult<u64> {
    let root = canonical_dir(root, "archive")?;
    let excludes = Excludes::default().globs(exclude_globs(excludes)?);
    let mut counted = CountingWriter {
        inner: out,
        written: 0,
    };
    tree_tar::write_plain_tree(&mut counted, &root, &excludes, cancel)
        .map_err(|e| EngineError::io(format!("archiving {}", root.display()), e))?;
    Ok(counted.written)
}

/// Runs `command` and copies its standard output to `out`; fails — after
/// the bytes it wrote — when it exits non-zero, with its standard error.
/// A dump command's native form. Returns the bytes written.
pub fn write_command_output(command: &mut Command, out: &mut dyn Write) -> EngineResult<u64> {
    let mut reader = ChildReader::spawn(command)?;
    let program = reader.program().to_owned();
    std::io::copy(&mut reader, out).map_err(|e| EngineError::io(program, e))
}

/// Writes the tree below `root` as a GNU tar (the sealed-tree layout, see
/// `tree_tar::append_node`) and returns its length. Without `content`, file
/// data is replaced by zeros of the same length: the exact size, from
/// metadata alone.
fn tree_tar<S: rustic_core::IndexedFull + Sync>(
    fetcher: &Fetcher,
    repo: &Repository<S>,
    root: &rustic_core::repofile::Node,
    out: &mut dyn Write,
    content: bool,
) -> EngineResult<u64> {
    use rustic_core::repofile::NodeType;
    let io_err = |e: std::io::Error| EngineError::io("writing the tree archive", e);
    let mut tar = tar::Builder::new(CountingWriter {
        inner: out,
        written: 0,
    });
    let dot = std::path::Path::new(".");
    tree_tar::append_node(&mut tar, dot, root, None, dot).map_err(io_err)?;
    // A foreign repository's names are judged as restores judge them; the
    // length pass ([`Repo::portable_form`]) refuses before any export is
    // written.
    let mut names = crate::paths::NodeNames::default();
    for (rel, node) in crate::fetch::walk::walk(fetcher, repo, root)? {
        names.check(&rel, &node)?;
        if node.node_type != NodeType::File {
            tree_tar::append_node(&mut tar, &rel, &node, None, &rel).map_err(io_err)?;
        } else if !content {
            let zeros = Box::new(std::io::repeat(0));
            tree_tar::append_node(&mut tar, &rel, &node, Some(zeros), &rel).map_err(io_err)?;
        } else {
            // The fetcher writes file content out; tar reads it in: a pipe.
            let (mut pipe, mut writer) =
                std::io::pipe().map_err(|e| EngineError::io("creating a pipe", e))?;
            std::thread::scope(|scope| {
                let node = &node;
                let dumper = scope.spawn(move || {
                    let r = write_file(fetcher, repo, node, &mut writer);
                    drop(writer);
                    r
                });
                let appended =
                    tree_tar::append_node(&mut tar, &rel, node, Some(Box::new(&mut pipe)), &rel);
                drop(pipe);
                let dumped = dumper
                    .join()
                    .map_err(|_| EngineError::Panicked(format!("reading {}", rel.display())))?;
                dumped
                    .map_err(|e| EngineError::Engine(format!("reading {}: {e}", rel.display())))?;
                appended.map_err(io_err)
            })?;
        }
    }
    let counted = tar.into_inner().map_err(io_err)?;
    Ok(counted.written)
}

/// Counts what passes through.
struct CountingWriter<'a> {
    inner: &'a mut dyn Write,
    written: u64,
}

impl Write for CountingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl Repo {
    /// How `snapshot` travels as one file in an export: a stream as its bytes, a sealed snapshot as its age file
    /// (never decrypted), a tree as a GNU tar ([`Repo::write_portable`]).
    /// The length is exact, from metadata alone.
    pub fn portable_form(&self, snapshot: &str) -> EngineResult<PortableForm> {
        let _lock = self.lock(LockMode::Shared, "export")?;
        guarded(|| {
            let repo = self.handle(None, None)?;
            let snap = self.find_snapshot(&repo, snapshot)?;
            let info = SnapshotInfo::from_snapshot(&snap);
            let repo = repo.to_indexed().map_err(|e| EngineError::rustic(&e))?;
            let (node, single) = portable_root(&repo, &snap, &info)?;
            let component = info
                .backup
                .as_ref()
                .map_or_else(|| "tree".to_owned(), |b| b.component.to_string());
            let (file_name, len) = if single {
                // A stream's node records no size (it is unknown when the
                // node is written); the snapshot summary has it.
                let len = if node.meta.size > 0 {
                    node.meta.size
                } else if snap.summary.is_some() {
                    info.bytes
                } else {
                    write_file(&self.fetcher(), &repo, &node, &mut std::io::sink())?
                };
                (info.paths[0].clone(), len)
            } else {
                let len = tree_tar(&self.fetcher(), &repo, &node, &mut std::io::sink(), false)?;
                (format!("{component}.tar"), len)
            };
            Ok(PortableForm {
                file_name,
                len,
                content: info.kind.unwrap_or(ContentKind::Stream),
                sealed: info.sealed,
            })
        })
    }

    /// Writes the portable form of `snapshot` ([`Repo::portable_form`]) to
    /// `out`; returns the bytes written.
    pub fn write_portable(&self, snapshot: &str, out: &mut dyn Write) -> EngineResult<u64> {
        let _lock = self.lock(LockMode::Shared, "export")?;
        guarded(|| {
            let repo = self.handle(None, None)?;
            let snap = self.find_snapshot(&repo, snapshot)?;
            let info = SnapshotInfo::from_snapshot(&snap);
            let repo = repo.to_indexed().map_err(|e| EngineError::rustic(&e))?;
            let (node, single) = portable_root(&repo, &snap, &info)?;
            if single {
                return write_file(&self.fetcher(), &repo, &node, out);
            }
            tree_tar(&self.fetcher(), &repo, &node, out, true)
        })
    }
}
