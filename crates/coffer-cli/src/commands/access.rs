//! What `coffer token` and `coffer user` share: who a new token or user is
//! and what it may do, `--remote` (over the API instead of the data
//! directory), and how they print one line per entry and a revoke or
//! disable.

use clap::Args;
use coffer_server::ServiceError;
use serde_json::{Value, json};

use crate::client::Client;
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

    /// The API's `name`, `scopes` and `components`.
    pub fn body(&self) -> Value {
        let mut body = json!({ "name": self.name, "scopes": self.scopes });
        if let Some(c) = self.components() {
            body["components"] = json!(c);
        }
        body
    }
}

/// `--remote` / `--context`: the token and user commands over the API of a
/// logged-in server instead of the data directory.
#[derive(Debug, Args)]
pub struct RemoteArgs {
    /// Talk to the server you logged in to (`coffer login`, or COFFER_URL and
    /// COFFER_TOKEN) over its API, with that login's rights, instead of opening the
    /// data directory.
    #[arg(long, global = true, conflicts_with_all = ["config", "data_dir"])]
    remote: bool,
    /// The login to use (implies --remote).
    #[arg(long, global = true, conflicts_with_all = ["config", "data_dir"])]
    context: Option<String>,
}

impl RemoteArgs {
    /// The server's client when the command goes over the API.
    pub fn client(&self) -> CliResult<Option<Client>> {
        if !self.remote && self.context.is_none() {
            return Ok(None);
        }
        Client::from_context(self.context.as_deref()).map(Some)
    }
}

/// The lines of a token or user list from the API: `off` names the field
/// that, when set, adds `flag` (`revoked_at`, `disabled_at`).
pub fn access_lines(list: &Value, off: &str, flag: &str) -> String {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    list.as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let components = e["components"]
                .is_array()
                .then(|| strings(&e["components"]));
            access_line(
                e["id"].as_str().unwrap_or_default(),
                e["name"].as_str().unwrap_or_default(),
                &strings(&e["scopes"]),
                components.as_deref(),
                if e[off].is_string() { flag } else { "" },
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
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
