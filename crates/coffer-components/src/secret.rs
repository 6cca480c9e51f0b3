//! Reading the secrets component specs point at.

use coffer_model::component::Secret;

use crate::error::{ComponentError, Ctx};

/// The secret's value (see [`Secret::resolve`]), as a component error
/// naming the component.
pub(crate) fn resolve(ctx: &Ctx, secret: &Secret) -> Result<String, ComponentError> {
    secret.resolve().map_err(|e| ctx.invalid(e.0))
}

/// [`resolve`] for an optional secret.
pub(crate) fn resolve_opt(
    ctx: &Ctx,
    secret: Option<&Secret>,
) -> Result<Option<String>, ComponentError> {
    secret.map(|s| resolve(ctx, s)).transpose()
}
