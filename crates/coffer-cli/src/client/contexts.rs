//! Saved logins ("contexts"): which server, with which credentials, in a
//! file only its owner can read — `$XDG_CONFIG_HOME/coffer/contexts.json`
//! (default `~/.config/coffer/contexts.json`), mode 0600 in a 0700
//! directory, replaced whole on every change so a crash never leaves half
//! a file.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{CliError, CliResult};

/// One saved login.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Context {
    /// The server, e.g. `https://backup.example.com:8420` (no trailing `/`).
    pub url: String,
    /// `jwt:<login token>` after a user's login, or an API token; none after `coffer logout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The user logged in, for messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// When the login token expires (RFC 3339), for messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// A CA certificate (PEM) the server's certificate must chain to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// The server's certificate is not checked (`coffer login --insecure`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
}

/// Every saved login, and which one commands use by default.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contexts {
    /// The context used without `--context`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    /// By name.
    #[serde(default)]
    pub contexts: BTreeMap<String, Context>,
}

/// Where the contexts file lives.
pub fn path() -> CliResult<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".config"),
            None => {
                return Err(CliError::usage(
                    "neither XDG_CONFIG_HOME nor HOME is set: nowhere to keep logins (set COFFER_URL and COFFER_TOKEN instead)",
                ));
            }
        },
    };
    Ok(base.join("coffer").join("contexts.json"))
}

impl Contexts {
    /// The saved contexts; none if the file does not exist yet.
    pub fn load(path: &Path) -> CliResult<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(CliError::failure(
                    "contexts",
                    format!("reading {}: {e}", path.display()),
                ));
            }
        };
        serde_json::from_str(&text).map_err(|e| {
            CliError::usage(format!(
                "{} is not a contexts file Coffer can read ({e}); remove it and log in again",
                path.display()
            ))
        })
    }

    /// Writes the file: a 0600 temporary beside it, synced, renamed over it.
    pub fn save(&self, path: &Path) -> CliResult<()> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            CliError::failure("contexts", format!("{what} {}: {e}", path.display()))
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| fail("creating the directory of", &e))?;
        let text = serde_json::to_string_pretty(self).map_err(|e| fail("encoding", &e))?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| fail("writing", &e))?;
        // Before the first byte: the tokens are secrets.
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| fail("writing", &e))?;
        tmp.write_all(text.as_bytes())
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| fail("writing", &e))?;
        tmp.persist(path).map_err(|e| fail("writing", &e.error))?;
        Ok(())
    }
}
