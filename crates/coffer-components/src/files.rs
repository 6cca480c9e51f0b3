//! `files`: a directory tree, straight through the engine.

use coffer_engine::{SnapshotInfo, TreeBackupOptions};
use coffer_model::component::FilesSpec;

use crate::error::{ComponentError, Ctx};
use crate::{BackupContext, RestoreContext, RestoreReport};

pub(crate) fn backup(
    c: &Ctx,
    spec: &FilesSpec,
    ctx: &BackupContext,
) -> Result<SnapshotInfo, ComponentError> {
    let opts = TreeBackupOptions {
        excludes: spec.excludes.clone(),
    };
    ctx.repo
        .backup_tree(&spec.path, ctx.backup, &opts, ctx.progress.clone())
        .map_err(|e| c.engine(e))
}

pub(crate) fn restore(
    c: &Ctx,
    spec: &FilesSpec,
    ctx: &RestoreContext,
) -> Result<RestoreReport, ComponentError> {
    ctx.repo
        .restore_tree(
            &ctx.snapshot.id,
            &spec.path,
            ctx.options.mode,
            ctx.progress.clone(),
        )
        .map_err(|e| c.engine(e))?;
    Ok(RestoreReport {
        notes: vec![format!("restored into {}", spec.path.display())],
    })
}
