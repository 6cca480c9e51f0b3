//! Reading the secrets component specs point at.

use coffer_model::component::Secret;

use crate::error::{ComponentError, Ctx};

/// The secret's value (see [`coffer_targets::resolve_secret`]), as a
/// component error naming the component.
pub(crate) fn resolve(ctx: &Ctx, secret: &Secret) -> Result<String, ComponentError> {
    coffer_targets::resolve_secret(secret).map_err(|m| ctx.invalid(m))
}

/// [`resolve`] for an optional secret.
pub(crate) fn resolve_opt(
    ctx: &Ctx,
    secret: Option<&Secret>,
) -> Result<Option<String>, ComponentError> {
    secret.map(|s| resolve(ctx, s)).transpose()
}
