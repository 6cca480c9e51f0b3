//! Trees as tar archives: the one layout Coffer writes (sealed trees, tree
//! exports, a `files` component's native form) and the rules by which any
//! tree's tar is unpacked or judged.
//!
//! Writing: a GNU tar walked by rustic_core's `LocalSource` (the same
//! excludes and metadata as a backup), with PAX records for what a ustar
//! header cannot hold: the time to the nanosecond and extended attributes
//! (the names GNU tar and bsdtar use).
//!
//! Reading treats every archive as hostile as far as paths go — nothing is
//! written outside the restore root, whoever made it — and trusts it as far
//! as its [`TarOrigin`] says. A [`HeaderGuard`] in front of every archive
//! refuses oversized extension headers before the `tar` crate reads them
//! into memory.

use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use coffer_archive::tar_guard::{DEFAULT_MAX_HEADER, HeaderGuard, HeaderLimits};
use rustic_core::repofile::{Node, NodeType};
use rustic_core::{
    Excludes, LocalSource, LocalSourceFilterOptions, LocalSourceSaveOptions, ReadSource,
    ReadSourceEntry, ReadSourceOpen,
};

use crate::cancel::CancelToken;
use crate::fsops::DirMeta;
use crate::meta::unix_mode_from_go;
use crate::paths::PathKeys;
use crate::progress::Counters;

/// PAX records of the sealed tar: the time with nanoseconds, and one record
/// per extended attribute (the names GNU tar and bsdtar use).
const PAX_MTIME: &str = "mtime";
const PAX_XATTR: &str = "SCHILY.xattr.";

// ---------------------------------------------------------------------- writing

/// A plain (unsealed) GNU tar of the tree at `root` into `out`.
pub(crate) fn write_plain_tree(
    out: &mut dyn Write,
    root: &Path,
    excludes: &Excludes,
    cancel: Option<&CancelToken>,
) -> io::Result<()> {
    let mut tar = tar::Builder::new(out);
    write_tree(&mut tar, root, excludes, cancel)?;
    tar.into_inner()?.flush()
}

pub(crate) fn write_tree<W: Write>(
    tar: &mut tar::Builder<W>,
    root: &Path,
    excludes: &Excludes,
    cancel: Option<&CancelToken>,
) -> io::Result<()> {
    let source = LocalSource::new(
        LocalSourceSaveOptions::default(),
        excludes,
        &LocalSourceFilterOptions::default(),
        &[root.to_path_buf()],
    )
    .map_err(|e| io::Error::other(e.display_log()))?;
    for entry in source.entries() {
        if cancel.is_some_and(CancelToken::is_cancelled) {
            return Err(io::Error::other(crate::source::CANCELLED));
        }
        let ReadSourceEntry { path, node, open } =
            entry.map_err(|e| io::Error::other(e.display_log()))?;
        let rel = match path.strip_prefix(root) {
            Ok(r) if r.as_os_str().is_empty() => PathBuf::from("."),
            Ok(r) => r.to_path_buf(),
            Err(_) => {
                return Err(io::Error::other(format!(
                    "{} is outside {}",
                    path.display(),
                    root.display()
                )));
            }
        };
        let content: Option<Box<dyn Read>> = match (&node.node_type, open) {
            (NodeType::File, Some(open)) => Some(Box::new(open.open().map_err(|e| {
                io::Error::other(format!("{}: {}", path.display(), e.display_log()))
            })?)),
            (NodeType::File, None) => {
                return Err(io::Error::other(format!(
                    "{}: cannot be opened",
                    path.display()
                )));
            }
            _ => None,
        };
        append_node(tar, &rel, &node, content, &path)?;
    }
    tar.finish()
}

/// Appends one entry of a tree to `tar`: PAX records for what the ustar
/// header cannot hold (the time to the nanosecond, extended attributes), then
/// the header and, for a regular file, exactly `node.meta.size` bytes of
/// `content` (`shown` names the file in errors). Shared by sealed trees and
/// tree exports, so both archives have one layout.
pub(crate) fn append_node<W: Write>(
    tar: &mut tar::Builder<W>,
    rel: &Path,
    node: &Node,
    content: Option<Box<dyn Read + '_>>,
    shown: &Path,
) -> io::Result<()> {
    let meta = &node.meta;
    let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
    if let Some(t) = &meta.mtime {
        pax.push((PAX_MTIME.to_owned(), pax_time(t).into_bytes()));
    }
    for x in &meta.extended_attributes {
        pax.push((
            format!("{PAX_XATTR}{}", x.name),
            x.value.clone().unwrap_or_default(),
        ));
    }
    tar.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
    let mut header = tar::Header::new_gnu();
    header.set_mode(meta.mode.map_or(0o644, unix_mode_from_go));
    header.set_mtime(
        meta.mtime
            .as_ref()
            .map_or(0, |t| t.as_second().max(0) as u64),
    );
    header.set_uid(meta.uid.unwrap_or(0).into());
    header.set_gid(meta.gid.unwrap_or(0).into());
    header.set_size(0);
    let device = |h: &mut tar::Header, dev: u64| -> io::Result<()> {
        h.set_device_major(libc::major(dev as libc::dev_t))?;
        h.set_device_minor(libc::minor(dev as libc::dev_t))
    };
    match &node.node_type {
        NodeType::Dir => {
            header.set_entry_type(tar::EntryType::Directory);
            tar.append_data(&mut header, rel, io::empty())
        }
        NodeType::File => {
            let content = content.ok_or_else(|| {
                io::Error::other(format!("{}: no content given", shown.display()))
            })?;
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(meta.size);
            let exact = ExactReader {
                inner: content.take(meta.size),
                left: meta.size,
                path: shown,
            };
            tar.append_data(&mut header, rel, exact)
        }
        NodeType::Symlink { .. } => {
            header.set_entry_type(tar::EntryType::Symlink);
            tar.append_link(&mut header, rel, node.node_type.to_link())
        }
        NodeType::Fifo => {
            header.set_entry_type(tar::EntryType::Fifo);
            tar.append_data(&mut header, rel, io::empty())
        }
        NodeType::Dev { device: dev } => {
            header.set_entry_type(tar::EntryType::Block);
            device(&mut header, *dev)?;
            tar.append_data(&mut header, rel, io::empty())
        }
        NodeType::Chardev { device: dev } => {
            header.set_entry_type(tar::EntryType::Char);
            device(&mut header, *dev)?;
            tar.append_data(&mut header, rel, io::empty())
        }
        // A socket belongs to a running process; no archive format keeps one.
        NodeType::Socket => Ok(()),
    }
}

/// A file's content of exactly its recorded size: a tar header declares the
/// size first, so a file that shrank while it was read must fail the backup
/// rather than corrupt the archive.
struct ExactReader<'a, R> {
    inner: R,
    left: u64,
    path: &'a Path,
}

impl<R: Read> Read for ExactReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{} changed while it was read (shrank by {} bytes); back up again",
                    self.path.display(),
                    self.left
                ),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

// ---------------------------------------------------------------------- reading

/// A directory of the unpacked tree, whose metadata is applied last (after
/// its content exists, and again after the move into place).
pub(crate) struct UnpackedDir {
    /// Relative to the restore root; empty for the root itself.
    pub(crate) rel: PathBuf,
    /// Permission bits, set-id bits already stripped for untrusted archives.
    mode: u32,
    mtime: (i64, u32),
    /// Restored only as root, and only from the repository.
    owner: Option<(u32, u32)>,
}

/// Who made a tar being unpacked, and so how far it is trusted.
///
/// A [`TarOrigin::Repository`] archive restores exactly as it was backed up:
/// owners (when Coffer runs as root), set-uid and set-gid bits, every
/// extended attribute, device nodes. A [`TarOrigin::Untrusted`] archive — an
/// upload, an export's tree, any file from elsewhere — is restored as
/// *content* that belongs to the user Coffer runs as: owners are not
/// restored, set-uid and set-gid bits are cleared (permissions and the
/// sticky bit stay), extended attributes outside the `user.` namespace
/// (`security.*` such as file capabilities and SELinux labels, `trusted.*`,
/// `system.*` such as ACLs) are dropped, and device nodes are refused.
/// Whatever the origin, nothing is written outside the restore root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TarOrigin {
    /// A sealed tree from the repository (Coffer wrote it; devices allowed).
    Repository,
    /// An upload or a file from elsewhere: device nodes are refused too, so
    /// an archive cannot hand a restoring root a raw disk; no owners, no
    /// set-id bits, only `user.` extended attributes.
    Untrusted,
}

impl TarOrigin {
    /// Owners are restored from the archive (else files belong to Coffer's user).
    fn keeps_owners(self) -> bool {
        self == Self::Repository && crate::meta::is_root()
    }

    /// The mode bits kept from the archive.
    fn mode_bits(self) -> u32 {
        match self {
            Self::Repository => 0o7777,
            // Set-uid and set-gid go; permissions and the sticky bit stay.
            Self::Untrusted => 0o1777,
        }
    }

    fn keeps_xattr(self, name: &str) -> bool {
        self == Self::Repository || name.starts_with("user.")
    }
}

/// The header limits of a tree's tar: one extension header may hold
/// [`DEFAULT_MAX_HEADER`] (a file's extended attributes fit many times), but
/// there is no total budget: Coffer writes a PAX header for every entry, so
/// a total would cap how many files a tree may hold. The tar itself is
/// bounded by whoever hands it over (an upload's size limit, a snapshot), and
/// memory only by the one header the `tar` crate holds at a time.
fn tree_header_limits() -> HeaderLimits {
    HeaderLimits {
        max_header: DEFAULT_MAX_HEADER,
        max_total: u64::MAX,
    }
}

/// Unpacks a tree's tar into `root` (a fresh staging directory). Refused,
/// whoever made the archive: anything but a plain relative path, an entry
/// below a symbolic link the archive created (a symlink escape) or at the
/// path of an earlier entry (but a directory listed twice), hard links,
/// sparse and unknown entry types, oversized extension headers — so nothing
/// is written outside `root`. What an [`TarOrigin::Untrusted`] archive may
/// not set is dropped (see [`TarOrigin`]).
pub(crate) fn unpack_tree(
    plain: impl Read,
    root: &Path,
    counters: &Counters,
    origin: TarOrigin,
) -> io::Result<Vec<UnpackedDir>> {
    let mut archive = tar::Archive::new(HeaderGuard::with_limits(plain, tree_header_limits()));
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_preserve_ownerships(origin.keeps_owners());
    // What the tar crate unpacks itself (files) loses the same bits.
    archive.set_mask(0o7777 & !origin.mode_bits());
    archive.set_overwrite(false);
    let mut dirs = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let kind = entry.header().entry_type();
        let rel = checked_entry(&entry.path()?, kind, origin)?;
        refuse_link_ancestor(root, &rel)?;
        refuse_existing(root, &rel, kind)?;
        let (mtime, xattrs) = pax_metadata(&mut entry, origin)?;
        let header = entry.header();
        let mtime = mtime.unwrap_or((header.mtime()? as i64, 0));
        let mode = header.mode()? & origin.mode_bits();
        let owner = if origin.keeps_owners() {
            Some(owner_of(header)?)
        } else {
            None
        };
        let path = root.join(&rel);
        if kind == tar::EntryType::Directory {
            if let Some(parent) = path.parent().filter(|_| !rel.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)?;
                match std::fs::create_dir(&path) {
                    // `refuse_existing` let only a directory through.
                    Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                    _ => {}
                }
            }
            // Through a descriptor opened without following links: the
            // attributes land on this directory or nowhere.
            let meta = DirMeta {
                xattrs: &xattrs,
                ..DirMeta::default()
            };
            crate::fsops::apply_dir_meta(root, &rel, &meta)?;
            dirs.push(UnpackedDir {
                rel,
                mode,
                mtime,
                owner,
            });
            continue;
        }
        let is_link = kind == tar::EntryType::Symlink;
        let size = entry.size();
        let special = match kind {
            tar::EntryType::Fifo => Some(libc::S_IFIFO),
            tar::EntryType::Block => Some(libc::S_IFBLK),
            tar::EntryType::Char => Some(libc::S_IFCHR),
            _ => None,
        };
        if let Some(file_type) = special {
            // The tar crate would write these as empty regular files.
            let dev = if file_type == libc::S_IFIFO {
                0
            } else {
                libc::makedev(
                    header.device_major()?.unwrap_or(0),
                    header.device_minor()?.unwrap_or(0),
                )
            };
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            // mknod fails on an existing path: this is the new node.
            crate::restore::make_special(&path, file_type, dev).map_err(io::Error::other)?;
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::lchown(&path, Some(uid), Some(gid))?;
            }
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        } else if !entry.unpack_in(root)? {
            return Err(io::Error::other(format!(
                "the archive's entry {} would land outside the restore root",
                rel.display()
            )));
        }
        if !is_link {
            set_xattrs(&path, &xattrs)?;
        }
        let t = filetime::FileTime::from_unix_time(mtime.0, mtime.1);
        filetime::set_symlink_file_times(&path, t, t)?;
        counters.add_file();
        counters.add_bytes(size);
    }
    Ok(dirs)
}

fn owner_of(header: &tar::Header) -> io::Result<(u32, u32)> {
    let id = |v: u64| {
        u32::try_from(v).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the archive names owner id {v}, out of range"),
            )
        })
    };
    Ok((id(header.uid()?)?, id(header.gid()?)?))
}

/// An entry's path made relative (`./a/b` → `a/b`), or an error when the
/// path is unsafe (absolute, `..`), the root is not a directory, or the
/// entry type is one Coffer does not restore from `origin`.
fn checked_entry(raw: &Path, kind: tar::EntryType, origin: TarOrigin) -> io::Result<PathBuf> {
    if raw
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(io::Error::other(format!(
            "the archive holds an unsafe path {}",
            raw.display()
        )));
    }
    let rel: PathBuf = raw
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    if rel.as_os_str().is_empty() && kind != tar::EntryType::Directory {
        return Err(io::Error::other(format!(
            "the archive's root entry {} is a {kind:?}, not a directory",
            raw.display()
        )));
    }
    let allowed = match kind {
        tar::EntryType::Regular
        | tar::EntryType::Continuous
        | tar::EntryType::Directory
        | tar::EntryType::Symlink
        | tar::EntryType::Fifo => true,
        tar::EntryType::Block | tar::EntryType::Char => origin == TarOrigin::Repository,
        _ => false,
    };
    if !allowed {
        return Err(io::Error::other(format!(
            "the archive's entry {} is a {kind:?}, which Coffer does not restore{}",
            rel.display(),
            if origin == TarOrigin::Untrusted {
                " from an uploaded archive"
            } else {
                ""
            }
        )));
    }
    Ok(rel)
}

/// Reads a whole tree tar from outside the repository without writing
/// anything, applying every rule [`crate::restore_tree_from_tar`] applies
/// (safe paths, no entry below a symlink or a file, no entry at the path of
/// an earlier one but a directory listed twice, no hard links, sparse files
/// or devices, no oversized extension headers): an upload is judged before
/// any of it is restored. Returns the number of entries.
pub fn verify_tree_tar(tar: &mut dyn Read) -> io::Result<u64> {
    let mut archive = tar::Archive::new(HeaderGuard::with_limits(tar, tree_header_limits()));
    let mut seen = SeenPaths::default();
    let mut count = 0u64;
    for entry in archive.entries()? {
        let entry = entry?;
        let kind = entry.header().entry_type();
        let rel = checked_entry(&entry.path()?, kind, TarOrigin::Untrusted)?;
        seen.add(&rel, kind)?;
        count += 1;
        // The entry's data is skipped by the next `entries()` step.
    }
    Ok(count)
}

/// What an unpack would have made at each path so far (directories implied
/// by deeper entries included), for [`verify_tree_tar`].
#[derive(Default)]
struct SeenPaths {
    keys: PathKeys,
    kinds: std::collections::HashMap<(u64, u64), Seen>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Dir,
    Link,
    Other,
}

impl SeenPaths {
    fn add(&mut self, rel: &Path, kind: tar::EntryType) -> io::Result<()> {
        let parents = || {
            rel.ancestors()
                .skip(1)
                .take_while(|a| !a.as_os_str().is_empty())
        };
        for parent in parents() {
            match self.kinds.get(&self.keys.key(parent)) {
                Some(Seen::Link) => return Err(below_link(rel, parent)),
                Some(Seen::Other) => {
                    return Err(io::Error::other(format!(
                        "the archive's entry {} lies below the file {}",
                        rel.display(),
                        parent.display()
                    )));
                }
                Some(Seen::Dir) | None => {}
            }
        }
        let this = match kind {
            tar::EntryType::Directory => Seen::Dir,
            tar::EntryType::Symlink => Seen::Link,
            _ => Seen::Other,
        };
        match self.kinds.get(&self.keys.key(rel)) {
            None => {}
            Some(Seen::Dir) if this == Seen::Dir => {}
            Some(earlier) => return Err(reused(rel, *earlier == Seen::Link)),
        }
        for parent in parents() {
            self.kinds.entry(self.keys.key(parent)).or_insert(Seen::Dir);
        }
        self.kinds.insert(self.keys.key(rel), this);
        Ok(())
    }
}

fn below_link(rel: &Path, link: &Path) -> io::Error {
    io::Error::other(format!(
        "the archive's entry {} lies below the symbolic link {}, which could point \
         outside the restore root",
        rel.display(),
        link.display()
    ))
}

fn reused(rel: &Path, link: bool) -> io::Error {
    io::Error::other(if link {
        format!(
            "the archive's entry {} has the path of a symbolic link it created earlier, \
             which could point outside the restore root",
            rel.display()
        )
    } else {
        format!("the archive holds {} twice", rel.display())
    })
}

/// Refuses an entry whose parent path goes through a symbolic link already
/// unpacked: `link -> /etc` followed by `link/passwd` must not write there.
fn refuse_link_ancestor(root: &Path, rel: &Path) -> io::Result<()> {
    let mut at = root.to_path_buf();
    let mut parents = rel.components().collect::<Vec<_>>();
    parents.pop();
    for c in parents {
        at.push(c);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(below_link(rel, at.strip_prefix(root).unwrap_or(&at)));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Refuses an entry whose own path the archive already used — above all a
/// symbolic link (`link -> /etc`, then a directory `link` whose metadata
/// would land on `/etc`) — but a directory listed twice.
fn refuse_existing(root: &Path, rel: &Path, kind: tar::EntryType) -> io::Result<()> {
    match std::fs::symlink_metadata(root.join(rel)) {
        Ok(m) if m.is_dir() && kind == tar::EntryType::Directory => Ok(()),
        Ok(m) => Err(reused(rel, m.file_type().is_symlink())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

type Xattrs = Vec<(String, Vec<u8>)>;

/// The exact modification time (seconds, nanoseconds) and the extended
/// attributes `origin` may set, from an entry's PAX records.
fn pax_metadata<R: Read>(
    entry: &mut tar::Entry<R>,
    origin: TarOrigin,
) -> io::Result<(Option<(i64, u32)>, Xattrs)> {
    let mut mtime = None;
    let mut xattrs = Vec::new();
    if let Some(exts) = entry.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            let Ok(key) = ext.key() else { continue };
            if key == PAX_MTIME {
                mtime = ext.value().ok().and_then(parse_pax_time);
            } else if let Some(name) = key.strip_prefix(PAX_XATTR)
                && origin.keeps_xattr(name)
            {
                xattrs.push((name.to_owned(), ext.value_bytes().to_vec()));
            }
        }
    }
    Ok((mtime, xattrs))
}

/// A time as a PAX decimal: `1600000000.123456789`, `-1.500000000` before 1970.
fn pax_time(t: &rustic_core::jiff::Timestamp) -> String {
    // jiff gives seconds and nanoseconds with the same sign.
    let (secs, nanos) = (t.as_second(), t.subsec_nanosecond());
    if secs < 0 || nanos < 0 {
        format!("-{}.{:09}", secs.unsigned_abs(), nanos.unsigned_abs())
    } else {
        format!("{secs}.{nanos:09}")
    }
}

/// A PAX decimal time as whole seconds (rounded down) and nanoseconds, as
/// `filetime` takes them.
fn parse_pax_time(v: &str) -> Option<(i64, u32)> {
    let (negative, v) = match v.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
    let secs: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    let nanos: u32 = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse().ok()?
    };
    Some(match (negative, nanos) {
        (false, _) => (secs, nanos),
        (true, 0) => (-secs, 0),
        (true, n) => (-secs - 1, 1_000_000_000 - n),
    })
}

/// Sets extended attributes on a file just unpacked (`lsetxattr`: a link
/// in the final component is not followed; ancestors were checked).
fn set_xattrs(path: &Path, xattrs: &Xattrs) -> io::Result<()> {
    for (name, value) in xattrs {
        xattr::set(path, name, value).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("extended attribute {name} of {}: {e}", path.display()),
            )
        })?;
    }
    Ok(())
}

/// Applies the directories' modes, owners and times below `base`, deepest
/// first so that setting a parent's time is not undone by touching a child,
/// each through a descriptor opened without following links. Of a directory
/// listed twice, the later entry counts.
pub(crate) fn apply_unpacked_dirs(base: &Path, dirs: &[UnpackedDir]) -> io::Result<()> {
    let mut once = std::collections::HashSet::new();
    let mut order: Vec<&UnpackedDir> = dirs.iter().rev().filter(|d| once.insert(&d.rel)).collect();
    order.sort_by_key(|d| std::cmp::Reverse(d.rel.components().count()));
    for d in order {
        let meta = DirMeta {
            owner: d.owner,
            mode: Some(d.mode),
            xattrs: &[],
            mtime: Some(d.mtime),
        };
        crate::fsops::apply_dir_meta(base, &d.rel, &meta)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
