//! `files`: a directory tree, straight through the engine.

use coffer_model::component::FilesSpec;

use crate::error::{ComponentError, Ctx};
use crate::sink::Sink;
use crate::{RestoreContext, RestoreReport};

pub(crate) fn backup<T>(
    c: &Ctx,
    spec: &FilesSpec,
    sink: impl Sink<Out = T>,
) -> Result<T, ComponentError> {
    sink.tree(&spec.path, &spec.excludes)
        .map_err(|e| c.engine(e))
}

pub(crate) fn restore(
    c: &Ctx,
    spec: &FilesSpec,
    ctx: &RestoreContext,
) -> Result<RestoreReport, ComponentError> {
    ctx.tree_into(c, &spec.path)?;
    Ok(RestoreReport {
        notes: vec![format!("restored into {}", spec.path.display())],
    })
}
