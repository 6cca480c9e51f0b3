//! Exports as a service: portable `.coffer` files of READY backups
//! (`docs/export-format.md`) — created, listed, shown, downloaded and
//! deleted, each checked against the caller. The file itself is written by
//! [`crate::jobs::export`].

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use coffer_export::Protection;
use coffer_model::access::{BackupStatus, Scope};
use coffer_model::component::ComponentSpec;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::access::Principal;
use crate::catalog::{
    BackupComponentRow, BackupRow, ExportProtection, ExportRow, ExportStatus, now,
};
use crate::error::{ServiceError, ServiceResult};
use crate::jobs::export::{ExportJob, export_file, run};
use crate::jobs::registry::backup_key;
use crate::jobs::runner::spawn_job;
use crate::lookup::{backup_snapshots, find_backup};
use crate::state::{AppState, Shared};

/// One `age1…` key or several.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Recipients {
    /// One key.
    One(String),
    /// Several keys: any matching identity opens the file.
    Many(Vec<String>),
}

/// Create an export. Exactly one of `password` and `age_recipient`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// A passphrase (at least 12 characters): the file is encrypted with it
    /// (age scrypt, work factor 2^18), and only it opens the file.
    #[serde(default)]
    pub password: Option<String>,
    /// age X25519 public key(s) (`age1…`) instead: for scripts (`age -d -i key.txt`).
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub age_recipient: Option<Recipients>,
    /// Export only the sensitive components (still sealed to their own
    /// recipients), as a separate file. Needs the `sensitive` scope.
    #[serde(default)]
    pub sensitive: bool,
    /// Keep the file until it is deleted, whatever `server.export_ttl_secs`
    /// says.
    #[serde(default)]
    pub keep: bool,
}

/// The protection a request asks for, and its name for the catalog. A
/// password is all that protects the file once it leaves the server: it
/// needs `server.min_export_password_len` characters.
fn protection_of(
    state: &AppState,
    password: Option<String>,
    recipients: Option<Recipients>,
) -> ServiceResult<(Protection, ExportProtection)> {
    match (password, recipients) {
        (Some(p), None) => {
            let min = state.config.min_export_password_len;
            if p.chars().count() < min {
                return Err(ServiceError::Invalid(format!(
                    "password: at least {min} characters (it alone protects the file; the \
                     minimum is the setting server.min_export_password_len)"
                )));
            }
            Ok((Protection::Passphrase(p.into()), ExportProtection::Password))
        }
        (None, Some(r)) => Protection::recipients(&match r {
            Recipients::One(k) => vec![k],
            Recipients::Many(k) => k,
        })
        .map(|p| (p, ExportProtection::Age))
        .map_err(|e| ServiceError::Invalid(format!("age_recipient: {e}"))),
        _ => Err(ServiceError::Invalid(
            "give exactly one of \"password\" and \"age_recipient\" to encrypt the export".into(),
        )),
    }
}

/// A new export's catalog row (`EXPORTING`).
fn new_row(
    backup_id: &str,
    sensitive: bool,
    protection: ExportProtection,
    components: Vec<String>,
) -> ExportRow {
    ExportRow {
        id: format!("export-{}", uuid::Uuid::new_v4()),
        backup_id: backup_id.to_owned(),
        status: ExportStatus::Exporting,
        error: None,
        sensitive,
        protection,
        file_name: if sensitive {
            format!("{backup_id}.sensitive.coffer")
        } else {
            format!("{backup_id}.coffer")
        },
        components,
        size: None,
        sha256: None,
        md5: None,
        created_at: now(),
        finished_at: None,
        expires_at: None,
    }
}

/// Whether `p` may touch every component in export `e`: a sensitive export,
/// or a component configured sensitive now (it may have been marked so
/// after its unsealed backup), needs the `sensitive` scope.
fn require_export_reach(state: &AppState, p: &Principal, e: &ExportRow) -> ServiceResult<()> {
    for c in &e.components {
        p.require_component(
            Scope::Export,
            c,
            e.sensitive || configured_sensitive(state, c),
        )?;
    }
    Ok(())
}

/// Whether coffer.toml marks component `name` sensitive.
fn configured_sensitive(state: &AppState, name: &str) -> bool {
    state.config.component(name).is_some_and(|s| s.sensitive)
}

/// The exports of `backup_id` that `p` may see (none without `export`).
pub fn visible_of_backup(
    state: &AppState,
    p: &Principal,
    backup_id: &str,
) -> ServiceResult<Vec<ExportRow>> {
    if !p.has(Scope::Export) {
        return Ok(Vec::new());
    }
    Ok(state
        .catalog
        .exports_of_backup(backup_id)?
        .into_iter()
        .filter(|e| require_export_reach(state, p, e).is_ok())
        .collect())
}

/// What the export of a backup requested with a password (or age
/// recipients, for a schedule) will be.
pub struct ExportPlan {
    protection: Protection,
    kind: ExportProtection,
    components: Vec<String>,
    keep: bool,
}

/// An export recorded with its backup, made once the backup ends.
pub struct PendingExport {
    row: ExportRow,
    protection: Protection,
    keep: bool,
}

impl PendingExport {
    /// The export's id.
    pub fn id(&self) -> &str {
        &self.row.id
    }
}

/// Checks the export a backup request asks for (Terraform Enterprise's
/// "backup with a password"): the `export` scope on every non-sensitive
/// component; sensitive components are never in a password export.
pub fn plan_after_backup(
    state: &AppState,
    p: &Principal,
    specs: &[ComponentSpec],
    password: Option<String>,
    recipients: Option<Recipients>,
    keep: bool,
) -> ServiceResult<ExportPlan> {
    p.require(Scope::Export)?;
    let (protection, kind) = protection_of(state, password, recipients)?;
    let components: Vec<String> = specs
        .iter()
        .filter(|s| !s.sensitive)
        .map(|s| s.name.to_string())
        .collect();
    for c in &components {
        p.require_component(Scope::Export, c, false)?;
    }
    if components.is_empty() {
        return Err(ServiceError::Invalid(
            "components: only sensitive components were chosen: they are never in a password \
             export"
                .into(),
        ));
    }
    Ok(ExportPlan {
        protection,
        kind,
        components,
        keep,
    })
}

/// The export a sensitive backup with a password alone writes
/// ([`crate::jobs::sensitive_export`]): its recorded row and protection.
pub struct SensitivePlan {
    /// The export, `EXPORTING`.
    pub row: ExportRow,
    /// The password's protection.
    pub protection: Protection,
    /// Kept until deleted.
    pub keep: bool,
}

/// Checks the password of a sensitive backup with a password alone; the
/// scopes and components are the job's to check.
pub fn plan_sensitive(
    state: &AppState,
    specs: &[ComponentSpec],
    password: String,
    keep: bool,
) -> ServiceResult<ExportPlan> {
    let (protection, kind) = protection_of(state, Some(password), None)?;
    Ok(ExportPlan {
        protection,
        kind,
        components: specs.iter().map(|s| s.name.to_string()).collect(),
        keep,
    })
}

/// Records the export of a sensitive backup with a password alone
/// (`EXPORTING`, sensitive, named after `backup_id`).
pub fn record_sensitive(
    state: &AppState,
    backup_id: &str,
    plan: ExportPlan,
) -> ServiceResult<SensitivePlan> {
    let row = new_row(backup_id, true, ExportProtection::Password, plan.components);
    state.catalog.insert_export(&row)?;
    Ok(SensitivePlan {
        row,
        protection: plan.protection,
        keep: plan.keep,
    })
}

/// Records the planned export of backup `backup_id` (`EXPORTING`, linked
/// from the backup) before the backup runs.
pub fn record_pending(
    state: &AppState,
    backup_id: &str,
    plan: ExportPlan,
) -> ServiceResult<PendingExport> {
    let row = new_row(backup_id, false, plan.kind, plan.components);
    state.catalog.insert_export(&row)?;
    state.log(
        &row.id,
        &format!("waiting for backup {backup_id} to be READY"),
    );
    Ok(PendingExport {
        row,
        protection: plan.protection,
        keep: plan.keep,
    })
}

/// Makes a pending export once its backup ended (on the backup's thread);
/// a backup that is not READY makes the export `ERROR` too.
pub fn start_after_backup(state: &Shared, pending: PendingExport) {
    let PendingExport {
        row,
        protection,
        keep,
    } = pending;
    let fail = |reason: String| {
        state.log(&row.id, &reason);
        state.logs.flush();
        if let Err(e) = state.catalog.finish_export(&row.id, Err(&reason)) {
            tracing::error!(export = %row.id, "recording the export's end: {e}");
        }
    };
    let backup = match state.catalog.backup(&row.backup_id) {
        Ok(Some(b)) => b,
        Ok(None) => return fail(format!("backup {} is gone", row.backup_id)),
        Err(e) => return fail(e.to_string()),
    };
    if backup.status != BackupStatus::Ready {
        return fail(format!(
            "backup {} ended {}: nothing to export{}",
            backup.id,
            backup.status,
            backup
                .error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        ));
    }
    let comps = match state.catalog.backup_components(&backup.id) {
        Ok(c) => c
            .into_iter()
            .filter(|c| row.components.contains(&c.component))
            .collect(),
        Err(e) => return fail(e.to_string()),
    };
    match state.jobs.reserve(&row.id, vec![backup_key(&backup.id)]) {
        Ok(reservation) => {
            let job = ExportJob {
                id: row.id.clone(),
                backup,
                components: comps,
                protection,
                sensitive: row.sensitive,
                keep,
            };
            run(state, job, reservation);
        }
        Err(e) => fail(e.message()),
    }
}

/// What an export of `backup` holds: its unsealed components, or with
/// `sensitive` its sealed ones, each checked against the caller.
fn export_components(
    state: &AppState,
    p: &Principal,
    backup: &BackupRow,
    comps: Vec<BackupComponentRow>,
    sensitive: bool,
) -> ServiceResult<Vec<BackupComponentRow>> {
    let sealed: BTreeSet<String> = backup_snapshots(state, &backup.target, &backup.id)?
        .into_iter()
        .filter(|s| s.sealed)
        .map(|s| s.id)
        .collect();
    let chosen: Vec<BackupComponentRow> = comps
        .into_iter()
        .filter(|c| c.snapshot_id.as_ref().is_some_and(|id| sealed.contains(id)) == sensitive)
        .collect();
    if chosen.is_empty() {
        return Err(ServiceError::Invalid(if sensitive {
            format!("backup {} has no sensitive components", backup.id)
        } else {
            format!(
                "backup {} has only sensitive components: export them with \"sensitive\": true",
                backup.id
            )
        }));
    }
    for c in &chosen {
        let marked = sensitive || configured_sensitive(state, &c.component);
        p.require_component(Scope::Export, &c.component, marked)?;
    }
    Ok(chosen)
}

/// Exports a READY backup as one encrypted file; returns the export's id.
/// Blocking (lists the backup's snapshots).
pub fn create(
    state: &Shared,
    p: &Principal,
    backup_id: &str,
    req: ExportRequest,
) -> ServiceResult<String> {
    p.require(Scope::Export)?;
    let (protection, kind) = protection_of(state, req.password, req.age_recipient)?;
    let backup = find_backup(state, backup_id)?;
    if backup.status != BackupStatus::Ready {
        return Err(ServiceError::Conflict(format!(
            "backup {backup_id} is {}: only READY backups are exported",
            backup.status
        )));
    }
    let comps = state.catalog.backup_components(backup_id)?;
    let chosen = export_components(state, p, &backup, comps, req.sensitive)?;
    let names = chosen.iter().map(|c| c.component.clone()).collect();
    let row = new_row(backup_id, req.sensitive, kind, names);
    // Reserve before recording, so a conflict leaves no row behind.
    let reservation = state.jobs.reserve(&row.id, vec![backup_key(&backup.id)])?;
    state.catalog.insert_export(&row)?;
    let job = ExportJob {
        id: row.id.clone(),
        backup,
        components: chosen,
        protection,
        sensitive: row.sensitive,
        keep: req.keep,
    };
    let st = Arc::clone(state);
    spawn_job(&row.id, move || run(&st, job, reservation))?;
    Ok(row.id)
}

/// The exports of a backup that the caller may see.
pub fn list(state: &AppState, p: &Principal, backup_id: &str) -> ServiceResult<Vec<ExportRow>> {
    p.require(Scope::Export)?;
    find_backup(state, backup_id)?;
    visible_of_backup(state, p, backup_id)
}

/// One export, if the caller may touch every component in it.
pub fn show(state: &AppState, p: &Principal, id: &str) -> ServiceResult<ExportRow> {
    p.require(Scope::Export)?;
    let e = state
        .catalog
        .export(id)?
        .ok_or_else(|| ServiceError::NotFound(format!("no export with id {id:?}")))?;
    require_export_reach(state, p, &e)?;
    Ok(e)
}

/// Deletes an export and its file; returns what it was.
pub fn delete(state: &AppState, p: &Principal, id: &str) -> ServiceResult<ExportRow> {
    let e = show(state, p, id)?;
    if e.status == ExportStatus::Exporting {
        return Err(ServiceError::Conflict(format!(
            "export {id} is still being written"
        )));
    }
    match std::fs::remove_file(export_file(state, id)) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => {
            return Err(ServiceError::internal(format!(
                "removing export {id}: {err}"
            )));
        }
    }
    state.catalog.delete_export(id)?;
    tracing::info!(export = %id, by = %p.id, "export deleted");
    Ok(e)
}

/// A READY export's row and file, for a download: `Gone` once it expired,
/// `Conflict` while it is written or after it failed.
pub fn for_download(
    state: &AppState,
    p: &Principal,
    id: &str,
) -> ServiceResult<(ExportRow, PathBuf)> {
    let e = show(state, p, id)?;
    let expired = e.status == ExportStatus::Expired
        || (e.status == ExportStatus::Ready && e.expires_at.is_some_and(|t| t <= now()));
    if expired {
        return Err(ServiceError::Gone(format!(
            "export {id} expired at {}: its file was removed; create a new export",
            e.expires_at.map(crate::clock::rfc3339).unwrap_or_default()
        )));
    }
    if e.status != ExportStatus::Ready {
        return Err(ServiceError::Conflict(format!(
            "export {id} is {}{}",
            e.status,
            e.error
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        )));
    }
    let path = export_file(state, id);
    Ok((e, path))
}
