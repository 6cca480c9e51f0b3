//! File metadata on restore: restic stores modes in Go's `os.FileMode`
//! encoding, which we translate back, and ownership, extended attributes and
//! times are applied in the order that keeps each from undoing another
//! (chown clears set-uid bits, so it comes before chmod; times come last).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rustic_core::repofile::{Metadata, NodeType};

use crate::{EngineError, EngineResult};

/// Go's mode bits for a regular file (none: only the permission bits).
pub(crate) const GO_MODE_REGULAR: u32 = 0;
const GO_MODE_SETUID: u32 = 1 << 23;
const GO_MODE_SETGID: u32 = 1 << 22;
const GO_MODE_STICKY: u32 = 1 << 20;

/// Unix permission bits (including set-uid, set-gid, sticky) from a Go mode.
pub(crate) fn unix_mode_from_go(go: u32) -> u32 {
    let mut mode = go & 0o777;
    if go & GO_MODE_SETUID != 0 {
        mode |= 0o4000;
    }
    if go & GO_MODE_SETGID != 0 {
        mode |= 0o2000;
    }
    if go & GO_MODE_STICKY != 0 {
        mode |= 0o1000;
    }
    mode
}

pub(crate) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Applies ownership (as root only), permissions, extended attributes and the
/// modification time of `meta` to `path`.
pub(crate) fn apply(path: &Path, node_type: &NodeType, meta: &Metadata) -> EngineResult<()> {
    let ctx = |what: &str| format!("restoring {what} of {}", path.display());
    let is_link = matches!(node_type, NodeType::Symlink { .. });
    if is_root()
        && let (Some(uid), Some(gid)) = (meta.uid, meta.gid)
    {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))
            .map_err(|e| EngineError::io(ctx("owner"), e))?;
    }
    if !is_link && let Some(go) = meta.mode {
        fs::set_permissions(path, fs::Permissions::from_mode(unix_mode_from_go(go)))
            .map_err(|e| EngineError::io(ctx("permissions"), e))?;
    }
    for xattr in &meta.extended_attributes {
        let value = xattr.value.as_deref().unwrap_or_default();
        let res = if is_link {
            // Linux allows user.* attributes on symlinks only for privileged
            // namespaces; failing here is not worth failing the restore.
            xattr::set(path, &xattr.name, value).or(Ok(()))
        } else {
            xattr::set(path, &xattr.name, value)
        };
        res.map_err(|e: std::io::Error| {
            EngineError::io(ctx(&format!("extended attribute {}", xattr.name)), e)
        })?;
    }
    if let Some(mtime) = meta.mtime {
        let (secs, nanos) = split_time(&mtime);
        let t = filetime::FileTime::from_unix_time(secs, nanos);
        filetime::set_symlink_file_times(path, t, t)
            .map_err(|e| EngineError::io(ctx("times"), e))?;
    }
    Ok(())
}

/// A time as whole seconds (rounded down) and nanoseconds, as `filetime`
/// takes it.
pub(crate) fn split_time(t: &rustic_core::jiff::Timestamp) -> (i64, u32) {
    let (mut secs, mut nanos) = (t.as_second(), t.subsec_nanosecond());
    if nanos < 0 {
        // before 1970: jiff counts the fraction towards zero, filetime up from the second below
        secs -= 1;
        nanos += 1_000_000_000;
    }
    (secs, nanos.unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_modes() {
        assert_eq!(unix_mode_from_go(0o644), 0o644);
        assert_eq!(unix_mode_from_go((1 << 31) | 0o755), 0o755);
        assert_eq!(
            unix_mode_from_go(GO_MODE_SETUID | GO_MODE_STICKY | 0o700),
            0o5700
        );
    }
}
