//! Maintenance: check, forget and prune.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustic_core::{CheckOptions, PruneOptions, ReadSubsetOption};
use serde::{Deserialize, Serialize};

use super::{Repo, guarded};
use crate::backend::SnapshotGate;
use crate::lock::{IN_PROCESS_PATIENCE, LockMode};
use crate::progress::{Counters, ProgressFn};
use crate::restic_locks::{self, ResticLock};
use crate::{EngineError, EngineResult};

/// The outcome of a check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    /// Problems that make data unreadable or the repository inconsistent.
    pub errors: Vec<String>,
    /// Findings that do not endanger data (e.g. unused blobs).
    pub warnings: Vec<String>,
}

impl CheckReport {
    /// True when no error was found.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// What a prune removed or will remove.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PruneReport {
    /// Pack files deleted now.
    pub packs_removed: u64,
    /// Pack files repacked (their live blobs copied into new packs).
    pub packs_repacked: u64,
    /// Pack files marked for deletion by this run, deleted by a later prune
    /// once the grace period (23 h) has passed — the two-phase prune.
    pub packs_marked: u64,
    /// Pack files marked by an earlier prune, still inside the grace period.
    pub packs_waiting: u64,
    /// Bytes freed by this run.
    pub bytes_freed: u64,
    /// Bytes that the packs marked now and earlier free when their grace
    /// period ends (a later prune deletes them).
    pub bytes_pending: u64,
    /// Seconds spent deciding, under a shared lock (backups went on).
    #[serde(default)]
    pub planning_secs: f64,
    /// Seconds waited for the exclusive lock (for backups of this process
    /// to end).
    #[serde(default)]
    pub waited_secs: f64,
    /// Seconds the exclusive lock was held: what backups of the target had
    /// to wait for.
    #[serde(default)]
    pub exclusive_secs: f64,
    /// A backup or forget ended between planning and the exclusive lock,
    /// so the plan was made again under the lock.
    #[serde(default)]
    pub replanned: bool,
}

/// How to prune.
#[derive(Debug, Clone, Copy, Default)]
pub struct PruneSettings {
    /// Delete unused packs at once instead of marking them (only safe when
    /// no other process uses the repository).
    pub instant: bool,
    /// How long marked packs are kept before a prune deletes them (default
    /// 23 h): a backup that started before the mark and still refers to
    /// them has that long to finish.
    pub grace_secs: Option<u64>,
}

impl PruneSettings {
    /// The longest grace period accepted: a year. Longer ones are refused
    /// (they would keep unused packs forever in all but name).
    pub const MAX_GRACE_SECS: u64 = 366 * 24 * 3600;
}

impl Repo {
    /// Checks the repository structure and, with `read_data`, the content of
    /// all packs or a subset of them (`"10%"`, `"1/5"`, `"500M"`, or `"all"`).
    pub fn check(&self, read_data: Option<&str>) -> EngineResult<CheckReport> {
        let subset: Option<ReadSubsetOption> = match read_data {
            None => None,
            Some(s) => Some(s.parse().map_err(|e| {
                EngineError::InvalidInput(format!(
                    "invalid read-data subset {s:?} ({e}); use all, 10%, 1/5 or a size like 500M"
                ))
            })?),
        };
        let _lock = self.lock_patiently(LockMode::Shared, "check", IN_PROCESS_PATIENCE)?;
        guarded(|| {
            let repo = self.handle(None, None)?;
            let mut opts = CheckOptions::default();
            if let Some(subset) = subset {
                opts = opts.read_data(true).read_data_subset(subset);
            }
            let results = repo.check(opts).map_err(|e| EngineError::rustic(&e))?;
            let mut report = CheckReport::default();
            for (level, finding) in results.0 {
                let text = finding.to_string();
                if format!("{level:?}") == "Error" {
                    report.errors.push(text);
                } else {
                    report.warnings.push(text);
                }
            }
            Ok(report)
        })
    }

    /// Removes snapshots (by full id). Their data stays until [`Repo::prune`].
    pub fn forget(&self, snapshot_ids: &[String]) -> EngineResult<usize> {
        if snapshot_ids.is_empty() {
            return Ok(0);
        }
        let _lock = self.lock_patiently(LockMode::Exclusive, "forget", IN_PROCESS_PATIENCE)?;
        guarded(|| {
            let repo = self.handle(None, None)?;
            let snaps = repo
                .get_snapshots(snapshot_ids)
                .map_err(|e| EngineError::NotFound(e.display_log()))?;
            let ids: Vec<_> = snaps.iter().map(|s| s.id).collect();
            repo.delete_snapshots(&ids)
                .map_err(|e| EngineError::rustic(&e))?;
            Ok(ids.len())
        })
    }

    /// Removes data no snapshot references. Takes the exclusive lock. Packs
    /// are deleted in two phases by default: marked now and removed by a prune
    /// at least 23 h later, so a backup that started before this prune and
    /// still refers to them cannot lose data. `instant` deletes at once (only
    /// safe when no other Coffer process uses the repository).
    pub fn prune(&self, instant: bool) -> EngineResult<PruneReport> {
        self.prune_with(
            PruneSettings {
                instant,
                grace_secs: None,
            },
            None,
        )
    }

    /// Plain restic's locks on this repository (`locks/`), which Coffer's
    /// own locks do not cover.
    pub fn restic_locks(&self) -> EngineResult<Vec<ResticLock>> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        restic_locks::list(&*self.storage, &self.key, now)
    }

    /// [`Repo::prune`] with a grace period and progress: [`Self::prune_prepare`]
    /// then [`PrunePrepared::execute`], waiting up to [`IN_PROCESS_PATIENCE`]
    /// for the exclusive lock.
    pub fn prune_with(
        &self,
        settings: PruneSettings,
        progress: Option<ProgressFn>,
    ) -> EngineResult<PruneReport> {
        self.prune_prepare(settings, progress)?
            .execute(IN_PROCESS_PATIENCE)
    }

    /// A prune's first phase: what to delete, mark and repack, decided
    /// under a **shared** lock, so backups and restores go on meanwhile
    /// (reading every snapshot's trees is most of a prune's time). The
    /// repository's snapshot and index listings are noted first:
    /// [`PrunePrepared::execute`] plans again if they changed since.
    pub fn prune_prepare(
        &self,
        settings: PruneSettings,
        progress: Option<ProgressFn>,
    ) -> EngineResult<PrunePrepared> {
        let opts = prune_options(settings)?;
        let started = Instant::now();
        let _shared =
            self.lock_patiently(LockMode::Shared, "prune (planning)", IN_PROCESS_PATIENCE)?;
        let seen = self.listing_fingerprint()?;
        let counters = progress.map(|p| Counters::new(Some(p)));
        let gate = Arc::new(SnapshotGate::default());
        let (handle, plan) = guarded(|| {
            let handle = self.handle(Some(Arc::clone(&gate)), counters.clone())?;
            let plan = handle
                .prune_plan(&opts)
                .map_err(|e| EngineError::rustic(&e))?;
            Ok((handle, plan))
        })?;
        coffer_model::crash::crash_point("prune.planned");
        Ok(PrunePrepared {
            repo: self.clone(),
            settings,
            opts,
            counters,
            seen,
            gate,
            handle,
            plan,
            planning_secs: started.elapsed().as_secs_f64(),
        })
    }

    /// The names of every snapshot and index file: a backup that ended, a
    /// forget or another prune changes them.
    fn listing_fingerprint(&self) -> EngineResult<Vec<String>> {
        let mut keys = Vec::new();
        for prefix in ["snapshots/", "index/"] {
            keys.extend(self.storage.list(prefix)?.into_iter().map(|o| o.key));
        }
        keys.sort_unstable();
        Ok(keys)
    }
}

/// A planned prune (see [`Repo::prune_prepare`]), to be carried out.
pub struct PrunePrepared {
    repo: Repo,
    settings: PruneSettings,
    opts: PruneOptions,
    counters: Option<Arc<Counters>>,
    seen: Vec<String>,
    /// Closed when the exclusive lock is lost: no deletion after that.
    gate: Arc<SnapshotGate>,
    handle: rustic_core::Repository<rustic_core::OpenStatus>,
    plan: rustic_core::PrunePlan,
    planning_secs: f64,
}

impl std::fmt::Debug for PrunePrepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrunePrepared")
            .field("settings", &self.settings)
            .field("planning_secs", &self.planning_secs)
            .finish_non_exhaustive()
    }
}

impl PrunePrepared {
    /// The second phase, under the **exclusive** lock (waiting up to
    /// `patience` for operations of this process to release theirs), which
    /// also refuses while plain restic holds a lock that is not stale (a
    /// `restic backup` running now could lose the packs this prune
    /// removes: see [`crate::lock`]); plans again, now under the
    /// lock, if a snapshot or index file appeared or went since the plan;
    /// then marks, repacks and deletes.
    pub fn execute(self, patience: Duration) -> EngineResult<PruneReport> {
        let repo = &self.repo;
        let waited = Instant::now();
        let lock = repo.lock_patiently(LockMode::Exclusive, "prune", patience)?;
        let gate = Arc::clone(&self.gate);
        lock.on_loss(move |reason| gate.fail(format!("the prune's lock was lost: {reason}")));
        coffer_model::crash::crash_point("prune.locked");
        let locked = Instant::now();
        let replanned = repo.listing_fingerprint()? != self.seen;
        let (handle, plan) = if replanned {
            guarded(|| {
                let handle = repo.handle(Some(Arc::clone(&self.gate)), self.counters.clone())?;
                let plan = handle
                    .prune_plan(&self.opts)
                    .map_err(|e| EngineError::rustic(&e))?;
                Ok((handle, plan))
            })?
        } else {
            (self.handle, self.plan)
        };
        let mut report = report_of(&plan, self.settings.instant);
        let pruned = guarded(|| {
            handle
                .prune(&self.opts, plan)
                .map_err(|e| EngineError::rustic(&e))
        });
        // A refused deletion is the lost lock's doing: say so.
        lock.ensure_held()?;
        pruned?;
        report.planning_secs = self.planning_secs;
        report.waited_secs = locked.duration_since(waited).as_secs_f64();
        report.exclusive_secs = locked.elapsed().as_secs_f64();
        report.replanned = replanned;
        Ok(report)
    }
}

/// rustic_core's options for `settings`.
fn prune_options(settings: PruneSettings) -> EngineResult<PruneOptions> {
    let mut opts = PruneOptions::default().instant_delete(settings.instant);
    if settings.instant {
        // Also delete packs an earlier prune marked, without waiting out
        // their grace period.
        opts = opts.keep_delete(rustic_core::jiff::Span::new());
    } else if let Some(secs) = settings.grace_secs {
        let too_long = || {
            EngineError::InvalidInput(format!(
                "grace of {secs} s is longer than the {} s allowed",
                PruneSettings::MAX_GRACE_SECS
            ))
        };
        if secs > PruneSettings::MAX_GRACE_SECS {
            return Err(too_long());
        }
        let secs = i64::try_from(secs).map_err(|_| too_long())?;
        let span = rustic_core::jiff::Span::new()
            .try_seconds(secs)
            .map_err(|_| too_long())?;
        opts = opts.keep_delete(span);
    }
    Ok(opts)
}

/// What `plan` will do, in the report's terms. rustic_core's statistics:
/// `packs.unused` are packs no snapshot uses any more (marked now, or
/// deleted now when instant); `packs_to_delete.remove` are packs marked by
/// an earlier prune whose grace period is over; `packs_to_delete.keep` are
/// marked packs still waiting.
fn report_of(plan: &rustic_core::PrunePlan, instant: bool) -> PruneReport {
    let stats = &plan.stats;
    let sizes = stats.size_sum();
    let (unused_removed, unused_marked, unused_bytes) = if instant {
        (stats.packs.unused, 0, sizes.remove)
    } else {
        (0, stats.packs.unused, 0)
    };
    PruneReport {
        packs_removed: stats.packs_to_delete.remove + unused_removed,
        packs_repacked: stats.packs.repack,
        packs_marked: unused_marked,
        packs_waiting: stats.packs_to_delete.keep,
        bytes_freed: stats.size_to_delete.remove + sizes.repackrm + unused_bytes,
        bytes_pending: stats.size_to_delete.keep + if instant { 0 } else { sizes.remove },
        ..PruneReport::default()
    }
}
