//! The sensitive backup with a password alone (Auth0's `backup-sensitive`):
//! `POST /api/v1/backups {"sensitive": true, "password": …}` reads the
//! sensitive components and writes them straight into a password-encrypted
//! export — never into a repository, so no age key pair is needed and the
//! server may run without `[sensitive] recipients` as long as no repository
//! backup includes a sensitive component.
//!
//! An export's tar needs each component's size before its bytes, and a
//! component's native form (a dump) has no size until it is done, so each
//! is spooled first — encrypted to an age key made for this job and held
//! only in memory, so nothing sensitive touches the disk in the clear —
//! then decrypted into the export.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use coffer_engine::CancelToken;
use coffer_export::{AgeIdentity, AgeRecipients, BackupInfo, ComponentHeader, Digests};
use coffer_model::access::Scope;
use coffer_model::component::ComponentSpec;
use coffer_model::{BackupId, Label};

use crate::access::Principal;
use crate::catalog::now;
use crate::clock::rfc3339;
use crate::error::{ServiceError, ServiceResult};
use crate::exports::{self, SensitivePlan};
use crate::jobs::export::{file_writer, finish_file, record_end, write_file};
use crate::jobs::registry::{Reservation, component_key};
use crate::jobs::runner::{Timed, spawn_job, staging_fits, with_timeout};
use crate::state::{AppState, Shared};

/// The label of a sensitive backup that names none.
pub const DEFAULT_LABEL: &str = "sensitive";

/// What was started: the backup's id (it has no catalog record: only its
/// export does) and the export's.
#[derive(Debug)]
pub struct Started {
    /// `<label>-<uuid>`, as the export's manifest names it.
    pub backup_id: String,
    /// `export-<uuid>`.
    pub export_id: String,
}

/// Checks and starts a sensitive export-only backup of `names` (default:
/// every sensitive component). Needs `export` and `sensitive` on each.
pub fn start(
    state: &Shared,
    p: &Principal,
    label: Option<&str>,
    names: Option<&[String]>,
    password: String,
    keep: bool,
) -> ServiceResult<Started> {
    p.require(Scope::Export)?;
    p.require(Scope::Sensitive)?;
    let specs: Vec<ComponentSpec> = match names {
        // Every sensitive component this principal reaches: a token limited
        // to some components neither gets nor learns of the others.
        None => state
            .config
            .components
            .iter()
            .filter(|c| c.sensitive && p.sees(c.name.as_str(), true))
            .cloned()
            .collect(),
        Some(names) => {
            let mut out = Vec::new();
            for n in names {
                // The principal's reach first, so whether a component it may
                // not touch exists (or is sensitive) is not told.
                p.require_reach(n, true)?;
                let spec = state.config.component(n).ok_or_else(|| {
                    ServiceError::Invalid(format!("components: unknown component {n:?}"))
                })?;
                if !spec.sensitive {
                    return Err(ServiceError::Invalid(format!(
                        "components: {n} is not sensitive: a sensitive backup holds only \
                         sensitive components (back the others up without \"sensitive\")"
                    )));
                }
                if out.iter().any(|s: &ComponentSpec| s.name == spec.name) {
                    return Err(ServiceError::Invalid(format!(
                        "components: {n:?} is named twice"
                    )));
                }
                out.push(spec.clone());
            }
            out
        }
    };
    if specs.is_empty() {
        return Err(ServiceError::Invalid(
            "sensitive: no sensitive component (sensitive = true) is within this token's reach"
                .into(),
        ));
    }
    for s in &specs {
        p.require_component(Scope::Export, s.name.as_str(), true)?;
    }
    preflight(state, &specs)?;
    let label = Label::new(label.unwrap_or(DEFAULT_LABEL))
        .map_err(|e| ServiceError::Invalid(format!("label: {e}")))?;
    let plan = exports::plan_sensitive(state, &specs, password, keep)?;
    let backup_id = BackupId::generate(&label);
    let job_keys = specs
        .iter()
        .map(|s| component_key(s.name.as_str()))
        .collect();
    let reservation = state.jobs.reserve(backup_id.as_str(), job_keys)?;
    let pending = exports::record_sensitive(state, backup_id.as_str(), plan)?;
    let export_id = pending.row.id.clone();
    tracing::info!(export = %export_id, by = %p.id, "sensitive backup with a password started");
    // Registered before the job starts, so a shutdown from now on stops it.
    let token = CancelToken::new();
    state.jobs.register_cancel(&export_id, token.clone());
    let st = Arc::clone(state);
    let (bid, lbl) = (backup_id.to_string(), label.to_string());
    spawn_job(&export_id, move || {
        run(&st, &bid, &lbl, &specs, pending, reservation, token)
    })
    .inspect_err(|_| state.jobs.unregister(&export_id))?;
    Ok(Started {
        backup_id: backup_id.to_string(),
        export_id,
    })
}

/// Runs the job to its end and records it.
fn run(
    state: &AppState,
    backup_id: &str,
    label: &str,
    specs: &[ComponentSpec],
    plan: SensitivePlan,
    reservation: Reservation,
    token: CancelToken,
) {
    let _reservation = reservation;
    let started = Instant::now();
    let id = plan.row.id.clone();
    state.log(
        &id,
        &format!(
            "sensitive backup {backup_id} straight into export {id}: {}",
            specs
                .iter()
                .map(|s| s.name.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    let spool = state.config.staging_dir.join(format!("{SPOOL_PREFIX}{id}"));
    // A cancel (server shutdown) or the component timeout stops the source
    // at its next write.
    let result = write(state, backup_id, label, specs, &plan, &spool, &token);
    state.jobs.unregister(&id);
    if let Err(e) = std::fs::remove_dir_all(&spool)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(export = %id, "removing {}: {e}", spool.display());
    }
    record_end(state, &id, started, &result, plan.keep);
}

/// Spool directories in the staging area start with this; any left at
/// start-up belong to a job a crash ended.
pub const SPOOL_PREFIX: &str = "sensitive-";

/// Refuses when the staging area cannot hold the spooled components (all of
/// them at once, encrypted, until the export is written).
fn preflight(state: &AppState, specs: &[ComponentSpec]) -> ServiceResult<()> {
    staging_fits(state, specs)?;
    let staging = &state.config.staging_dir;
    let sources: u64 = specs
        .iter()
        .filter_map(coffer_components::source_size)
        .sum();
    // A component with a staging copy (SQLite) has it and its spool at once.
    let largest_copy = specs
        .iter()
        .filter_map(coffer_components::staging_estimate)
        .max()
        .unwrap_or(0);
    let free = coffer_targets::free_space_at(staging).unwrap_or(u64::MAX);
    let need = sources + largest_copy + state.config.preflight_reserve;
    if sources > 0 && free < need {
        return Err(ServiceError::InsufficientStorage(format!(
            "staging directory {} has {free} bytes free; the sensitive components are spooled \
             there ({sources} bytes, plus a {} MiB reserve)",
            staging.display(),
            state.config.preflight_reserve >> 20
        )));
    }
    Ok(())
}

/// Removes the spools of sensitive backups a crash interrupted.
pub fn remove_leftover_spools(staging_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(staging_dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(SPOOL_PREFIX)
            && let Err(err) = std::fs::remove_dir_all(e.path())
        {
            tracing::warn!("removing leftover spool {}: {err}", e.path().display());
        }
    }
}

/// A component's native form, spooled encrypted.
struct Spooled {
    spec: ComponentSpec,
    path: PathBuf,
    len: u64,
}

fn write(
    state: &AppState,
    backup_id: &str,
    label: &str,
    specs: &[ComponentSpec],
    plan: &SensitivePlan,
    spool: &Path,
    token: &CancelToken,
) -> Result<Digests, String> {
    let created_at = now();
    std::fs::create_dir_all(spool).map_err(|e| format!("creating {}: {e}", spool.display()))?;
    let key = AgeIdentity::generate();
    let to = AgeRecipients::parse(&[key.recipient()])?;
    let mut spooled = Vec::new();
    for spec in specs {
        let path = spool.join(format!("{}.age", spec.name));
        let len = spool_timed(state, spec, &path, &to, token)
            .map_err(|e| format!("component {}: {e}", spec.name))?;
        state.log(
            &plan.row.id,
            &format!("component {} read: {len} bytes", spec.name),
        );
        spooled.push(Spooled {
            spec: spec.clone(),
            path,
            len,
        });
    }
    let data = spooled.iter().map(|s| s.len).sum();
    write_file(state, &plan.row.id, data, |file| {
        let mut w = file_writer(file, &plan.protection)?;
        for s in &spooled {
            let header = ComponentHeader {
                name: s.spec.name.to_string(),
                kind: s.spec.kind.name().to_owned(),
                content: coffer_components::native_content(&s.spec)
                    .as_str()
                    .to_owned(),
                file_name: coffer_components::native_file_name(&s.spec),
                sealed: false,
            };
            w.add_component(header, s.len, |out| unspool(&s.path, &key, out))
                .map_err(|e| e.to_string())?;
        }
        finish_file(
            w,
            BackupInfo {
                backup_id: backup_id.to_owned(),
                label: label.to_owned(),
                created_at: rfc3339(created_at),
                exported_at: rfc3339(now()),
                sensitive: true,
            },
        )
    })
}

/// [`spool_one`] within `server.component_timeout_secs`, stopped by `token`.
fn spool_timed(
    state: &AppState,
    spec: &ComponentSpec,
    path: &Path,
    to: &AgeRecipients,
    token: &CancelToken,
) -> Result<u64, String> {
    let timeout = state.config.component_timeout;
    let (spec, path, to, staging, stop) = (
        spec.clone(),
        path.to_path_buf(),
        to.clone(),
        state.config.staging_dir.clone(),
        token.clone(),
    );
    match with_timeout(timeout, token, move || {
        spool_one(&staging, &spec, &path, &to, &stop)
    })? {
        Timed::Done(_) if token.is_cancelled() => Err("cancelled".to_owned()),
        Timed::Done(r) => r,
        Timed::TimedOut(_) => Err(format!(
            "timed out after {} s (server.component_timeout_secs) and was stopped",
            timeout.as_secs()
        )),
    }
}

/// Writes `spec`'s native form to `path`, encrypted to `to`; its plaintext
/// length. Writes fail once `token` fires, which stops the source.
fn spool_one(
    staging_dir: &Path,
    spec: &ComponentSpec,
    path: &Path,
    to: &AgeRecipients,
    token: &CancelToken,
) -> Result<u64, String> {
    let file = File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("creating {}: {e}", path.display()))?;
    let mut sealed = to
        .encryptor()
        .and_then(|e| e.wrap_output(BufWriter::new(file)))
        .map_err(|e| format!("encrypting the spool: {e}"))?;
    let mut out = Cancellable {
        inner: &mut sealed,
        token,
    };
    let n = coffer_components::download(spec, staging_dir, &mut out).map_err(|e| e.to_string())?;
    sealed
        .finish()
        .and_then(|mut w| w.flush())
        .map_err(|e| format!("writing the spool: {e}"))?;
    Ok(n)
}

/// Decrypts a spooled component into `out`.
fn unspool(path: &Path, key: &AgeIdentity, out: &mut dyn Write) -> io::Result<()> {
    let file = File::open(path)?;
    let decryptor = age::Decryptor::new_buffered(BufReader::new(file)).map_err(io::Error::other)?;
    let mut plain = decryptor
        .decrypt(std::iter::once(key.as_age() as &dyn age::Identity))
        .map_err(io::Error::other)?;
    io::copy(&mut plain, out).map(|_| ())
}

/// A writer that fails once its token fires.
struct Cancellable<'a, W: Write> {
    inner: &'a mut W,
    token: &'a CancelToken,
}

impl<W: Write> Write for Cancellable<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.token.is_cancelled() {
            return Err(io::Error::other("cancelled"));
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
