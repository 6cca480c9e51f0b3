//! What `coffer token` and `coffer user` share: who a new token or user is
//! and what it may do, and how they print one line per entry and a revoke
//! or disable.

use clap::Args;
use coffer_server::ServiceError;

use crate::error::{CliError, CliResult};
use crate::exit::ExitCode;
use crate::output::Output;

/// Who a new token or user is and what it may do.
#[derive(Debug, Args)]
pub struct AccessArgs {
    /// What the token is for, or the user's login name.
    #[arg(long)]
    pub name: String,
    /// A scope (repeat): backups:read, backups:write, backups:delete, restore,
    /// restore:redirect, export, targets:read, targets:write, maintenance, schedules:read,
    /// schedules:write, notifications:read, notifications:write, tokens:admin, sensitive,
    /// admin.
    #[arg(long = "scope", required = true)]
    pub scopes: Vec<String>,
    /// Limit it to this component (repeat).
    #[arg(long = "component")]
    components: Vec<String>,
}

impl AccessArgs {
    /// `None` when no component was named (no limit).
    pub fn components(&self) -> Option<Vec<String>> {
        (!self.components.is_empty()).then(|| self.components.clone())
    }
}

/// One line of `token list` / `user list`.
pub fn access_line(
    id: &str,
    name: &str,
    scopes: &[String],
    components: Option<&[String]>,
    flag: &str,
) -> String {
    let comps = components
        .map(|c| format!("  components={}", c.join(",")))
        .unwrap_or_default();
    format!("{id}  {name:<30} {}{comps}{flag}", scopes.join(","))
}

/// Reports a revoke/disable: `what` (token, user) `id` was `done`, or not
/// found — a usage error, like an unknown snapshot.
pub fn switched_off(
    out: Output,
    result: Result<bool, ServiceError>,
    what: &str,
    id: &str,
    done: &str,
) -> CliResult {
    if !result.map_err(CliError::access)? {
        return Err(CliError::new(
            ExitCode::Usage,
            "not_found",
            format!("no {what} with id {id:?}"),
        ));
    }
    out.result(&serde_json::json!({ done: id }), |_| {
        format!("{what} {id} {done}")
    });
    Ok(())
}
