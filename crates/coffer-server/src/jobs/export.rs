//! Export jobs: one portable `<backup-id>.coffer` file per request (the
//! format is `coffer-export`'s), spooled in `<data_dir>/exports` (0700,
//! files 0600) after a free-space check, downloadable until it expires.
//!
//! A file appears under its final name only once it is complete and synced:
//! it is written as `<export-id>.coffer.part` and renamed. A full disk or
//! any other failure removes the partial file and marks the export `ERROR`;
//! there is never a truncated download.

use std::fs::File;
use std::io::{self, BufWriter};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use coffer_engine::PortableForm;
use coffer_export::{BackupInfo, ComponentHeader, DigestWriter, Digests, ExportWriter, Protection};

use crate::catalog::{BackupComponentRow, BackupRow, ExportStatus, now};
use crate::clock::rfc3339;
use crate::jobs::registry::Reservation;
use crate::state::{AppState, Shared};

/// Where spooled exports live.
pub fn exports_dir(state: &AppState) -> PathBuf {
    state.config.data_dir.join("exports")
}

/// The finished file of export `id`.
pub fn export_file(state: &AppState, id: &str) -> PathBuf {
    exports_dir(state).join(format!("{id}.coffer"))
}

/// What to export.
pub struct ExportJob {
    /// `export-<uuid>`.
    pub id: String,
    /// The backup.
    pub backup: BackupRow,
    /// The components to include, with their snapshots.
    pub components: Vec<BackupComponentRow>,
    /// Passphrase or recipients.
    pub protection: Protection,
    /// Only sensitive (sealed) components.
    pub sensitive: bool,
    /// Kept until deleted, whatever `server.export_ttl_secs` says.
    pub keep: bool,
}

/// Runs an export to its end and records the outcome. Blocking.
pub fn run(state: &Shared, job: ExportJob, reservation: Reservation) {
    let _reservation = reservation;
    let id = job.id.clone();
    let started = Instant::now();
    state.log(
        &id,
        &format!(
            "export {id} of backup {} started: {}",
            job.backup.id,
            job.components
                .iter()
                .map(|c| c.component.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    let result = write_export(state, &job);
    record_end(state, &id, started, &result, job.keep);
}

/// Records how export `id` ended: `READY` with its digests and expiry
/// (none when `keep`, or with `export_ttl_secs = "never"`), or `ERROR`.
pub(crate) fn record_end(
    state: &AppState,
    id: &str,
    started: Instant,
    result: &Result<Digests, String>,
    keep: bool,
) {
    let secs = started.elapsed().as_secs_f64();
    let recorded = match result {
        Ok(d) => {
            // Kept until deleted: asked for, or `export_ttl_secs = "never"`.
            let expires_at = match state.config.export_ttl {
                Some(ttl) if !keep => {
                    Some(now() + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2))
                }
                _ => None,
            };
            state.log(
                id,
                &format!(
                    "export {id} READY after {secs:.1} s: {} bytes, SHA-256 {}",
                    d.size, d.sha256
                ),
            );
            state.logs.flush();
            state
                .metrics
                .job_finished("export", ExportStatus::Ready.as_str(), secs, d.size);
            state.catalog.finish_export(id, Ok((d, expires_at)))
        }
        Err(reason) => {
            state.log(
                id,
                &format!("export {id} ERROR after {secs:.1} s: {reason}"),
            );
            state.logs.flush();
            state
                .metrics
                .job_finished("export", ExportStatus::Error.as_str(), secs, 0);
            state.catalog.finish_export(id, Err(reason))
        }
    };
    if let Err(e) = recorded {
        tracing::error!(export = %id, "recording the end of the export: {e}");
    }
}

fn write_export(state: &AppState, job: &ExportJob) -> Result<Digests, String> {
    let repo = state.repo(&job.backup.target).map_err(|e| e.message())?;
    let mut forms: Vec<(&BackupComponentRow, &str, PortableForm)> = Vec::new();
    for c in &job.components {
        let snapshot = c
            .snapshot_id
            .as_deref()
            .ok_or_else(|| format!("component {} has no snapshot", c.component))?;
        let form = repo
            .portable_form(snapshot)
            .map_err(|e| format!("component {}: {e}", c.component))?;
        forms.push((c, snapshot, form));
    }
    let data: u64 = forms.iter().map(|(_, _, f)| f.len).sum();
    write_file(state, &job.id, data, |file| {
        fill(state, &repo, job, file, &forms)
    })
}

/// Writes export `id`'s file through `fill`, after checking there is room
/// for `data` bytes: as `<id>.coffer.part`, synced, renamed into place; a
/// failure removes the partial file.
pub(crate) fn write_file(
    state: &AppState,
    id: &str,
    data: u64,
    fill: impl FnOnce(File) -> Result<Digests, String>,
) -> Result<Digests, String> {
    let dir = exports_dir(state);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("securing {}: {e}", dir.display()))?;
    // Compression rarely makes data bigger; the margin covers what it and
    // age's 16 bytes per 64 KiB add in the worst case.
    let need = data + data / 100 + (16 << 20);
    let free = coffer_targets::free_space_at(&dir)
        .map_err(|e| format!("free space of {}: {e}", dir.display()))?;
    if free < need {
        return Err(format!(
            "not enough space in {}: {free} bytes free, the export may need {need} bytes",
            dir.display()
        ));
    }
    let part = dir.join(format!("{id}.coffer.part"));
    let file = File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&part)
        .map_err(|e| format!("creating {}: {e}", part.display()))?;
    let result = fill(file).and_then(|digests| {
        let done = export_file(state, id);
        std::fs::rename(&part, &done)
            .map_err(|e| format!("moving {} into place: {e}", part.display()))?;
        sync_dir(&dir)?;
        coffer_model::crash::crash_point("export.file.written");
        Ok(digests)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    result
}

fn fill(
    state: &AppState,
    repo: &coffer_engine::Repo,
    job: &ExportJob,
    file: File,
    forms: &[(&BackupComponentRow, &str, PortableForm)],
) -> Result<Digests, String> {
    let mut w = file_writer(file, &job.protection)?;
    for (c, snapshot, form) in forms {
        let header = ComponentHeader {
            name: c.component.clone(),
            kind: c.kind.clone(),
            content: form.content.as_str().to_owned(),
            file_name: form.file_name.clone(),
            sealed: form.sealed,
        };
        w.add_component(header, form.len, |out| {
            repo.write_portable(snapshot, out)
                .map(|_| ())
                .map_err(io::Error::other)
        })
        .map_err(|e| e.to_string())?;
        state.log(
            &job.id,
            &format!("component {} ({} bytes) written", c.component, form.len),
        );
        coffer_model::crash::crash_point("export.file.writing");
    }
    let info = BackupInfo {
        backup_id: job.backup.id.clone(),
        label: job.backup.label.clone(),
        created_at: rfc3339(job.backup.created_at),
        exported_at: rfc3339(now()),
        sensitive: job.sensitive,
    };
    finish_file(w, info)
}

/// The writer an export file is made with.
pub(crate) type FileWriter = ExportWriter<DigestWriter<BufWriter<File>>>;

/// Starts writing an export into `file` with `protection`.
pub(crate) fn file_writer(file: File, protection: &Protection) -> Result<FileWriter, String> {
    let out = DigestWriter::new(BufWriter::with_capacity(1 << 20, file));
    ExportWriter::new(out, protection).map_err(|e| e.to_string())
}

/// Writes the manifest, flushes and syncs the file; its digests.
pub(crate) fn finish_file(w: FileWriter, info: BackupInfo) -> Result<Digests, String> {
    let (out, _manifest) = w.finish(info).map_err(|e| e.to_string())?;
    let (buffered, digests) = out.finish();
    let file = buffered
        .into_inner()
        .map_err(|e| format!("writing the export: {}", e.error()))?;
    file.sync_all()
        .map_err(|e| format!("syncing the export: {e}"))?;
    Ok(digests)
}

fn sync_dir(dir: &Path) -> Result<(), String> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("syncing {}: {e}", dir.display()))
}

/// Removes what a stopped server left behind (`*.part` files) and then,
/// every quarter of `server.export_ttl_secs` (at most a minute), the files
/// of exports whose time is up. The catalog work runs on blocking threads.
pub async fn sweep(state: Shared) {
    let dir = exports_dir(&state);
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().ends_with(".coffer.part") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    // Often enough that a file outlives its time by at most a quarter of it.
    let every = std::time::Duration::from_secs(
        (state.config.export_ttl.map_or(240, |t| t.as_secs()) / 4).clamp(1, 60),
    );
    loop {
        let st = Arc::clone(&state);
        let swept = tokio::task::spawn_blocking(move || expire(&st)).await;
        if let Err(e) = swept {
            tracing::warn!("expiring exports: {e}");
        }
        tokio::time::sleep(every).await;
    }
}

fn expire(state: &AppState) {
    match state.catalog.expire_exports(now()) {
        Ok(ids) => {
            for id in ids {
                let _ = std::fs::remove_file(export_file(state, &id));
                state.log(&id, "export expired: file removed");
            }
        }
        Err(e) => tracing::warn!("expiring exports: {e}"),
    }
}
