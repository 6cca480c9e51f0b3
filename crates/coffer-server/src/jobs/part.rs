//! Restoring one file or directory of a files component (`parts` in a
//! restore request): what is checked before the job starts, and where the
//! part goes. Without a `path` override it goes back where it was — the
//! directory above it inside the component's configured path, whose
//! existing part must not lead out of that path through a symbolic link;
//! with one, into that directory (already checked by the override rules).

use std::path::{Path, PathBuf};

use coffer_engine::{EngineError, Repo, RestoreMode, SnapshotInfo};
use coffer_model::component::{ComponentKind, ComponentSpec};

use crate::browse::relative_path;
use crate::error::{ServiceError, ServiceResult};

/// A part to restore and the destination spec it goes into.
#[derive(Debug)]
pub struct PlannedPart {
    /// The file or directory, relative to the component's top.
    pub rel: PathBuf,
    /// The spec with `path` set to the directory the part goes into.
    pub dest: ComponentSpec,
}

/// Checks `parts.<component>` (`field`) against the component's snapshot
/// and decides where the part goes.
pub fn plan(
    field: &str,
    requested: &str,
    mut dest: ComponentSpec,
    overridden: bool,
    repo: &Repo,
    snapshot: &SnapshotInfo,
    mode: RestoreMode,
) -> ServiceResult<PlannedPart> {
    let ComponentKind::Files(files) = &mut dest.kind else {
        return Err(ServiceError::Invalid(format!(
            "{field}: only files components restore a part; {} is restored whole",
            dest.name
        )));
    };
    if snapshot.sealed {
        return Err(ServiceError::Conflict(format!(
            "{field}: component {} is sealed: its tree is one encrypted archive, restored whole \
             with its identity",
            dest.name
        )));
    }
    if mode == RestoreMode::Mirror {
        return Err(ServiceError::Invalid(format!(
            "options.mode: mirror would remove everything else beside the part ({field}); use \
             overwrite, or refuse into an empty place"
        )));
    }
    let rel = relative_path(field, requested)?;
    let (Some(name), Some(parent)) = (rel.file_name(), rel.parent()) else {
        return Err(ServiceError::Invalid(format!(
            "{field}: name a file or directory below the component's top (empty restores \
             nothing; leave `parts` out to restore it whole)"
        )));
    };
    let listed = repo.list_dir(&snapshot.id, parent).map_err(|e| match e {
        EngineError::NotFound(_) | EngineError::InvalidInput(_) => {
            ServiceError::Invalid(format!("{field}: {requested:?} is not in the backup"))
        }
        other => ServiceError::Upstream(other.to_string()),
    })?;
    if !listed.iter().any(|e| e.name == name.to_string_lossy()) {
        return Err(ServiceError::Invalid(format!(
            "{field}: {requested:?} is not in the backup"
        )));
    }
    if !overridden {
        let into = files.path.join(parent);
        stays_inside(field, &files.path, &into)?;
        files.path = into;
    }
    Ok(PlannedPart { rel, dest })
}

/// Refuses `into` when the part of it that exists resolves outside `root`
/// (a symbolic link in the live tree pointing elsewhere).
fn stays_inside(field: &str, root: &Path, into: &Path) -> ServiceResult<()> {
    let mut existing = into;
    while !existing.exists() {
        match existing.parent() {
            Some(p) => existing = p,
            None => break,
        }
    }
    let resolve = |p: &Path| {
        p.canonicalize()
            .map_err(|e| ServiceError::Invalid(format!("{field}: resolving {}: {e}", p.display())))
    };
    if !resolve(existing)?.starts_with(resolve(root)?) {
        return Err(ServiceError::Forbidden(format!(
            "{field}: {} leads out of the component's directory {} through a symbolic link: \
             restore the part into a chosen path (`overrides`) instead",
            existing.display(),
            root.display()
        )));
    }
    Ok(())
}
