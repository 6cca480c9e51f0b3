//! Backups: a directory tree, a stream, or a command's output, one snapshot per component.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use coffer_model::BackupRef;
use rustic_core::repofile::SnapshotFile;
use rustic_core::{
    BackupOptions, Excludes, LocalSource, LocalSourceFilterOptions, LocalSourceSaveOptions,
    OpenStatus, ParentOptions, ReadSource, Repository, SnapshotGroupCriterion, SnapshotOptions,
};

use super::ArchiverKind;
use super::{
    ContentKind, Repo, SnapshotInfo, canonical_dir, exclude_globs, full_hex, guarded,
    stream_name_ok, tags,
};
use crate::archiver;
use crate::backend::SnapshotGate;
use crate::cancel::CancelToken;
use crate::child::ChildReader;
use crate::lock::{LockMode, RepoLock};
use crate::progress::{Counters, ProgressFn};
use crate::seal::{self};
use crate::source::{CheckedSource, SourceTally, StreamSource};
use crate::{EngineError, EngineResult};

/// Options of a directory-tree backup.
#[derive(Debug, Clone, Default)]
pub struct TreeBackupOptions {
    /// Glob patterns to exclude (gitignore syntax, e.g. `*.tmp`, `cache/`).
    pub excludes: Vec<String>,
}

/// Where a component's source is and what it is recorded under.
struct Archiving<'a> {
    /// The source's path as its entries name it.
    source: &'a Path,
    /// `/<component>` for a tree; a stream is recorded under its own name.
    as_path: Option<&'a Path>,
    /// The parent snapshot, for change detection.
    parent: Option<&'a SnapshotFile>,
    gate: &'a Arc<SnapshotGate>,
    counters: &'a Arc<Counters>,
    cancel: &'a CancelToken,
}

/// What one component's backup holds while it runs.
struct BackupJob {
    /// Held until the backup ends.
    lock: RepoLock,
    /// Refuses the snapshot file once any failure is recorded.
    gate: Arc<SnapshotGate>,
    /// What the sources read under: the caller's token, and fired too
    /// when the lock is lost.
    cancel: CancelToken,
    /// What the source yielded, for the cross-check.
    tally: Arc<SourceTally>,
    counters: Arc<Counters>,
    component: String,
}

impl Repo {
    fn snapshot_template(&self, r: &BackupRef, kind: ContentKind) -> EngineResult<SnapshotFile> {
        let mut tag_list = vec![
            tags::COFFER.to_owned(),
            format!("{}{}", tags::BACKUP, r.backup_id),
            format!("{}{}", tags::LABEL, r.label),
            format!("{}{}", tags::COMPONENT, r.component),
            format!("{}{}", tags::COMPONENT_COUNT, r.component_count),
            format!("{}{}", tags::KIND, kind.as_str()),
        ];
        if self.seal.is_some() {
            tag_list.push(tags::SEALED.to_owned());
        }
        let tag_list = tag_list.join(",");
        SnapshotOptions::default()
            .label(r.label.to_string())
            .add_tags(&tag_list)
            .and_then(|o| o.to_snapshot())
            .map_err(|e| EngineError::rustic(&e))
    }

    /// The last snapshot of `component` with this content kind: the parent
    /// for change detection. Only complete backups are ever recorded, so the
    /// latest one is the last complete one.
    fn parent_of(
        &self,
        repo: &Repository<OpenStatus>,
        component: &str,
        kind: ContentKind,
    ) -> EngineResult<Option<SnapshotFile>> {
        let snaps = repo
            .get_all_snapshots()
            .map_err(|e| EngineError::rustic(&e))?;
        Ok(snaps
            .iter()
            .filter(|s| {
                let info = SnapshotInfo::from_snapshot(s);
                info.kind == Some(kind)
                    && info
                        .backup
                        .is_some_and(|b| b.component.as_str() == component)
            })
            .max_by_key(|s| s.time.timestamp())
            .cloned())
    }

    /// How Coffer's archiver writes into `repo`; `None` where rustic_core's
    /// archiver must (it was chosen, or the repository uses a chunker only
    /// rustic_core has).
    fn coffer_archiver(
        &self,
        repo: &Repository<OpenStatus>,
    ) -> EngineResult<Option<archiver::Settings>> {
        match self.archiver {
            ArchiverKind::Rustic => Ok(None),
            ArchiverKind::Coffer => archiver::Settings::of(repo.config()),
        }
    }

    /// Backs up the directory tree at `source` as one component of a backup.
    ///
    /// Every file the walk finds must be read completely; otherwise nothing is
    /// recorded and [`EngineError::Incomplete`] lists each problem.
    pub fn backup_tree(
        &self,
        source: &Path,
        backup: &BackupRef,
        opts: &TreeBackupOptions,
        progress: Option<ProgressFn>,
    ) -> EngineResult<SnapshotInfo> {
        let source = canonical_dir(source, "back up")?;
        if let Some(recipients) = &self.seal {
            // One age file of a tar of the tree (see `seal`): walked with the
            // same excludes, recorded as a stream that restores as a tree.
            let excludes = Excludes::default().globs(exclude_globs(&opts.excludes)?);
            let sealed = seal::seal_tree(
                source.clone(),
                excludes,
                Arc::clone(recipients),
                self.cancel.clone(),
            )
            .map_err(|e| EngineError::io("starting the sealing thread", e))?;
            let name = format!("{}.tar{}", backup.component, seal::SEALED_SUFFIX);
            return self.archive_stream(
                Box::new(sealed),
                &name,
                backup,
                progress,
                ContentKind::Tree,
            );
        }
        let BackupJob {
            lock,
            gate,
            cancel,
            tally,
            counters,
            component,
        } = self.start_backup(backup, progress)?;
        guarded(|| {
            let repo = self.handle(Some(Arc::clone(&gate)), Some(Arc::clone(&counters)))?;
            let parent = self.parent_of(&repo, &component, ContentKind::Tree)?;
            let excludes = Excludes::default().globs(exclude_globs(&opts.excludes)?);
            let local = LocalSource::new(
                LocalSourceSaveOptions::default(),
                &excludes,
                &LocalSourceFilterOptions::default(),
                std::slice::from_ref(&source),
            )
            .map_err(|e| EngineError::rustic(&e))?;
            let src = CheckedSource::new(
                local,
                Arc::clone(&gate),
                Arc::clone(&tally),
                Arc::clone(&counters),
                Some(cancel.clone()),
            );
            let snap = self.snapshot_template(backup, ContentKind::Tree)?;
            let as_path = PathBuf::from(format!("/{component}"));
            let how = Archiving {
                source: &source,
                as_path: Some(&as_path),
                parent: parent.as_ref(),
                gate: &gate,
                counters: &counters,
                cancel: &cancel,
            };
            let result = self.archive(&repo, &src, snap, &how);
            self.finish_backup(&repo, &component, &lock, &gate, result, |summary| {
                let seen = tally.files.load(Ordering::Relaxed);
                (summary.total_files_processed != seen).then(|| {
                    format!(
                        "{seen} files were found but the snapshot holds {}",
                        summary.total_files_processed
                    )
                })
            })
        })
    }

    /// Backs up a byte stream under the file name `name` (e.g. `db.pgdump`)
    /// as one component of a backup, without a temporary file. A read error
    /// anywhere in the stream means nothing is recorded.
    pub fn backup_stream(
        &self,
        reader: Box<dyn Read + Send>,
        name: &str,
        backup: &BackupRef,
        progress: Option<ProgressFn>,
    ) -> EngineResult<SnapshotInfo> {
        if !stream_name_ok(name) {
            return Err(EngineError::InvalidInput(format!(
                "invalid stream name {name:?}: a file name without '/'"
            )));
        }
        match &self.seal {
            Some(recipients) => {
                let sealed = seal::seal_stream(reader, Arc::clone(recipients))
                    .map_err(|e| EngineError::io("starting the sealing thread", e))?;
                let name = format!("{name}{}", seal::SEALED_SUFFIX);
                self.archive_stream(
                    Box::new(sealed),
                    &name,
                    backup,
                    progress,
                    ContentKind::Stream,
                )
            }
            None => self.archive_stream(reader, name, backup, progress, ContentKind::Stream),
        }
    }

    /// Records `reader` as the single file `name`, tagged with `kind` (what
    /// it restores as).
    fn archive_stream(
        &self,
        reader: Box<dyn Read + Send>,
        name: &str,
        backup: &BackupRef,
        progress: Option<ProgressFn>,
        kind: ContentKind,
    ) -> EngineResult<SnapshotInfo> {
        let BackupJob {
            lock,
            gate,
            cancel,
            tally,
            counters,
            component,
        } = self.start_backup(backup, progress)?;
        guarded(|| {
            let repo = self.handle(Some(Arc::clone(&gate)), Some(Arc::clone(&counters)))?;
            let path = PathBuf::from(name);
            let src = CheckedSource::new(
                StreamSource::new(&path, reader),
                Arc::clone(&gate),
                Arc::clone(&tally),
                Arc::clone(&counters),
                Some(cancel.clone()),
            );
            let snap = self.snapshot_template(backup, kind)?;
            // A stream has no useful parent: its content is chunked and
            // deduplicated against the whole repository anyway.
            let how = Archiving {
                source: &path,
                as_path: None,
                parent: None,
                gate: &gate,
                counters: &counters,
                cancel: &cancel,
            };
            let result = self.archive(&repo, &src, snap, &how);
            self.finish_backup(&repo, &component, &lock, &gate, result, |summary| {
                let read = tally.bytes_read.load(Ordering::Relaxed);
                (summary.total_bytes_processed != read || summary.total_files_processed != 1).then(
                    || {
                        format!(
                            "{read} bytes were read but the snapshot holds {} bytes in {} files",
                            summary.total_bytes_processed, summary.total_files_processed
                        )
                    },
                )
            })
        })
    }

    /// Records `src` as `snap` with the archiver this handle uses.
    fn archive<R>(
        &self,
        repo: &Repository<OpenStatus>,
        src: &R,
        snap: SnapshotFile,
        how: &Archiving<'_>,
    ) -> EngineResult<SnapshotFile>
    where
        R: ReadSource + 'static,
        R::Open: Send,
        R::Iter: Send,
    {
        if let Some(settings) = self.coffer_archiver(repo)? {
            let job = archiver::Job {
                repo,
                storage: Arc::clone(&self.storage),
                key: &self.key,
                settings,
                gate: Arc::clone(how.gate),
                counters: Arc::clone(how.counters),
                cancel: how.cancel.clone(),
            };
            let layout = archiver::Layout {
                source: how.source,
                as_path: how.as_path,
                parent: how.parent.map(|p| (p.id, *p.tree)),
            };
            return archiver::archive(job, src, &layout, snap);
        }
        let parent_opts = match how.parent {
            Some(p) => ParentOptions::default()
                .group_by(SnapshotGroupCriterion::new())
                .parents(vec![full_hex(&p.id)]),
            None => ParentOptions::default().force(true),
        };
        let mut bopts = BackupOptions::default().parent_opts(parent_opts);
        if let Some(as_path) = how.as_path {
            bopts = bopts.as_path(as_path.to_path_buf());
        }
        // A handle of its own: rustic_core's indexed handle consumes the
        // one it is made from.
        self.handle(Some(Arc::clone(how.gate)), Some(Arc::clone(how.counters)))?
            .to_indexed_ids()
            .and_then(|indexed| indexed.archive(&bopts, src, snap, &[how.source.to_path_buf()]))
            .map_err(|e| EngineError::rustic(&e))
    }

    /// Runs `command` and backs up its standard output as a stream (see
    /// [`Repo::backup_stream`]). The command must exit with status 0; its
    /// standard error (the last 64 KiB) is part of the error otherwise.
    pub fn backup_command(
        &self,
        command: &mut Command,
        name: &str,
        backup: &BackupRef,
        progress: Option<ProgressFn>,
    ) -> EngineResult<SnapshotInfo> {
        let reader = ChildReader::spawn(command)?.with_cancel(self.cancel.clone());
        self.backup_stream(Box::new(reader), name, backup, progress)
    }

    /// Takes the shared lock and sets up the bookkeeping of one component's backup.
    fn start_backup(
        &self,
        backup: &BackupRef,
        progress: Option<ProgressFn>,
    ) -> EngineResult<BackupJob> {
        let lock = self.lock(LockMode::Shared, "backup")?;
        let gate = Arc::new(SnapshotGate::default());
        let cancel = self
            .cancel
            .as_ref()
            .map(CancelToken::child)
            .unwrap_or_default();
        {
            let (gate, cancel) = (Arc::clone(&gate), cancel.clone());
            lock.on_loss(move |reason| {
                gate.fail(format!("the repository lock was lost: {reason}"));
                cancel.cancel();
            });
        }
        Ok(BackupJob {
            lock,
            gate,
            cancel,
            tally: Arc::new(SourceTally::default()),
            counters: Counters::new(progress),
            component: backup.component.to_string(),
        })
    }

    /// Turns the archive result into a recorded snapshot or a clean failure.
    fn finish_backup(
        &self,
        repo: &Repository<OpenStatus>,
        component: &str,
        lock: &RepoLock,
        gate: &SnapshotGate,
        result: EngineResult<SnapshotFile>,
        cross_check: impl FnOnce(&rustic_core::repofile::SnapshotSummary) -> Option<String>,
    ) -> EngineResult<SnapshotInfo> {
        let cancelled = self.cancel.as_ref().is_some_and(CancelToken::is_cancelled);
        let lost = lock.ensure_held();
        let mut reasons = gate.failures();
        if cancelled || lost.is_err() {
            // Whatever else failed followed from the cancellation or the
            // lost lock (whose gate kept the snapshot out; removed anyway
            // should it have been written before).
            if let Ok(snap) = &result
                && let Err(e) = repo.delete_snapshots(&[snap.id])
            {
                log::warn!(
                    "removing the stopped backup's snapshot {}: {}",
                    snap.id,
                    e.display_log()
                );
            }
            lost?;
            return Err(EngineError::Cancelled {
                component: component.to_owned(),
            });
        }
        let snap = match result {
            Ok(snap) => snap,
            Err(e) => {
                if reasons.is_empty() {
                    reasons.push(e.to_string());
                }
                return Err(EngineError::Incomplete {
                    component: component.to_owned(),
                    reasons,
                });
            }
        };
        let summary = snap.summary.clone().unwrap_or_default();
        if let Some(problem) = cross_check(&summary) {
            reasons.push(problem);
        }
        if !reasons.is_empty() {
            // The gate should have stopped this snapshot; remove it anyway.
            if let Err(e) = repo.delete_snapshots(&[snap.id]) {
                reasons.push(format!(
                    "and removing the incomplete snapshot {} failed: {}",
                    snap.id,
                    e.display_log()
                ));
            }
            return Err(EngineError::Incomplete {
                component: component.to_owned(),
                reasons,
            });
        }
        Ok(SnapshotInfo::from_snapshot(&snap))
    }

    // ------------------------------------------------------------------ listing
}
