//! Targets declared under `[[targets]]` in coffer.toml, kept in step with
//! the file at every start: a new one is opened, validated and given a
//! repository (a new one, or the existing one with its
//! `repository_password`); a changed one is validated again; one no longer
//! in the file goes back to being managed over the API. The file is their
//! source of truth, so the API cannot change or remove them (409 naming the
//! file), and their names are unique across the file and the API.

use coffer_model::target::DeclaredTarget;

use crate::catalog::TargetMode;
use crate::error::{ServiceError, ServiceResult};
use crate::keys::random_secret;
use crate::rebuild::rebuild_target;
use crate::state::AppState;
use crate::targets::open_validated;

/// A generated repository password, to show once.
#[derive(Debug)]
pub struct NewPassword {
    /// The target.
    pub target: String,
    /// Its new repository's password.
    pub password: String,
}

/// Brings the catalog in step with the file's `[[targets]]`; returns the
/// repository passwords generated for new repositories. A declared target
/// that cannot be opened, fails Validate (when new or changed), has a
/// repository without a `repository_password`, or takes the name of a
/// target added over the API stops the start, naming the target.
pub fn apply(state: &AppState) -> ServiceResult<Vec<NewPassword>> {
    let mut generated = Vec::new();
    for d in &state.config.targets {
        if let Some(pw) = apply_one(state, d)? {
            generated.push(NewPassword {
                target: d.spec.name.to_string(),
                password: pw,
            });
        }
    }
    if let Some(d) = state.config.targets.iter().find(|d| d.default) {
        state.catalog.set_default_target(d.spec.name.as_str())?;
    }
    for row in state.catalog.targets()? {
        let still = state
            .config
            .targets
            .iter()
            .any(|d| d.spec.name.as_str() == row.name);
        if row.declared && !still {
            tracing::warn!(
                target = %row.name,
                "no longer declared in {}: kept, and managed over the API from now on",
                state.config.source.display()
            );
            let mut row = row;
            row.declared = false;
            state.catalog.update_target(&row)?;
        }
    }
    Ok(generated)
}

/// What a failure of declared target `name` says.
fn failed(name: &str, e: ServiceError) -> ServiceError {
    ServiceError::Invalid(format!("[[targets]] {name}: {}", e.message()))
}

/// One declared target; the generated password of a new repository.
fn apply_one(state: &AppState, d: &DeclaredTarget) -> ServiceResult<Option<String>> {
    let name = d.spec.name.as_str();
    let stored = state.catalog.target(name)?;
    if let Some(row) = &stored {
        if !row.declared {
            return Err(ServiceError::Conflict(format!(
                "[[targets]] {name}: a target of that name was added over the API; names are \
                 unique across {} and the API: rename one (DELETE /api/v1/targets/{name} removes \
                 the API's)",
                state.config.source.display()
            )));
        }
        if state.target_spec(row)? == d.spec {
            // Unchanged: probe it, but a target that is down for now does
            // not keep the server (and its other targets) from starting.
            match open_validated(&d.spec) {
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(target = %name, "declared target fails Validate: {}", e.message())
                }
            }
            return Ok(None);
        }
    }
    let password = d
        .repository_password
        .as_ref()
        .map(|s| s.resolve())
        .transpose()
        .map_err(|e| {
            failed(
                name,
                ServiceError::Invalid(format!("repository_password: {e}")),
            )
        })?;
    let (target, _) = open_validated(&d.spec).map_err(|e| failed(name, e))?;
    let storage = target.storage();
    let exists = coffer_engine::Repo::exists(&*storage)
        .map_err(|e| failed(name, ServiceError::Upstream(e.to_string())))?;
    let (password, generated) = match (exists, password, &stored) {
        (true, Some(pw), _) => (pw, None),
        // A changed spec pointing at the same repository: its password is known.
        (true, None, Some(row)) => (state.target_password(row)?, None),
        (true, None, None) => {
            return Err(failed(
                name,
                ServiceError::Invalid(
                    "it already holds a repository: give its repository_password".into(),
                ),
            ));
        }
        // A changed spec pointing at an empty place: making a new repository
        // there would drop the stored password of the old one, and with it
        // every backup recorded for this target.
        (false, _, Some(_)) => {
            return Err(failed(
                name,
                ServiceError::Conflict(
                    "its new location holds no repository, and its backups are in the old one: \
                     move the repository there first (restic copy or a file copy), or declare \
                     the new place under a new name"
                        .into(),
                ),
            ));
        }
        (false, given, None) => {
            let generated = given.is_none();
            let pw = given.unwrap_or_else(|| random_secret(""));
            coffer_engine::Repo::init(target.storage(), &pw)
                .map_err(|e| failed(name, ServiceError::Invalid(e.to_string())))?;
            let shown = generated.then(|| pw.clone());
            (pw, shown)
        }
    };
    if exists {
        coffer_engine::Repo::open(target.storage(), &password).map_err(|e| {
            failed(
                name,
                ServiceError::Invalid(format!("repository_password: {e}")),
            )
        })?;
    }
    let first = state.catalog.targets()?.is_empty();
    let mut row = state.seal_target(&d.spec, &password, TargetMode::Own, first)?;
    row.declared = true;
    match &stored {
        Some(old) => {
            row.is_default = old.is_default;
            state.catalog.update_target(&row)?;
            state.repos.forget(name);
            tracing::info!(target = %name, "declared target changed in {}", state.config.source.display());
        }
        None => {
            state.catalog.insert_target(&row)?;
            tracing::info!(target = %name, kind = %row.kind, "declared target added");
        }
    }
    if exists {
        match rebuild_target(state, name) {
            Ok(report) => tracing::info!(target = %name, "existing repository: {report:?}"),
            Err(e) => {
                // Undone, so the next start sees a new or changed target
                // again and reads its backups then (an unchanged one is
                // only probed).
                match &stored {
                    Some(old) => state.catalog.update_target(old)?,
                    None => state.catalog.delete_target(name)?,
                };
                state.repos.forget(name);
                return Err(failed(name, e));
            }
        }
    }
    Ok(generated)
}
