//! What every restore through the server asks for — which components,
//! overrides, options, the identity of sealed components — and following
//! it to its end: shared by `backup restore`, `restore upload` and
//! `component restore`.

use clap::Args;
use serde_json::{Value, json};

use crate::client::{Answer, Client, segment, watch};
use crate::commands::Outcome;
use crate::commands::answer::{print, text};
use crate::commands::backup::{final_outcome, parse_set};
use crate::error::{CliError, CliResult};
use crate::output::Output;

#[derive(Debug, Args)]
pub struct RestoreChoices {
    /// A component to restore (repeat; default all of them).
    #[arg(long = "component")]
    components: Vec<String>,
    /// An override, COMPONENT.FIELD=VALUE (repeat), e.g. db.database=app_restored or
    /// uploads.path=/srv/restores/uploads; numbers and true/false are sent as such
    /// (quote a string that looks like one: db.database='"2024"'). The server decides
    /// which fields a login may change (docs/api.md, "Restore overrides").
    #[arg(long = "set", value_name = "COMPONENT.FIELD=VALUE")]
    overrides: Vec<String>,
    /// Restore only one file or directory of a files component, COMPONENT=PATH
    /// (PATH below the component's top, as `coffer backup ls` shows it; repeat for
    /// other components). It goes back where it was (use --mode overwrite to replace
    /// it there), or into the directory a `--set COMPONENT.path=DIR` names. Only
    /// the components named here are restored, unless --component says otherwise.
    #[arg(long = "part", value_name = "COMPONENT=PATH")]
    parts: Vec<String>,
    /// What to do with a non-empty destination directory.
    #[arg(long, value_parser = ["refuse", "overwrite", "mirror"])]
    mode: Option<String>,
    /// Drop a database's objects before restoring into it.
    #[arg(long)]
    clean: bool,
    /// Do not restore ownership (PostgreSQL `--no-owner`).
    #[arg(long)]
    no_owner: bool,
    /// The age identity opening sealed (sensitive) components: a file as age-keygen writes it.
    #[arg(long, value_name = "FILE")]
    age_identity_file: Option<std::path::PathBuf>,
    /// Wait for the end, showing each component's progress.
    #[arg(long)]
    wait: bool,
}

impl RestoreChoices {
    /// The request's JSON (`components`, `overrides`, `options`, `age_identity`).
    pub fn body(&self) -> CliResult<Value> {
        let mut body = json!({});
        let mut parts = serde_json::Map::new();
        for part in &self.parts {
            let Some((component, path)) = part
                .split_once('=')
                .filter(|(c, p)| !c.is_empty() && !p.is_empty())
            else {
                return Err(CliError::usage(format!(
                    "--part {part:?}: write COMPONENT=PATH"
                )));
            };
            parts.insert(component.to_owned(), json!(path));
        }
        if !self.components.is_empty() {
            body["components"] = json!(self.components);
        } else if !parts.is_empty() {
            body["components"] = json!(parts.keys().collect::<Vec<_>>());
        }
        if !parts.is_empty() {
            body["parts"] = Value::Object(parts);
        }
        let mut overrides = serde_json::Map::new();
        for set in &self.overrides {
            let (component, field, value) = parse_set(set)?;
            let fields = overrides.entry(component).or_insert_with(|| json!({}));
            fields[field] = value;
        }
        if !overrides.is_empty() {
            body["overrides"] = Value::Object(overrides);
        }
        let options = self.options();
        if options.as_object().is_some_and(|o| !o.is_empty()) {
            body["options"] = options;
        }
        if let Some(file) = &self.age_identity_file {
            let identity = std::fs::read_to_string(file).map_err(|e| {
                CliError::usage(format!("--age-identity-file {}: {e}", file.display()))
            })?;
            body["age_identity"] = json!(identity);
        }
        Ok(body)
    }

    /// `options` alone (mode, clean, no_owner), as a component restore sends it.
    pub fn options(&self) -> Value {
        let mut options = serde_json::Map::new();
        if let Some(mode) = &self.mode {
            options.insert("mode".into(), json!(mode));
        }
        if self.clean {
            options.insert("clean".into(), json!(true));
        }
        if self.no_owner {
            options.insert("no_owner".into(), json!(true));
        }
        Value::Object(options)
    }

    /// Prints the started restore or, with --wait, follows it to its end.
    pub fn follow(
        &self,
        client: &Client,
        started: &Answer,
        what: &str,
        out: Output,
    ) -> CliResult<Outcome> {
        let Some(restore) = started.value["id"].as_str() else {
            print(out, started, |v| format!("started: {v}"));
            return Ok(Outcome::Done);
        };
        if !self.wait {
            print(out, started, |_| {
                format!("restore {restore} {what} started")
            });
            return Ok(Outcome::Done);
        }
        if !out.json {
            println!("restore {restore} {what} started");
        }
        let path = format!("/api/v1/restores/{}", segment(restore));
        let done = watch::until_done(client, &path, "RESTORING", out)?;
        print(out, &done, |r| {
            let mut s = format!("restore {}: {}", text(&r["id"]), text(&r["status"]));
            if let Some(err) = r["error"].as_str() {
                s.push_str(&format!(": {err}"));
            }
            s
        });
        Ok(final_outcome(&done.value))
    }
}
