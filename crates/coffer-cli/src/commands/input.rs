//! Reading what the client commands send: JSON spec files, `FIELD=VALUE`
//! settings with typed values, secrets from the first line of a file.

use std::path::Path;

use serde_json::{Value, json};

use crate::error::{CliError, CliResult};

/// The JSON object in `file` (`--spec-file`), or `{}` without one.
pub fn spec_file(file: Option<&Path>) -> CliResult<Value> {
    let Some(file) = file else {
        return Ok(json!({}));
    };
    let raw = std::fs::read_to_string(file)
        .map_err(|e| CliError::usage(format!("--spec-file {}: {e}", file.display())))?;
    let spec: Value = serde_json::from_str(&raw)
        .map_err(|e| CliError::usage(format!("--spec-file {}: not JSON: {e}", file.display())))?;
    if !spec.is_object() {
        return Err(CliError::usage(format!(
            "--spec-file {}: give a JSON object",
            file.display()
        )));
    }
    Ok(spec)
}

/// `FIELD=VALUE` of a repeatable flag, split at the first `=`.
pub fn pair<'a>(pair: &'a str, flag: &str, shape: &str) -> CliResult<(&'a str, &'a str)> {
    match pair.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k, v)),
        _ => Err(CliError::usage(format!("{flag} {pair:?}: give {shape}"))),
    }
}

/// A setting's value from the command line: a number, `true`/`false` or a
/// JSON string (`"2024"`) as such, anything else as a string.
pub fn typed_value(value: &str) -> Value {
    match serde_json::from_str::<Value>(value) {
        Ok(v @ (Value::Number(_) | Value::Bool(_) | Value::String(_))) => v,
        _ => Value::String(value.to_owned()),
    }
}

/// The first line of `file`, for a secret (never given on the command line).
pub fn first_line(file: &Path, flag: &str) -> CliResult<String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| CliError::usage(format!("{flag} {}: {e}", file.display())))?;
    let line = text.lines().next().unwrap_or_default().to_owned();
    if line.is_empty() {
        return Err(CliError::usage(format!(
            "{flag} {}: the file is empty",
            file.display()
        )));
    }
    Ok(line)
}
