//! Where the repository password comes from: `--password-file`, then
//! `COFFER_PASSWORD`, then a prompt on the terminal. Never from a plain
//! command-line argument, which other users can read in the process list.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result, bail};

/// Reads the repository password, in the documented order of sources.
pub fn read(file: Option<&Path>, prompt: &str) -> Result<String> {
    read_from(file, "COFFER_PASSWORD", prompt)
}

/// Reads a password from `file`, else the variable `env`, else a prompt.
pub fn read_from(file: Option<&Path>, env: &str, prompt: &str) -> Result<String> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading password file {}", path.display()))?;
        // One line: a trailing newline from `echo pw > file` is not part of it.
        let pw = text.lines().next().unwrap_or_default().to_owned();
        if pw.is_empty() {
            bail!("password file {} is empty", path.display());
        }
        return Ok(pw);
    }
    if let Ok(pw) = std::env::var(env) {
        if pw.is_empty() {
            bail!("{env} is set but empty");
        }
        return Ok(pw);
    }
    if std::io::stdin().is_terminal() {
        let pw = rpassword::prompt_password(prompt).context("reading the password")?;
        if pw.is_empty() {
            bail!("empty password");
        }
        return Ok(pw);
    }
    bail!("no password: use --password-file FILE, set {env}, or run on a terminal")
}

/// Asks for a new password on the terminal, twice. Never reads
/// `COFFER_PASSWORD`: that is the password that opens the repository, not
/// the new one.
pub fn prompt_new() -> Result<String> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "no new password: use --new-password-file FILE, set COFFER_NEW_PASSWORD, or run on a terminal"
        );
    }
    let pw = rpassword::prompt_password("new password: ").context("reading the new password")?;
    if pw.is_empty() {
        bail!("empty password");
    }
    let again =
        rpassword::prompt_password("new password again: ").context("reading the new password")?;
    if again != pw {
        bail!("the two passwords differ");
    }
    Ok(pw)
}
