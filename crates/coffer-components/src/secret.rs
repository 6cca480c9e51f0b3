//! Reading the secrets component specs point at.

use coffer_model::component::Secret;

use crate::error::{ComponentError, Ctx};

/// The secret's value: literal, from the environment, or from a file (one
/// trailing newline stripped, as `echo pw > file` leaves one).
pub(crate) fn resolve(ctx: &Ctx, secret: &Secret) -> Result<String, ComponentError> {
    match secret {
        Secret::Literal(s) => Ok(s.clone()),
        Secret::Env(var) => std::env::var(var).map_err(|_| {
            ctx.invalid(format!(
                "the password should come from environment variable {var}, which is not set"
            ))
        }),
        Secret::File(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ctx.io(format!("reading the password file {}", path.display()), e))?;
            let text = text.strip_suffix('\n').unwrap_or(&text);
            Ok(text.strip_suffix('\r').unwrap_or(text).to_owned())
        }
    }
}

/// [`resolve`] for an optional secret.
pub(crate) fn resolve_opt(
    ctx: &Ctx,
    secret: Option<&Secret>,
) -> Result<Option<String>, ComponentError> {
    secret.map(|s| resolve(ctx, s)).transpose()
}
