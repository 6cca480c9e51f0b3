//! Backup and restore jobs: reservations (409 on conflicts), hooks, parallel
//! components with timeouts, cancellation, and the catalog records.
//!
//! Every job is a tokio task; the engine and the component drivers block, so
//! each component runs on the blocking pool. A job records its states as it
//! goes, so a crash leaves it `BACKING_UP`/`RESTORING` in the catalog, which
//! the next start turns into `ERROR` ("interrupted by restart").

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coffer_components::{BackupContext, RestoreContext, RestoreOptions, RestoreSource};
use coffer_engine::{
    CancelToken, EngineError, ProgressFn, ProgressInfo, SnapshotFilter, SnapshotInfo,
};
use coffer_model::access::{BackupStatus, RestoreStatus};
use coffer_model::component::ComponentSpec;
use coffer_model::{BackupId, BackupRef};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Semaphore;

use crate::config::HookFailure;
use crate::error::ApiError;
use crate::state::Shared;

/// What running jobs hold, so conflicting requests get 409.
#[derive(Debug, Default)]
pub struct Jobs {
    /// Reserved keys (`component:<name>`, `backup:<id>`) → the job holding them.
    busy: Mutex<HashMap<String, String>>,
    /// Cancel tokens of running backups, by job id (one per component).
    cancels: Mutex<HashMap<String, Vec<CancelToken>>>,
    /// Progress of running components, by (job id, component).
    progress: Arc<Mutex<HashMap<(String, String), ProgressInfo>>>,
}

/// Keys held by a job; released when dropped.
#[derive(Debug)]
pub struct Reservation {
    state: Shared,
    keys: Vec<String>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut busy = self
            .state
            .jobs
            .busy
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for k in &self.keys {
            busy.remove(k);
        }
    }
}

impl Jobs {
    /// No jobs.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reserves every key for `job`, or none: 409 naming the job in the way.
    pub fn reserve(state: &Shared, job: &str, keys: Vec<String>) -> Result<Reservation, ApiError> {
        let mut busy = state.jobs.busy.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((k, holder)) = keys.iter().find_map(|k| busy.get(k).map(|h| (k, h))) {
            let what = k.replace(':', " ");
            return Err(ApiError::conflict(format!(
                "{what} is busy with job {holder}"
            )));
        }
        for k in &keys {
            busy.insert(k.clone(), job.to_owned());
        }
        Ok(Reservation {
            state: Arc::clone(state),
            keys,
        })
    }

    /// Fires every cancel token of `job`; false if it is not running.
    pub fn cancel(&self, job: &str) -> bool {
        let cancels = self.cancels.lock().unwrap_or_else(|e| e.into_inner());
        match cancels.get(job) {
            Some(tokens) => {
                for t in tokens {
                    t.cancel();
                }
                true
            }
            None => false,
        }
    }

    /// How far a running component of `job` has got.
    pub fn progress(&self, job: &str, component: &str) -> Option<ProgressInfo> {
        self.progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(job.to_owned(), component.to_owned()))
            .copied()
    }

    /// A progress callback for a component that records into [`Self::progress`];
    /// the entry is removed by [`Self::progress_done`].
    fn progress_fn(&self, job: &str, component: &str) -> ProgressFn {
        let map = Arc::clone(&self.progress);
        let key = (job.to_owned(), component.to_owned());
        Arc::new(move |p: ProgressInfo| {
            map.lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key.clone(), p);
        })
    }

    fn progress_done(&self, job: &str, component: &str) {
        self.progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(job.to_owned(), component.to_owned()));
    }

    /// Fires every running backup's cancel tokens; returns how many jobs run.
    pub fn cancel_all(&self) -> usize {
        let cancels = self.cancels.lock().unwrap_or_else(|e| e.into_inner());
        for t in cancels.values().flatten() {
            t.cancel();
        }
        self.busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .collect::<HashSet<_>>()
            .len()
    }

    /// Whether any job still holds a reservation.
    pub fn any_running(&self) -> bool {
        !self
            .busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    fn register_cancel(&self, job: &str, token: CancelToken) {
        self.cancels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(job.to_owned())
            .or_default()
            .push(token);
    }

    fn was_cancelled(&self, job: &str) -> bool {
        self.cancels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(job)
            .is_some_and(|t| t.first().is_some_and(CancelToken::is_cancelled))
    }

    fn unregister(&self, job: &str) {
        self.cancels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(job);
    }
}

/// Reservation key of a component (backups and restores of it exclude each other).
pub fn component_key(name: &str) -> String {
    format!("component:{name}")
}

/// Reservation key of a backup being restored or exported.
pub fn backup_key(id: &str) -> String {
    format!("backup:{id}")
}

// ------------------------------------------------------------------ hooks

/// Which hooks.
#[derive(Debug, Clone, Copy)]
enum HookPoint {
    PreBackup,
    PostBackup,
    PreRestore,
    PostRestore,
}

impl HookPoint {
    fn name(self) -> &'static str {
        match self {
            Self::PreBackup => "pre-backup",
            Self::PostBackup => "post-backup",
            Self::PreRestore => "pre-restore",
            Self::PostRestore => "post-restore",
        }
    }
}

/// Runs the hooks at `point` in order; output goes to the job's log. The
/// first failure stops the rest and is returned.
async fn run_hooks(
    state: &Shared,
    job: &str,
    point: HookPoint,
    env: &[(&str, String)],
) -> Result<(), String> {
    let hooks = &state.config.hooks;
    let list = match point {
        HookPoint::PreBackup => &hooks.pre_backup,
        HookPoint::PostBackup => &hooks.post_backup,
        HookPoint::PreRestore => &hooks.pre_restore,
        HookPoint::PostRestore => &hooks.post_restore,
    };
    let timeout = Duration::from_secs(hooks.timeout_secs);
    for cmd in list {
        let log = |line: String| state.catalog.log(job, &line);
        log(format!("{} hook: {cmd}", point.name()));
        let started = Instant::now();
        let mut command = tokio::process::Command::new("sh");
        command
            .arg("-c")
            .arg(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .env("COFFER_JOB_ID", job)
            .env("COFFER_HOOK", point.name());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("{} hook {cmd:?} could not start: {e}", point.name()))?;
        let out = child.stdout.take();
        let err = child.stderr.take();
        let pump = |stream: Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>,
                    tag: &'static str| {
            let state = Arc::clone(state);
            let job = job.to_owned();
            tokio::spawn(async move {
                if let Some(s) = stream {
                    let mut lines = BufReader::new(s).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        state.catalog.log(&job, &format!("  {tag}: {line}"));
                    }
                }
            })
        };
        let p1 = pump(out.map(|s| Box::new(s) as _), "stdout");
        let p2 = pump(err.map(|s| Box::new(s) as _), "stderr");
        let status = tokio::time::timeout(timeout, child.wait()).await;
        let result = match status {
            Err(_) => {
                let _ = child.kill().await;
                Err(format!(
                    "{} hook {cmd:?} timed out after {} s and was killed",
                    point.name(),
                    timeout.as_secs()
                ))
            }
            Ok(Err(e)) => Err(format!("{} hook {cmd:?}: {e}", point.name())),
            Ok(Ok(s)) if s.success() => Ok(()),
            Ok(Ok(s)) => Err(format!("{} hook {cmd:?} failed ({s})", point.name())),
        };
        let _ = tokio::join!(p1, p2);
        log(format!(
            "{} hook {} in {:.1} s",
            point.name(),
            if result.is_ok() {
                "succeeded"
            } else {
                "FAILED"
            },
            started.elapsed().as_secs_f64()
        ));
        result?;
    }
    Ok(())
}

/// Records each component's outcome through `record`, and the components
/// whose task ended without one (a panic) as failures. Returns the failures
/// as `name: reason` lines.
fn record_outcomes<T>(
    names: &[String],
    outcomes: &[(String, Result<T, String>)],
    log: &dyn Fn(String),
    record: impl Fn(&str, Result<&T, &str>) -> crate::catalog::CatalogResult<()>,
) -> Vec<String> {
    let mut failures = Vec::new();
    for (name, r) in outcomes {
        if let Err(e) = r {
            failures.push(format!("{name}: {e}"));
        }
        if let Err(e) = record(name, r.as_ref().map_err(String::as_str)) {
            log(format!("recording component {name}: {e}"));
        }
    }
    let seen: HashSet<&String> = outcomes.iter().map(|(n, _)| n).collect();
    for n in names.iter().filter(|n| !seen.contains(n)) {
        const LOST: &str = "the component task ended without a result";
        failures.push(format!("{n}: {LOST}"));
        let _ = record(n, Err(LOST));
    }
    failures
}

/// Runs one future per item, at most `limit` at once, and collects their
/// `(component, outcome)` results; a task that panicked is logged and left
/// out (see [`record_outcomes`]).
async fn run_components<I, F, T>(
    items: Vec<I>,
    limit: usize,
    log: &(dyn Fn(String) + Sync),
    run: impl Fn(I) -> F,
) -> Vec<(String, Result<T, String>)>
where
    F: std::future::Future<Output = (String, Result<T, String>)> + Send + 'static,
    T: Send + 'static,
{
    let limit = Arc::new(Semaphore::new(limit));
    let mut tasks = Vec::new();
    for item in items {
        let limit = Arc::clone(&limit);
        let fut = run(item);
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await;
            fut.await
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        match t.await {
            Ok(o) => outcomes.push(o),
            Err(e) => log(format!("a component task failed: {e}")),
        }
    }
    outcomes
}

// ------------------------------------------------------------------ backup

/// A backup to run.
#[derive(Debug)]
pub struct BackupJob {
    /// Its id.
    pub id: BackupId,
    /// The target written to.
    pub target: String,
    /// The components, in request order.
    pub components: Vec<ComponentSpec>,
}

/// Runs a recorded backup to its end. Never panics the server: every failure
/// becomes an `ERROR` state with the reason.
pub async fn run_backup(state: Shared, job: BackupJob, reservation: Reservation) {
    let _reservation = reservation;
    let id = job.id.to_string();
    let started = Instant::now();
    let log = |line: String| state.catalog.log(&id, &line);
    let names: Vec<String> = job.components.iter().map(|c| c.name.to_string()).collect();
    log(format!(
        "backup {id} to target {} started: {}",
        job.target,
        names.join(", ")
    ));
    let tokens: Vec<CancelToken> = job.components.iter().map(|_| CancelToken::new()).collect();
    for t in &tokens {
        state.jobs.register_cancel(&id, t.clone());
    }
    let env = [
        ("COFFER_BACKUP_ID", id.clone()),
        ("COFFER_COMPONENTS", names.join(",")),
    ];

    let repo = {
        let state = Arc::clone(&state);
        let target = job.target.clone();
        tokio::task::spawn_blocking(move || state.repo(&target))
            .await
            .map_err(|e| ApiError::internal(format!("opening the repository: {e}")))
            .and_then(|r| r)
    };
    // Post-backup hooks run whenever pre-backup hooks were started, so an
    // application a pre-hook quiesced is always resumed.
    let mut pre_hooks_started = false;
    let setup = match repo {
        Err(e) => Err(e.message),
        Ok(repo) => {
            pre_hooks_started = true;
            run_hooks(&state, &id, HookPoint::PreBackup, &env)
                .await
                .map(|()| repo)
        }
    };
    let mut outcomes: Vec<(String, Result<SnapshotInfo, String>)> = Vec::new();
    // The repository, once opened: a cancel removes what finished through it.
    let mut opened = None;
    match setup {
        Err(reason) => {
            log(format!("nothing was backed up: {reason}"));
            for n in &names {
                outcomes.push((n.clone(), Err(reason.clone())));
            }
        }
        Ok(repo) => {
            opened = Some(repo.clone());
            let count = u32::try_from(job.components.len()).unwrap_or(u32::MAX);
            let items: Vec<_> = job
                .components
                .iter()
                .cloned()
                .zip(tokens.iter().cloned())
                .collect();
            outcomes = run_components(
                items,
                state.config.parallel_components,
                &log,
                |(spec, token)| {
                    let state = Arc::clone(&state);
                    let repo = repo.with_cancel(token.clone());
                    // Sensitive components are sealed to the configured age
                    // recipients (the configuration refuses them without).
                    let repo = match &state.config.sensitive_recipients {
                        Some(r) if spec.sensitive => repo.sealed_to(Arc::clone(r)),
                        _ => repo,
                    };
                    let bref = BackupRef::new(job.id.clone(), spec.name.clone(), count);
                    let id = id.clone();
                    async move {
                        let name = spec.name.to_string();
                        if token.is_cancelled() {
                            return (name, Err("cancelled".to_owned()));
                        }
                        let r = backup_component(&state, &id, repo, spec, bref, token).await;
                        (name, r)
                    }
                },
            )
            .await;
        }
    }
    if pre_hooks_started && let Err(e) = run_hooks(&state, &id, HookPoint::PostBackup, &env).await {
        // The data is captured; a failing post-hook (e.g. resuming the
        // application) is the operator's urgent problem, not a bad backup.
        log(format!("WARNING: {e}"));
    }

    let cancelled = state.jobs.was_cancelled(&id);
    state.jobs.unregister(&id);
    if cancelled {
        // Nothing partial is kept: forget what finished before the cancel.
        let done: Vec<String> = outcomes
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok().map(|s| s.id.clone()))
            .collect();
        if let (false, Some(repo)) = (done.is_empty(), opened) {
            match forget_snapshots(repo, done).await {
                Ok(n) => log(format!(
                    "cancelled: removed {n} finished component snapshot(s)"
                )),
                Err(e) => log(format!(
                    "cancelled, but removing finished snapshots failed: {e}"
                )),
            }
        }
        for (_, r) in &mut outcomes {
            *r = Err("cancelled".to_owned());
        }
    }
    let bytes_added = outcomes
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok().map(|s| s.bytes_added))
        .sum();
    let failures = record_outcomes(&names, &outcomes, &log, |name, r| {
        state.catalog.finish_backup_component(&id, name, r)
    });
    let (status, error) = if cancelled {
        (BackupStatus::Error, Some("cancelled".to_owned()))
    } else if failures.is_empty() {
        (BackupStatus::Ready, None)
    } else {
        (BackupStatus::Error, Some(failures.join("; ")))
    };
    if let Err(e) = state.catalog.finish_backup(&id, status, error.as_deref()) {
        tracing::error!(backup = %id, "recording the end of the backup: {e}");
    }
    let secs = started.elapsed().as_secs_f64();
    state
        .metrics
        .job_finished("backup", status.as_str(), secs, bytes_added);
    if status == BackupStatus::Ready {
        for n in &names {
            state.metrics.component_succeeded(n);
        }
    }
    log(format!("backup {id} {status} after {secs:.1} s"));
    tracing::info!(backup = %id, %status, "backup finished in {secs:.1} s");
}

async fn backup_component(
    state: &Shared,
    id: &str,
    repo: coffer_engine::Repo,
    spec: ComponentSpec,
    bref: BackupRef,
    token: CancelToken,
) -> Result<SnapshotInfo, String> {
    let name = spec.name.to_string();
    let log = |line: String| state.catalog.log(id, &line);
    if let Err(e) = state.catalog.backup_component_started(id, &name) {
        log(format!("recording the start of {name}: {e}"));
    }
    log(format!("component {name} ({}) started", spec.kind.name()));
    let started = Instant::now();
    let staging = state.config.staging_dir.clone();
    let progress = state.jobs.progress_fn(id, &name);
    // For removing a snapshot that lands after a timeout.
    let keep = repo.clone();
    let mut task = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&staging)
            .map_err(|e| format!("creating staging directory {}: {e}", staging.display()))?;
        let ctx = BackupContext {
            repo: &repo,
            backup: &bref,
            staging_dir: &staging,
            progress: Some(progress),
        };
        coffer_components::backup(&spec, &ctx).map_err(describe_component_error)
    });
    let timeout = state.config.component_timeout;
    let result = match tokio::time::timeout(timeout, &mut task).await {
        Ok(joined) => {
            match joined.unwrap_or_else(|e| Err(format!("the component panicked: {e}"))) {
                // Whatever error the stopped source caused, the cause is the cancel.
                Err(_) if token.is_cancelled() => Err("cancelled".to_owned()),
                r => r,
            }
        }
        Err(_) => {
            // Stop the source, then wait for the engine to notice: nothing is
            // recorded, and no thread is left writing to the repository.
            token.cancel();
            let late = task.await;
            if let Ok(Ok(snap)) = late {
                // Finished at the very moment it was stopped: not kept, the
                // state says it failed.
                if let Err(e) = forget_snapshots(keep, vec![snap.id.clone()]).await {
                    log(format!("removing the late snapshot {}: {e}", snap.id));
                }
            }
            Err(format!(
                "timed out after {} s (server.component_timeout_secs) and was stopped; nothing was recorded",
                timeout.as_secs()
            ))
        }
    };
    state.jobs.progress_done(id, &name);
    match &result {
        Ok(s) => log(format!(
            "component {name} READY in {:.1} s: snapshot {}, {} files, {} bytes (+{} stored)",
            started.elapsed().as_secs_f64(),
            &s.id[..8.min(s.id.len())],
            s.files,
            s.bytes,
            s.bytes_added
        )),
        Err(e) => log(format!(
            "component {name} ERROR after {:.1} s: {e}",
            started.elapsed().as_secs_f64()
        )),
    }
    result
}

/// Removes snapshots a job must not keep (a cancelled or timed-out backup's).
async fn forget_snapshots(repo: coffer_engine::Repo, ids: Vec<String>) -> Result<usize, String> {
    tokio::task::spawn_blocking(move || repo.forget(&ids).map_err(|e| e.to_string()))
        .await
        .map_err(|e| e.to_string())?
}

/// A component error as one line; the engine's `Cancelled` reads "cancelled".
fn describe_component_error(e: coffer_components::ComponentError) -> String {
    match e {
        coffer_components::ComponentError::Engine {
            source: EngineError::Cancelled { .. },
            ..
        } => "cancelled".to_owned(),
        other => other.to_string(),
    }
}

// ------------------------------------------------------------------ restore

/// One component to restore.
#[derive(Debug, Clone)]
pub struct RestoreItem {
    /// Where to restore it (the configured spec, or an override of it).
    pub dest: ComponentSpec,
    /// Where its data comes from.
    pub source: ItemSource,
}

/// Where a restored component's data comes from.
#[derive(Debug, Clone)]
pub enum ItemSource {
    /// A snapshot in the job's target.
    Snapshot(String),
    /// A file of an upload (an export's entry, a native backup), verified.
    File(coffer_components::PortableFile),
}

/// A restore to run.
#[derive(Debug)]
pub struct RestoreJob {
    /// `restore-<uuid>`.
    pub id: String,
    /// The backup restored (for an upload, the id the file names).
    pub backup_id: String,
    /// Its target; `None` when every item comes from a file.
    pub target: Option<String>,
    /// The components.
    pub items: Vec<RestoreItem>,
    /// Options for every component.
    pub options: RestoreOptions,
    /// Opens sealed components (from the request; never stored).
    pub identity: Option<Arc<coffer_engine::AgeIdentity>>,
    /// The upload's files, removed when the job ends.
    pub spool: Option<tempfile::TempDir>,
}

/// Runs a recorded restore to its end.
pub async fn run_restore(state: Shared, job: RestoreJob, reservation: Reservation) {
    let _reservation = reservation;
    let id = job.id.clone();
    let started = Instant::now();
    let log = |line: String| state.catalog.log(&id, &line);
    let names: Vec<String> = job.items.iter().map(|i| i.dest.name.to_string()).collect();
    log(format!(
        "restore {id} of backup {} started: {}",
        job.backup_id,
        names.join(", ")
    ));
    let env = [
        ("COFFER_BACKUP_ID", job.backup_id.clone()),
        ("COFFER_RESTORE_ID", id.clone()),
        ("COFFER_COMPONENTS", names.join(",")),
    ];
    let snapshots = {
        let state = Arc::clone(&state);
        let target = job.target.clone();
        let backup_id = job.backup_id.clone();
        tokio::task::spawn_blocking(move || {
            let Some(target) = target else {
                return Ok((None, Vec::new()));
            };
            let repo = state.repo(&target).map_err(|e| e.message)?;
            let snaps = repo
                .snapshots(&SnapshotFilter {
                    backup_id: Some(backup_id),
                    ..SnapshotFilter::default()
                })
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((Some(repo), snaps))
        })
        .await
        .unwrap_or_else(|e| Err(format!("opening the repository: {e}")))
    };
    let mut outcomes: Vec<(String, Result<Vec<String>, String>)> = Vec::new();
    let mut post_hook_error = None;
    let pre = match &snapshots {
        Err(e) => Err(e.clone()),
        Ok(_) => run_hooks(&state, &id, HookPoint::PreRestore, &env).await,
    };
    match (pre, snapshots) {
        (Err(reason), _) | (Ok(()), Err(reason)) => {
            log(format!("nothing was restored: {reason}"));
            for n in &names {
                outcomes.push((n.clone(), Err(reason.clone())));
            }
        }
        (Ok(()), Ok((repo, snaps))) => {
            outcomes = run_components(
                job.items.clone(),
                state.config.parallel_components,
                &log,
                |item| {
                    let state = Arc::clone(&state);
                    let name = item.dest.name.to_string();
                    let source = match item.source {
                        ItemSource::File(f) => Ok(Source::File(f)),
                        ItemSource::Snapshot(sid) => {
                            match (&repo, snaps.iter().find(|s| s.id == sid)) {
                                (Some(repo), Some(snap)) => Ok(Source::Snapshot(Box::new((
                                    match &job.identity {
                                        Some(identity) => repo.with_identity(Arc::clone(identity)),
                                        None => repo.clone(),
                                    },
                                    snap.clone(),
                                )))),
                                _ => Err(format!("snapshot {sid} is no longer in the repository")),
                            }
                        }
                    };
                    let options = job.options.clone();
                    let id = id.clone();
                    async move {
                        let r = match source {
                            Ok(source) => {
                                restore_component(&state, &id, item.dest, source, options).await
                            }
                            Err(e) => Err(e),
                        };
                        (name, r)
                    }
                },
            )
            .await;
            if let Err(e) = run_hooks(&state, &id, HookPoint::PostRestore, &env).await {
                post_hook_error = Some(e);
            }
        }
    }
    let failures = record_outcomes(&names, &outcomes, &log, |name, r| {
        state
            .catalog
            .finish_restore_component(&id, name, r.map(Vec::as_slice))
    });
    let (status, error) = match (failures.is_empty(), post_hook_error) {
        (false, hook) => {
            let mut e = failures.join("; ");
            if let Some(h) = hook {
                e.push_str(&format!("; {h}"));
            }
            (RestoreStatus::Error, Some(e))
        }
        (true, Some(h)) if state.config.hooks.post_restore_failure == HookFailure::Error => {
            (RestoreStatus::Error, Some(h))
        }
        (true, Some(h)) => {
            log(format!(
                "WARNING: {h} (hooks.post_restore_failure = \"warn\")"
            ));
            (RestoreStatus::Ready, Some(format!("warning: {h}")))
        }
        (true, None) => (RestoreStatus::Ready, None),
    };
    if let Err(e) = state.catalog.finish_restore(&id, status, error.as_deref()) {
        tracing::error!(restore = %id, "recording the end of the restore: {e}");
    }
    // The upload's files go before the job is seen as finished.
    drop(job.spool);
    let secs = started.elapsed().as_secs_f64();
    state
        .metrics
        .job_finished("restore", status.as_str(), secs, 0);
    log(format!("restore {id} {status} after {secs:.1} s"));
    tracing::info!(restore = %id, %status, "restore finished in {secs:.1} s");
}

/// A restored component's data, resolved.
enum Source {
    Snapshot(Box<(coffer_engine::Repo, SnapshotInfo)>),
    File(coffer_components::PortableFile),
}

async fn restore_component(
    state: &Shared,
    id: &str,
    dest: ComponentSpec,
    source: Source,
    options: RestoreOptions,
) -> Result<Vec<String>, String> {
    let name = dest.name.to_string();
    let log = |line: String| state.catalog.log(id, &line);
    if let Err(e) = state.catalog.restore_component_started(id, &name) {
        log(format!("recording the start of {name}: {e}"));
    }
    let from = match &source {
        Source::Snapshot(s) => format!("snapshot {}", &s.1.id[..8.min(s.1.id.len())]),
        Source::File(f) => format!("uploaded {}", f.file_name),
    };
    log(format!(
        "component {name} ({}) restoring {from}",
        dest.kind.name()
    ));
    let started = Instant::now();
    let staging = state.config.staging_dir.clone();
    let progress = state.jobs.progress_fn(id, &name);
    let result = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&staging)
            .map_err(|e| format!("creating staging directory {}: {e}", staging.display()))?;
        let ctx = RestoreContext {
            source: match &source {
                Source::Snapshot(s) => RestoreSource::Snapshot {
                    repo: &s.0,
                    snapshot: &s.1,
                },
                Source::File(f) => RestoreSource::File(f),
            },
            staging_dir: &staging,
            options: &options,
            progress: Some(progress),
        };
        coffer_components::restore(&dest, &ctx)
            .map(|r| r.notes)
            .map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|e| Err(format!("the component panicked: {e}")));
    state.jobs.progress_done(id, &name);
    match &result {
        Ok(notes) => {
            for n in notes {
                log(format!("  {name}: {n}"));
            }
            log(format!(
                "component {name} READY in {:.1} s",
                started.elapsed().as_secs_f64()
            ));
        }
        Err(e) => log(format!(
            "component {name} ERROR after {:.1} s: {e}",
            started.elapsed().as_secs_f64()
        )),
    }
    result
}
