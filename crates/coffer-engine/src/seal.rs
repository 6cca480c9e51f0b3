//! Sealed components: data encrypted to age X25519 recipients before the
//! repository sees it.
//!
//! The repository already encrypts everything with its own key, which the
//! server holds. Keys and secrets deserve more: sealed with only *public*
//! keys, they can be backed up by a server that could not read them back.
//! Restoring needs the matching identity, supplied by whoever restores.
//!
//! What is stored, so that plain `restic` and the `age` CLI can recover it:
//!
//! * a sealed **stream** is the age file of the stream, named `<name>.age`
//!   (e.g. `vault.pgdump.age`);
//! * a sealed **tree** is the age file of a GNU tar of the tree, named
//!   `<component>.tar.age`: `restic dump latest /keys.tar.age | age -d -i key.txt | tar x`.
//!
//! Each snapshot carries the tag `coffer-sealed=age`. Encryption uses a fresh
//! file key each time, so sealed components do not deduplicate between
//! backups; they are meant to be small.

use std::io::{self, BufReader, PipeReader, PipeWriter, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use rustic_core::repofile::{Node, NodeType};
use rustic_core::{
    Excludes, LocalSource, LocalSourceFilterOptions, LocalSourceSaveOptions, ReadSource,
    ReadSourceEntry, ReadSourceOpen,
};

pub use coffer_export::{AgeIdentity, AgeRecipients};

use crate::cancel::CancelToken;
use crate::meta::unix_mode_from_go;
use crate::progress::Counters;

/// PAX records of the sealed tar: the time with nanoseconds, and one record
/// per extended attribute (the names GNU tar and bsdtar use).
const PAX_MTIME: &str = "mtime";
const PAX_XATTR: &str = "SCHILY.xattr.";

/// The suffix of a sealed snapshot's file name.
pub const SEALED_SUFFIX: &str = ".age";

// ---------------------------------------------------------------------- writing

/// The read end of a pipe filled by a worker thread. At the end of the data
/// it reports the worker's error instead of a clean EOF, so a failed
/// producer can never look like a short, complete stream.
pub(crate) struct ProducerReader {
    pipe: PipeReader,
    worker: Option<JoinHandle<io::Result<()>>>,
}

impl ProducerReader {
    fn spawn(
        name: &str,
        produce: impl FnOnce(&mut PipeWriter) -> io::Result<()> + Send + 'static,
    ) -> io::Result<Self> {
        let (pipe, mut writer) = io::pipe()?;
        let worker = std::thread::Builder::new()
            .name(format!("coffer-{name}"))
            .spawn(move || {
                let result = produce(&mut writer);
                // Closing the write end is what ends the reader's stream.
                drop(writer);
                result
            })?;
        Ok(Self {
            pipe,
            worker: Some(worker),
        })
    }
}

impl Read for ProducerReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.pipe.read(buf)?;
        if n == 0
            && !buf.is_empty()
            && let Some(worker) = self.worker.take()
        {
            match worker.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(io::Error::other("the sealing thread panicked")),
            }
        }
        Ok(n)
    }
}

/// `source` encrypted to `recipients`, produced on a worker thread.
pub(crate) fn seal_stream(
    mut source: Box<dyn Read + Send>,
    recipients: Arc<AgeRecipients>,
) -> io::Result<ProducerReader> {
    ProducerReader::spawn("seal", move |out| {
        let mut sealed = recipients.encryptor()?.wrap_output(out)?;
        io::copy(&mut source, &mut sealed)?;
        sealed.finish()?;
        Ok(())
    })
}

/// A GNU tar of the tree at `root` (walked like an unsealed backup, with the
/// same excludes), encrypted to `recipients`.
pub(crate) fn seal_tree(
    root: PathBuf,
    excludes: Excludes,
    recipients: Arc<AgeRecipients>,
    cancel: Option<CancelToken>,
) -> io::Result<ProducerReader> {
    ProducerReader::spawn("seal-tree", move |out| {
        let sealed = recipients.encryptor()?.wrap_output(out)?;
        let mut tar = tar::Builder::new(sealed);
        write_tree(&mut tar, &root, &excludes, cancel.as_ref())?;
        tar.into_inner()?.finish()?;
        Ok(())
    })
}

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

fn write_tree<W: Write>(
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

/// Decrypts the age file read from `sealed` with `identity`. The error says
/// plainly when the identity is not one the data was sealed to.
pub fn open_sealed<R: Read>(sealed: R, identity: &AgeIdentity) -> io::Result<impl Read + use<R>> {
    let decryptor = age::Decryptor::new_buffered(BufReader::new(sealed))
        .map_err(|e| io::Error::other(format!("not a valid age file: {e}")))?;
    decryptor
        .decrypt(std::iter::once(identity.as_age() as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "the age identity (public key {}) is not one this component was sealed to",
                    identity.recipient()
                ),
            ),
            other => io::Error::other(format!("cannot decrypt the sealed data: {other}")),
        })
}

/// A directory of the unpacked tree, whose metadata is applied last (after
/// its content exists, and again after the move into place).
pub(crate) struct UnpackedDir {
    /// Relative to the restore root; empty for the root itself.
    pub(crate) rel: PathBuf,
    mode: u32,
    mtime: (i64, u32),
    owner: Option<(u64, u64)>,
}

/// Who made a tar being unpacked, and so how far it is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TarOrigin {
    /// A sealed tree from the repository (Coffer wrote it; devices allowed).
    Repository,
    /// An upload or a file from elsewhere: device nodes are refused too, so
    /// an archive cannot hand a restoring root a raw disk.
    Untrusted,
}

/// Unpacks a tree's tar into `root` (a fresh staging directory). Refused,
/// whoever made the archive: anything but a plain relative path, an entry
/// below a symbolic link the archive created (a symlink escape), hard links,
/// sparse and unknown entry types — so nothing is written outside `root`.
pub(crate) fn unpack_tree(
    plain: impl Read,
    root: &Path,
    counters: &Counters,
    origin: TarOrigin,
) -> io::Result<Vec<UnpackedDir>> {
    let mut archive = tar::Archive::new(plain);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_preserve_ownerships(crate::meta::is_root());
    archive.set_overwrite(false);
    let mut dirs = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let kind = entry.header().entry_type();
        let rel = checked_entry(&entry.path()?, kind, origin)?;
        refuse_link_ancestor(root, &rel)?;
        let (mtime, xattrs) = pax_metadata(&mut entry)?;
        let header = entry.header();
        let mtime = mtime.unwrap_or((header.mtime()? as i64, 0));
        let path = root.join(&rel);
        if header.entry_type() == tar::EntryType::Directory {
            std::fs::create_dir_all(&path)?;
            set_xattrs(&path, &xattrs)?;
            dirs.push(UnpackedDir {
                rel,
                mode: header.mode()?,
                mtime,
                owner: Some((header.uid()?, header.gid()?)),
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
            let (mode, owner) = (header.mode()?, (header.uid()?, header.gid()?));
            crate::restore::make_special(&path, file_type, dev).map_err(io::Error::other)?;
            if crate::meta::is_root() {
                std::os::unix::fs::lchown(&path, Some(owner.0 as u32), Some(owner.1 as u32))?;
            }
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o7777))?;
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

/// An entry's path made relative (`./a/b` → `a/b`), or an error when the
/// path is unsafe (absolute, `..`) or the entry type is one Coffer does not
/// restore from `origin`.
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
/// (safe paths, no entry below a symlink, no hard links, sparse files or
/// devices): an upload is judged before any of it is restored. Returns the
/// number of entries.
pub fn verify_tree_tar(tar: &mut dyn Read) -> io::Result<u64> {
    let mut archive = tar::Archive::new(tar);
    let mut links: std::collections::HashSet<PathBuf> = std::collections::HashSet::new();
    let mut count = 0u64;
    for entry in archive.entries()? {
        let entry = entry?;
        let kind = entry.header().entry_type();
        let rel = checked_entry(&entry.path()?, kind, TarOrigin::Untrusted)?;
        if let Some(link) = rel.ancestors().skip(1).find(|a| links.contains(*a)) {
            return Err(io::Error::other(format!(
                "the archive's entry {} lies below the symbolic link {}, which could point \
                 outside the restore root",
                rel.display(),
                link.display()
            )));
        }
        if kind == tar::EntryType::Symlink {
            links.insert(rel);
        }
        count += 1;
        // The entry's data is skipped by the next `entries()` step.
    }
    Ok(count)
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
                return Err(io::Error::other(format!(
                    "the archive's entry {} lies below the symbolic link {}, which could point \
                     outside the restore root",
                    rel.display(),
                    at.strip_prefix(root).unwrap_or(&at).display()
                )));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

type Xattrs = Vec<(String, Vec<u8>)>;

/// The exact modification time (seconds, nanoseconds) and the extended
/// attributes from an entry's PAX records.
fn pax_metadata<R: Read>(entry: &mut tar::Entry<R>) -> io::Result<(Option<(i64, u32)>, Xattrs)> {
    let mut mtime = None;
    let mut xattrs = Vec::new();
    if let Some(exts) = entry.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            let Ok(key) = ext.key() else { continue };
            if key == PAX_MTIME {
                mtime = ext.value().ok().and_then(parse_pax_time);
            } else if let Some(name) = key.strip_prefix(PAX_XATTR) {
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

/// Applies the directories' modes, owners (as root) and times, deepest first
/// so that setting a parent's time is not undone by touching a child.
pub(crate) fn apply_unpacked_dirs(base: &Path, dirs: &[UnpackedDir]) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut order: Vec<&UnpackedDir> = dirs.iter().collect();
    order.sort_by_key(|d| std::cmp::Reverse(d.rel.components().count()));
    for d in order {
        let path = base.join(&d.rel);
        if crate::meta::is_root()
            && let Some((uid, gid)) = d.owner
        {
            std::os::unix::fs::lchown(&path, Some(uid as u32), Some(gid as u32))?;
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(d.mode & 0o7777))?;
        let t = filetime::FileTime::from_unix_time(d.mtime.0, d.mtime.1);
        filetime::set_file_times(&path, t, t)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_stream_round_trip_and_wrong_identity() {
        let id = AgeIdentity::generate();
        let recipients = Arc::new(AgeRecipients::parse(&[id.recipient()]).unwrap());
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut sealed = Vec::new();
        seal_stream(Box::new(io::Cursor::new(data.clone())), recipients)
            .unwrap()
            .read_to_end(&mut sealed)
            .unwrap();
        assert!(sealed.starts_with(b"age-encryption.org/v1"));
        let mut plain = Vec::new();
        open_sealed(&mut sealed.as_slice(), &id)
            .unwrap()
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, data);

        let other = AgeIdentity::generate();
        let e = open_sealed(&mut sealed.as_slice(), &other).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(e.to_string().contains(&other.recipient()), "{e}");
    }

    #[test]
    fn a_failing_source_fails_the_sealed_stream() {
        struct Broken(u8);
        impl Read for Broken {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("disk on fire"));
                }
                self.0 -= 1;
                buf[0] = 1;
                Ok(1)
            }
        }
        let id = AgeIdentity::generate();
        let recipients = Arc::new(AgeRecipients::parse(&[id.recipient()]).unwrap());
        let mut out = Vec::new();
        let e = seal_stream(Box::new(Broken(3)), recipients)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap_err();
        assert!(e.to_string().contains("disk on fire"), "{e}");
    }

    #[test]
    fn identities_and_recipients_parse_with_clear_errors() {
        let id = AgeIdentity::generate();
        let file = format!(
            "# created: now\n# public key: {}\n{}\n",
            id.recipient(),
            id.secret()
        );
        let parsed: AgeIdentity = file.parse().unwrap();
        assert_eq!(parsed.recipient(), id.recipient());
        assert!(!format!("{parsed:?}").contains("AGE-SECRET-KEY"));
        assert!("".parse::<AgeIdentity>().unwrap_err().contains("empty"));
        assert!(
            "AGE-SECRET-KEY-1XYZ"
                .parse::<AgeIdentity>()
                .unwrap_err()
                .contains("X25519")
        );
        assert!(
            AgeRecipients::parse::<&str>(&[])
                .unwrap_err()
                .contains("no age recipient")
        );
        assert!(
            AgeRecipients::parse(&["age1nope"])
                .unwrap_err()
                .contains("age1nope")
        );
    }

    #[test]
    fn pax_times_round_trip_before_and_after_1970() {
        for (secs, nanos) in [
            (1_600_000_000i64, 123_456_789i32),
            (0, 0),
            (-1, -500_000_000),
            (-7, 0),
        ] {
            let t = rustic_core::jiff::Timestamp::new(secs, nanos).unwrap();
            let (s, n) = parse_pax_time(&pax_time(&t)).unwrap();
            let back = s as i128 * 1_000_000_000 + n as i128;
            assert_eq!(
                back,
                secs as i128 * 1_000_000_000 + nanos as i128,
                "{}",
                pax_time(&t)
            );
        }
    }

    #[test]
    fn unpack_refuses_paths_outside_the_root() {
        let mut raw = Vec::new();
        {
            let mut b = tar::Builder::new(&mut raw);
            let mut h = tar::Header::new_gnu();
            h.set_size(1);
            h.set_entry_type(tar::EntryType::Regular);
            // `append_data` refuses `..`: write the name into the header directly.
            let name = b"../escape";
            h.as_old_mut().name[..name.len()].copy_from_slice(name);
            h.set_cksum();
            b.append(&h, &b"x"[..]).unwrap();
            b.finish().unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let e = unpack_tree(
            raw.as_slice(),
            &root,
            &Counters::default(),
            TarOrigin::Repository,
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("unsafe path"), "{e}");
        assert!(!dir.path().join("escape").exists());
    }
}
