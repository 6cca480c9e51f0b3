//! Filesystem calls the standard library lacks: opening a directory below a
//! root without following symbolic links, applying metadata through the
//! opened descriptor, renames that exchange two entries or refuse to
//! replace one, and telling whether two paths are on the same mount.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, CWD, Mode, OFlags, RenameFlags, StatxFlags};
use rustix::io::Errno;

/// `openat(dir, name, flags)` as an owned descriptor, closed on exec.
fn open_at(dir: impl AsFd, name: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Opens the directory `rel` below `root` without following any symbolic
/// link in `rel`: each component is opened relative to the previous one
/// with `O_NOFOLLOW | O_DIRECTORY`, so neither the directory nor one of its
/// ancestors below `root` can be a link that redirects the caller. `root`
/// itself is opened as given (the operator chose it). Ancestors are opened
/// with `O_PATH`, which needs only search permission.
pub(crate) fn open_dir_beneath(root: &Path, rel: &Path) -> io::Result<File> {
    let mut names = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => names.push(n),
            Component::CurDir => {}
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} is not a plain relative path", rel.display()),
                ));
            }
        }
    }
    let root_flags = if names.is_empty() {
        OFlags::RDONLY
    } else {
        OFlags::PATH
    };
    let mut fd = open_at(CWD, root, root_flags | OFlags::DIRECTORY)
        .map_err(|e| io::Error::new(e.kind(), format!("opening {}: {e}", root.display())))?;
    let mut at = root.to_path_buf();
    for (i, name) in names.iter().enumerate() {
        at.push(name);
        let access = if i + 1 == names.len() {
            OFlags::RDONLY
        } else {
            OFlags::PATH
        };
        fd = open_at(
            &fd,
            Path::new(name),
            access | OFlags::DIRECTORY | OFlags::NOFOLLOW,
        )
        .map_err(|e| match e.raw_os_error().map(Errno::from_raw_os_error) {
            Some(Errno::LOOP | Errno::NOTDIR) => io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is not a directory (a symbolic link or a file is in its place)",
                    at.display()
                ),
            ),
            _ => io::Error::new(e.kind(), format!("opening {}: {e}", at.display())),
        })?;
    }
    Ok(File::from(fd))
}

/// Metadata for a directory, applied through its descriptor.
#[derive(Debug, Default)]
pub(crate) struct DirMeta<'a> {
    /// uid and gid, set only when given (the caller decides: root, trusted).
    pub(crate) owner: Option<(u32, u32)>,
    /// Permission bits, set-uid, set-gid and sticky included.
    pub(crate) mode: Option<u32>,
    pub(crate) xattrs: &'a [(String, Vec<u8>)],
    /// Seconds and nanoseconds.
    pub(crate) mtime: Option<(i64, u32)>,
}

/// Applies `meta` to the directory `rel` below `root` without following a
/// symbolic link ([`open_dir_beneath`]): owner first (chown clears set-id
/// bits), then mode, extended attributes, and the time last.
pub(crate) fn apply_dir_meta(root: &Path, rel: &Path, meta: &DirMeta) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = open_dir_beneath(root, rel)?;
    let shown = root.join(rel);
    let ctx = |what: &'static str| {
        let shown = &shown;
        move |e: io::Error| io::Error::new(e.kind(), format!("{what} of {}: {e}", shown.display()))
    };
    if let Some((uid, gid)) = meta.owner {
        std::os::unix::fs::fchown(&dir, Some(uid), Some(gid)).map_err(ctx("setting the owner"))?;
    }
    if let Some(mode) = meta.mode {
        dir.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))
            .map_err(ctx("setting the mode"))?;
    }
    set_xattrs(&dir, meta.xattrs).map_err(ctx("setting extended attributes"))?;
    if let Some((secs, nanos)) = meta.mtime {
        let t = filetime::FileTime::from_unix_time(secs, nanos);
        filetime::set_file_handle_times(&dir, Some(t), Some(t)).map_err(ctx("setting the time"))?;
    }
    Ok(())
}

/// Sets extended attributes on an open file or directory.
pub(crate) fn set_xattrs(file: &File, xattrs: &[(String, Vec<u8>)]) -> io::Result<()> {
    use xattr::FileExt;
    for (name, value) in xattrs {
        file.set_xattr(name, value)
            .map_err(|e| io::Error::new(e.kind(), format!("extended attribute {name}: {e}")))?;
    }
    Ok(())
}

fn rename2(from: &Path, to: &Path, flags: RenameFlags) -> io::Result<()> {
    Ok(rustix::fs::renameat_with(CWD, from, CWD, to, flags)?)
}

/// Whether a filesystem refused a `renameat2` flag it does not implement.
pub(crate) fn unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)
    )
}

/// Swaps `a` and `b` atomically (`RENAME_EXCHANGE`); both must exist.
pub(crate) fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    rename2(a, b, RenameFlags::EXCHANGE)
}

/// Renames `from` to `to`, failing if `to` exists (`RENAME_NOREPLACE`;
/// where the filesystem lacks it, checked just before a plain rename).
pub(crate) fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    match rename2(from, to, RenameFlags::NOREPLACE) {
        Err(e) if unsupported(&e) => match std::fs::symlink_metadata(to) {
            Ok(_) => Err(io::Error::from_raw_os_error(libc::EEXIST)),
            Err(m) if m.kind() == io::ErrorKind::NotFound => std::fs::rename(from, to),
            Err(m) => Err(m),
        },
        other => other,
    }
}

/// The device and, where the kernel reports one, the mount id of `path`
/// (symbolic links followed).
fn mount_of(path: &Path) -> io::Result<(u32, u32, Option<u64>)> {
    let buf = rustix::fs::statx(CWD, path, AtFlags::empty(), StatxFlags::MNT_ID)?;
    let mnt = (buf.stx_mask & StatxFlags::MNT_ID.bits() != 0).then_some(buf.stx_mnt_id);
    Ok((buf.stx_dev_major, buf.stx_dev_minor, mnt))
}

/// Whether `a` and `b` are on the same mount, so that a rename between them
/// can work: the same device and, where known, the same mount id (a bind
/// mount of a directory shares its filesystem's device, yet a rename across
/// it fails with `EXDEV`).
pub(crate) fn same_mount(a: &Path, b: &Path) -> io::Result<bool> {
    let (ma, mb) = (mount_of(a)?, mount_of(b)?);
    Ok(ma.0 == mb.0
        && ma.1 == mb.1
        && match (ma.2, mb.2) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        })
}

/// `path` with `..`-free, symlink-resolved parents when it exists, else as
/// given: the directory an operator named, resolved once.
pub(crate) fn resolve_existing(path: &Path) -> io::Result<PathBuf> {
    match std::fs::canonicalize(path) {
        Ok(p) => Ok(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(path.to_path_buf()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn a_symlink_in_the_path_is_never_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(root.join("real/sub")).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::create_dir(outside.join("sub")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        std::fs::write(root.join("file"), b"").unwrap();
        for rel in ["link", "link/sub", "file", "file/x"] {
            let e = open_dir_beneath(&root, Path::new(rel)).unwrap_err();
            assert!(e.to_string().contains("not a directory"), "{rel}: {e}");
        }
        assert!(open_dir_beneath(&root, Path::new("../outside")).is_err());
        let meta = DirMeta {
            mode: Some(0o1750),
            mtime: Some((1_000_000_000, 5)),
            ..DirMeta::default()
        };
        apply_dir_meta(&root, Path::new("real/sub"), &meta).unwrap();
        let m = std::fs::metadata(root.join("real/sub")).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o1750);
        assert_eq!((m.mtime(), m.mtime_nsec()), (1_000_000_000, 5));
        // The root itself, by an empty relative path.
        apply_dir_meta(&root, Path::new(""), &meta).unwrap();
        assert_eq!(std::fs::metadata(&root).unwrap().mode() & 0o7777, 0o1750);
    }

    #[test]
    fn exchange_and_noreplace() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        std::fs::write(&a, b"A").unwrap();
        std::fs::create_dir(&b).unwrap();
        exchange(&a, &b).unwrap();
        assert!(a.is_dir());
        assert_eq!(std::fs::read(&b).unwrap(), b"A");
        assert_eq!(
            rename_noreplace(&a, &b).unwrap_err().raw_os_error(),
            Some(libc::EEXIST)
        );
        rename_noreplace(&a, &tmp.path().join("c")).unwrap();
        assert!(!a.exists());
    }

    #[test]
    fn separate_mounts_are_told_apart() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("d")).unwrap();
        assert!(same_mount(&tmp.path().join("d"), tmp.path()).unwrap());
        // /dev/shm is its own tmpfs on Linux machines that have it.
        let shm = Path::new("/dev/shm");
        if shm.is_dir() && Path::new("/dev").is_dir() {
            let separate =
                std::fs::metadata(shm).unwrap().dev() != std::fs::metadata("/dev").unwrap().dev();
            assert_eq!(same_mount(shm, Path::new("/dev")).unwrap(), !separate);
        }
    }
}
