//! Browsing a backup: the entries of one directory of a files component's
//! snapshot — what an operator looks at before restoring part of it. The
//! same rules as showing the backup (`backups:read`, the component within
//! the caller's limits, `sensitive` for a sensitive one); blocking.

use std::path::PathBuf;

use coffer_engine::{EngineError, TreeEntry};
use coffer_model::access::{BackupStatus, Scope};

use crate::access::Principal;
use crate::error::{ServiceError, ServiceResult};
use crate::lookup::{find_backup, is_sensitive};
use crate::state::AppState;

/// The entries of directory `path` (relative; empty for the top) of
/// component `name` in backup `id`, by name.
pub fn list(
    state: &AppState,
    p: &Principal,
    id: &str,
    name: &str,
    path: &str,
) -> ServiceResult<Vec<TreeEntry>> {
    p.require(Scope::BackupsRead)?;
    let b = find_backup(state, id)?;
    // Before anything about the component: a caller limited to others
    // learns nothing from a 404.
    p.require_reach(name, false)?;
    let c = state
        .catalog
        .backup_components(id)?
        .into_iter()
        .find(|c| c.component == name)
        .ok_or_else(|| ServiceError::NotFound(format!("backup {id} has no component {name:?}")))?;
    p.require_component(Scope::BackupsRead, name, is_sensitive(state, &c))?;
    if c.kind != "files" {
        return Err(ServiceError::Invalid(format!(
            "component {name} ({}) is stored as one stream, not a directory tree: download or restore it whole",
            c.kind
        )));
    }
    if c.sealed {
        return Err(ServiceError::Conflict(format!(
            "component {name} is sealed to an age recipient: its tree is one encrypted archive the server cannot read (restore it with its identity, or export it)"
        )));
    }
    let Some(snapshot) = c.snapshot_id.filter(|_| c.status == BackupStatus::Ready) else {
        return Err(ServiceError::Conflict(format!(
            "component {name} of backup {id} is {:?}: only READY components are browsed",
            c.status
        )));
    };
    let rel = relative_path("path", path)?;
    state
        .repo(&b.target)?
        .list_dir(&snapshot, &rel)
        .map_err(|e| match e {
            EngineError::NotFound(m) => ServiceError::NotFound(m),
            EngineError::InvalidInput(m) => ServiceError::Invalid(format!("path: {m}")),
            EngineError::SealedWithoutIdentity { .. } | EngineError::Locked { .. } => {
                ServiceError::Conflict(e.to_string())
            }
            other => ServiceError::Upstream(other.to_string()),
        })
}

/// `s` as a path of plain names below a snapshot's root (empty: the
/// root). Split on `/` by hand: `Path::components` would quietly drop the
/// `.` and empty segments this refuses.
pub fn relative_path(field: &str, s: &str) -> ServiceResult<PathBuf> {
    let s = s.strip_suffix('/').unwrap_or(s);
    if s.is_empty() {
        return Ok(PathBuf::new());
    }
    let bad = |why: &str| ServiceError::Invalid(format!("{field}: {s:?} {why}"));
    if s.len() > 4096 {
        return Err(bad("is longer than 4096 bytes"));
    }
    if s.starts_with('/') {
        return Err(bad("must be relative to the component's top"));
    }
    let mut path = PathBuf::new();
    for part in s.split('/') {
        if part.is_empty() || part == "." || part == ".." || part.contains('\0') {
            return Err(bad("holds an empty, `.`, `..` or NUL segment"));
        }
        path.push(part);
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_plain_names_below_the_top() {
        assert_eq!(relative_path("path", "").unwrap(), PathBuf::new());
        assert_eq!(relative_path("path", "a/b/").unwrap(), PathBuf::from("a/b"));
        for bad in ["/etc", "a/../b", "..", "a//b", "./a", "a/.", "a\0b"] {
            let err = relative_path("path", bad).unwrap_err().to_string();
            assert!(err.starts_with("path: "), "{bad}: {err}");
        }
    }
}
