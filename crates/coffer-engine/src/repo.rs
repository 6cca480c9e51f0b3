//! The repository API the rest of Coffer uses.

use std::io::{Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use coffer_model::BackupRef;
use coffer_targets::Storage;
use rustic_core::repofile::{MasterKey, SnapshotFile};
use rustic_core::{
    BackupOptions, CheckOptions, ConfigOptions, Credentials, Excludes, KeyOptions, LocalSource,
    LocalSourceFilterOptions, LocalSourceSaveOptions, NoProgressBars, OpenStatus, ParentOptions,
    PruneOptions, ReadSubsetOption, Repository, RepositoryBackends, RepositoryOptions,
    SnapshotGroupCriterion, SnapshotOptions,
};
use serde::Serialize;

use crate::backend::{SnapshotGate, StorageBackend};
use crate::cancel::CancelToken;
use crate::child::{StderrTail, describe_failure};
use crate::lock::{LockMode, RepoLock};
use crate::progress::{Counters, EngineProgressBars, ProgressFn};
use crate::restore::{self, RestoreMode, Staging};
use crate::seal::{self, AgeIdentity, AgeRecipients};
use crate::source::{CheckedSource, SourceTally, StreamSource};
use crate::tree_tar::{self, TarOrigin};
use crate::{EngineError, EngineResult};

/// Tag prefixes Coffer writes on every snapshot. Tags are plain `key=value`
/// strings so that `restic snapshots --tag coffer-backup=<id>` finds a backup.
pub mod tags {
    /// Marks a snapshot as written by Coffer.
    pub const COFFER: &str = "coffer";
    /// `coffer-backup=<backup id>`.
    pub const BACKUP: &str = "coffer-backup=";
    /// `coffer-label=<label>`.
    pub const LABEL: &str = "coffer-label=";
    /// `coffer-component=<component name>`.
    pub const COMPONENT: &str = "coffer-component=";
    /// `coffer-components=<number of components in the backup>`.
    pub const COMPONENT_COUNT: &str = "coffer-components=";
    /// `coffer-kind=tree|stream`.
    pub const KIND: &str = "coffer-kind=";
    /// On snapshots whose content is sealed to age recipients (see [`crate::seal`]).
    pub const SEALED: &str = "coffer-sealed=age";
}

/// What a snapshot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContentKind {
    /// A directory tree, stored under `/<component>`.
    Tree,
    /// One byte stream, stored as a single file at the snapshot root.
    Stream,
}

impl ContentKind {
    /// `tree` or `stream`, as in the `coffer-kind=` tag.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tree => "tree",
            Self::Stream => "stream",
        }
    }
}

/// A snapshot as Coffer sees it.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotInfo {
    /// Full snapshot id (hex).
    pub id: String,
    /// When it was taken (RFC 3339).
    pub time: String,
    /// Host that took it.
    pub hostname: String,
    /// Paths recorded in the snapshot.
    pub paths: Vec<String>,
    /// All tags.
    pub tags: Vec<String>,
    /// The backup this snapshot is a component of, if Coffer wrote it.
    pub backup: Option<BackupRef>,
    /// Tree or stream, if Coffer wrote it. A sealed tree is stored as one
    /// file (an age-encrypted tar) but restores as a tree.
    pub kind: Option<ContentKind>,
    /// Whether the content is sealed to age recipients: restoring it needs
    /// an identity ([`Repo::with_identity`]).
    pub sealed: bool,
    /// Files in the snapshot.
    pub files: u64,
    /// Files that were new (no parent entry).
    pub files_new: u64,
    /// Files whose content was read because they changed since the parent.
    pub files_changed: u64,
    /// Files taken from the parent without reading them (unchanged metadata).
    pub files_unmodified: u64,
    /// Bytes of file content in the snapshot.
    pub bytes: u64,
    /// Bytes this snapshot added to the repository (after deduplication and
    /// compression).
    pub bytes_added: u64,
}

impl SnapshotInfo {
    fn from_snapshot(snap: &SnapshotFile) -> Self {
        let tags: Vec<String> = snap.tags.iter().cloned().collect();
        let find = |prefix: &str| tags.iter().find_map(|t| t.strip_prefix(prefix));
        let backup = (|| {
            let backup_id = find(tags::BACKUP)?.parse().ok()?;
            let component = find(tags::COMPONENT)?.parse().ok()?;
            let count = find(tags::COMPONENT_COUNT)?.parse().ok()?;
            Some(BackupRef::new(backup_id, component, count))
        })();
        let kind = match find(tags::KIND) {
            Some("tree") => Some(ContentKind::Tree),
            Some("stream") => Some(ContentKind::Stream),
            _ => None,
        };
        let summary = snap.summary.clone().unwrap_or_default();
        let sealed = tags.iter().any(|t| t == tags::SEALED);
        Self {
            id: full_hex(&snap.id),
            time: snap.time.timestamp().to_string(),
            hostname: snap.hostname.clone(),
            paths: snap.paths.iter().cloned().collect(),
            tags,
            backup,
            kind,
            sealed,
            files: summary.total_files_processed,
            files_new: summary.files_new,
            files_changed: summary.files_changed,
            files_unmodified: summary.files_unmodified,
            bytes: summary.total_bytes_processed,
            bytes_added: summary.data_added_packed,
        }
    }
}

/// Which snapshots to list. Empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct SnapshotFilter {
    /// Only this backup's snapshots.
    pub backup_id: Option<String>,
    /// Only backups with this label.
    pub label: Option<String>,
    /// Only this component.
    pub component: Option<String>,
}

impl SnapshotFilter {
    fn matches(&self, s: &SnapshotInfo) -> bool {
        let b = s.backup.as_ref();
        self.backup_id
            .as_ref()
            .is_none_or(|want| b.is_some_and(|b| b.backup_id.as_str() == want))
            && self
                .label
                .as_ref()
                .is_none_or(|want| b.is_some_and(|b| b.label.as_str() == want))
            && self
                .component
                .as_ref()
                .is_none_or(|want| b.is_some_and(|b| b.component.as_str() == want))
    }
}

/// A key (password slot) of the repository.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    /// Key id (hex).
    pub id: String,
    /// Whether this key opened the repository in this session.
    pub current: bool,
    /// Host recorded when the key was made.
    pub hostname: Option<String>,
    /// User recorded when the key was made.
    pub username: Option<String>,
    /// When the key was made.
    pub created: Option<String>,
}

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
#[derive(Debug, Clone, Default, Serialize)]
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
}

/// Options of a directory-tree backup.
#[derive(Debug, Clone, Default)]
pub struct TreeBackupOptions {
    /// Glob patterns to exclude (gitignore syntax, e.g. `*.tmp`, `cache/`).
    pub excludes: Vec<String>,
}

/// An open repository. Cheap to clone: every operation opens its own engine
/// handle from the cached master key, so each job sees a fresh index (rustic_core
/// does not see blobs written through another handle).
#[derive(Clone)]
pub struct Repo {
    storage: Arc<dyn Storage>,
    key: MasterKey,
    key_id: Option<String>,
    /// Fired by whoever cancels the job this handle belongs to.
    cancel: Option<CancelToken>,
    /// Backups through this handle are sealed to these recipients.
    seal: Option<Arc<AgeRecipients>>,
    /// Restores through this handle can open snapshots sealed to this identity.
    identity: Option<Arc<AgeIdentity>>,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repo")
            .field("location", &self.storage.location())
            .finish_non_exhaustive()
    }
}

/// Runs `f`, turning a panic inside the engine into an error.
fn guarded<T>(f: impl FnOnce() -> EngineResult<T>) -> EngineResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            Err(EngineError::Panicked(msg))
        }
    }
}

fn repo_options() -> RepositoryOptions {
    // No local cache: the data directory, not ~/.cache, is Coffer's state.
    RepositoryOptions::default().no_cache(true)
}

fn backends(storage: &Arc<dyn Storage>, gate: Option<Arc<SnapshotGate>>) -> RepositoryBackends {
    RepositoryBackends::new(
        Arc::new(StorageBackend::new(Arc::clone(storage), gate)),
        None,
    )
}

fn has_config(storage: &dyn Storage) -> EngineResult<bool> {
    Ok(storage.list("config")?.iter().any(|o| o.key == "config"))
}

/// Turns exclude patterns into rustic_core's globs. rustic_core's globs are
/// `ignore` overrides, where a plain pattern *includes* (and then excludes
/// everything else) and `!pattern` excludes; Coffer only has excludes, so each
/// pattern gets the `!`, and a leading `!` from the user is refused rather than
/// silently turned into a whitelist.
fn exclude_globs(patterns: &[String]) -> EngineResult<Vec<String>> {
    patterns
        .iter()
        .map(|p| {
            if p.trim().is_empty() || p.starts_with('!') {
                Err(EngineError::InvalidInput(format!(
                    "invalid exclude pattern {p:?}: give a non-empty glob such as '*.tmp' or 'cache/' (no leading '!')"
                )))
            } else {
                Ok(format!("!{p}"))
            }
        })
        .collect()
}

/// The full 64-digit hex form of an id. rustic_core's `Display` for ids
/// prints only the first 8 digits, which is ambiguous as an identifier.
fn full_hex(id: &rustic_core::Id) -> String {
    id.to_hex().as_str().to_owned()
}

fn stream_name_ok(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && name != "." && name != ".." && !name.contains('\0')
}

impl Repo {
    /// Whether `storage` already holds a repository (its `config` object).
    pub fn exists(storage: &dyn Storage) -> EngineResult<bool> {
        has_config(storage)
    }

    /// Creates a new repository protected by `password`.
    pub fn init(storage: Arc<dyn Storage>, password: &str) -> EngineResult<Self> {
        if password.is_empty() {
            return Err(EngineError::InvalidInput(
                "the password must not be empty".into(),
            ));
        }
        let location = storage.location();
        if has_config(&*storage)? {
            return Err(EngineError::AlreadyInitialized { location });
        }
        guarded(|| {
            let repo = Repository::new(&repo_options(), &backends(&storage, None))
                .and_then(|r| {
                    r.init(
                        &Credentials::password(password),
                        &KeyOptions::default(),
                        &ConfigOptions::default(),
                    )
                })
                .map_err(|e| EngineError::rustic(&e))?;
            Ok(Self {
                key: repo.key(),
                key_id: repo.key_id().as_ref().map(|k| full_hex(k)),
                cancel: None,
                seal: None,
                identity: None,
                storage: Arc::clone(&storage),
            })
        })
    }

    /// Opens an existing repository with `password`.
    pub fn open(storage: Arc<dyn Storage>, password: &str) -> EngineResult<Self> {
        let location = storage.location();
        if !has_config(&*storage)? {
            return Err(EngineError::RepositoryNotFound { location });
        }
        guarded(|| {
            let repo = Repository::new(&repo_options(), &backends(&storage, None))
                .and_then(|r| r.open(&Credentials::password(password)))
                .map_err(|e| {
                    if e.is_incorrect_password() {
                        EngineError::WrongPassword {
                            location: location.clone(),
                        }
                    } else {
                        EngineError::rustic(&e)
                    }
                })?;
            Ok(Self {
                key: repo.key(),
                key_id: repo.key_id().as_ref().map(|k| full_hex(k)),
                cancel: None,
                seal: None,
                identity: None,
                storage: Arc::clone(&storage),
            })
        })
    }

    /// A handle on the same repository whose backups stop when `token`
    /// fires: sources fail their next read and nothing is recorded
    /// ([`EngineError::Cancelled`]).
    pub fn with_cancel(&self, token: CancelToken) -> Self {
        Self {
            cancel: Some(token),
            ..self.clone()
        }
    }

    /// A handle on the same repository whose backups are sealed to
    /// `recipients` (see [`crate::seal`]): streams become `<name>.age`, trees
    /// `<component>.tar.age`, and only a matching identity restores them.
    pub fn sealed_to(&self, recipients: Arc<AgeRecipients>) -> Self {
        Self {
            seal: Some(recipients),
            ..self.clone()
        }
    }

    /// A handle on the same repository that restores sealed snapshots with
    /// `identity`. Unsealed snapshots restore as before.
    pub fn with_identity(&self, identity: Arc<AgeIdentity>) -> Self {
        Self {
            identity: Some(identity),
            ..self.clone()
        }
    }

    /// Where the repository is.
    pub fn location(&self) -> String {
        self.storage.location()
    }

    /// The storage the repository lives on.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// A fresh engine handle (fresh index) for one job.
    pub(crate) fn handle(
        &self,
        gate: Option<Arc<SnapshotGate>>,
        progress: Option<Arc<Counters>>,
    ) -> EngineResult<Repository<OpenStatus>> {
        let backends = backends(&self.storage, gate);
        let creds = Credentials::Masterkey(self.key.clone());
        let r = match progress {
            Some(c) => {
                Repository::new_with_progress(&repo_options(), &backends, EngineProgressBars(c))
            }
            None => Repository::new_with_progress(&repo_options(), &backends, NoProgressBars),
        };
        r.and_then(|r| r.open(&creds))
            .map_err(|e| EngineError::rustic(&e))
    }

    // ------------------------------------------------------------------ keys

    /// Adds a key: afterwards `password` opens the repository too.
    pub fn add_key(&self, password: &str) -> EngineResult<String> {
        if password.is_empty() {
            return Err(EngineError::InvalidInput(
                "the password must not be empty".into(),
            ));
        }
        let _lock = RepoLock::acquire(Arc::clone(&self.storage), LockMode::Shared, "key add")?;
        guarded(|| {
            let repo = self.handle(None, None)?;
            let id = repo
                .add_key(password, &KeyOptions::default())
                .map_err(|e| EngineError::rustic(&e))?;
            Ok(full_hex(&id))
        })
    }

    /// Lists the keys.
    pub fn list_keys(&self) -> EngineResult<Vec<KeyInfo>> {
        #[derive(serde::Deserialize)]
        struct KeyHeader {
            hostname: Option<String>,
            username: Option<String>,
            created: Option<String>,
        }
        let mut out = Vec::new();
        for o in self.storage.list("keys/")? {
            let id = o.key.trim_start_matches("keys/").to_owned();
            let header: KeyHeader = serde_json::from_slice(&self.storage.get(&o.key)?)
                .map_err(|e| EngineError::Engine(format!("key {id} is unreadable: {e}")))?;
            out.push(KeyInfo {
                current: self.key_id.as_deref() == Some(id.as_str()),
                id,
                hostname: header.hostname,
                username: header.username,
                created: header.created,
            });
        }
        Ok(out)
    }

    /// Removes a key (by id or unique id prefix). The key that opened this
    /// session and the last remaining key cannot be removed.
    pub fn remove_key(&self, id_prefix: &str) -> EngineResult<String> {
        let _lock =
            RepoLock::acquire(Arc::clone(&self.storage), LockMode::Exclusive, "key remove")?;
        let keys = self.list_keys()?;
        let matching: Vec<_> = keys
            .iter()
            .filter(|k| k.id.starts_with(id_prefix))
            .collect();
        let key = match matching.as_slice() {
            [k] => *k,
            [] => return Err(EngineError::NotFound(format!("no key {id_prefix:?}"))),
            _ => {
                return Err(EngineError::InvalidInput(format!(
                    "key prefix {id_prefix:?} is ambiguous"
                )));
            }
        };
        if key.current {
            return Err(EngineError::InvalidInput(
                "refusing to remove the key this session was opened with; open with another password first".into(),
            ));
        }
        if keys.len() < 2 {
            return Err(EngineError::InvalidInput(
                "refusing to remove the last key: the repository would become unreadable".into(),
            ));
        }
        self.storage.delete(&format!("keys/{}", key.id))?;
        Ok(key.id.clone())
    }

    // ------------------------------------------------------------------ backup

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
    ) -> EngineResult<Option<String>> {
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
            .map(|s| full_hex(&s.id)))
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
            _lock,
            gate,
            tally,
            counters,
            component,
        } = self.start_backup(backup, progress)?;
        guarded(|| {
            let repo = self.handle(Some(Arc::clone(&gate)), Some(Arc::clone(&counters)))?;
            let parent = self.parent_of(&repo, &component, ContentKind::Tree)?;
            let repo = repo.to_indexed_ids().map_err(|e| EngineError::rustic(&e))?;
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
                self.cancel.clone(),
            );
            let snap = self.snapshot_template(backup, ContentKind::Tree)?;
            let parent_opts = match parent {
                Some(id) => ParentOptions::default()
                    .group_by(SnapshotGroupCriterion::new())
                    .parents(vec![id]),
                None => ParentOptions::default().force(true),
            };
            let bopts = BackupOptions::default()
                .as_path(PathBuf::from(format!("/{component}")))
                .parent_opts(parent_opts);
            let result = repo.archive(&bopts, &src, snap, std::slice::from_ref(&source));
            self.finish_backup(&repo, &component, &gate, result, |summary| {
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
            _lock,
            gate,
            tally,
            counters,
            component,
        } = self.start_backup(backup, progress)?;
        guarded(|| {
            let repo = self.handle(Some(Arc::clone(&gate)), Some(Arc::clone(&counters)))?;
            let repo = repo.to_indexed_ids().map_err(|e| EngineError::rustic(&e))?;
            let path = PathBuf::from(name);
            let src = CheckedSource::new(
                StreamSource::new(&path, reader),
                Arc::clone(&gate),
                Arc::clone(&tally),
                Arc::clone(&counters),
                self.cancel.clone(),
            );
            let snap = self.snapshot_template(backup, kind)?;
            // A stream has no useful parent: its content is chunked and
            // deduplicated against the whole repository anyway.
            let bopts = BackupOptions::default().parent_opts(ParentOptions::default().force(true));
            let result = repo.archive(&bopts, &src, snap, &[path]);
            self.finish_backup(&repo, &component, &gate, result, |summary| {
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
        let mut reader = ChildReader::spawn(command)?;
        reader.cancel = self.cancel.clone();
        self.backup_stream(Box::new(reader), name, backup, progress)
    }

    /// Takes the shared lock and sets up the bookkeeping of one component's backup.
    fn start_backup(
        &self,
        backup: &BackupRef,
        progress: Option<ProgressFn>,
    ) -> EngineResult<BackupJob> {
        Ok(BackupJob {
            _lock: RepoLock::acquire(Arc::clone(&self.storage), LockMode::Shared, "backup")?,
            gate: Arc::new(SnapshotGate::default()),
            tally: Arc::new(SourceTally::default()),
            counters: Counters::new(progress),
            component: backup.component.to_string(),
        })
    }

    /// Turns the archive result into a recorded snapshot or a clean failure.
    fn finish_backup<S: rustic_core::IndexedIds>(
        &self,
        repo: &Repository<S>,
        component: &str,
        gate: &SnapshotGate,
        result: rustic_core::RusticResult<SnapshotFile>,
        cross_check: impl FnOnce(&rustic_core::repofile::SnapshotSummary) -> Option<String>,
    ) -> EngineResult<SnapshotInfo> {
        let cancelled = self.cancel.as_ref().is_some_and(CancelToken::is_cancelled);
        let mut reasons = gate.failures();
        if cancelled {
            // Whatever else failed followed from the cancellation.
            if let Ok(snap) = &result
                && let Err(e) = repo.delete_snapshots(&[snap.id])
            {
                log::warn!(
                    "removing the cancelled snapshot {}: {}",
                    snap.id,
                    e.display_log()
                );
            }
            return Err(EngineError::Cancelled {
                component: component.to_owned(),
            });
        }
        let snap = match result {
            Ok(snap) => snap,
            Err(e) => {
                if reasons.is_empty() {
                    reasons.push(e.display_log());
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

    /// Lists snapshots matching `filter`, oldest first.
    pub fn snapshots(&self, filter: &SnapshotFilter) -> EngineResult<Vec<SnapshotInfo>> {
        guarded(|| {
            let repo = self.handle(None, None)?;
            let mut snaps = repo
                .get_all_snapshots()
                .map_err(|e| EngineError::rustic(&e))?;
            snaps.sort_by_key(|s| s.time.timestamp());
            Ok(snaps
                .iter()
                .map(SnapshotInfo::from_snapshot)
                .filter(|s| filter.matches(s))
                .collect())
        })
    }

    fn find_snapshot(&self, repo: &Repository<OpenStatus>, id: &str) -> EngineResult<SnapshotFile> {
        repo.get_snapshot_from_str(id, |_| true)
            .map_err(|e| EngineError::NotFound(format!("snapshot {id:?}: {}", e.display_log())))
    }

    // ------------------------------------------------------------------ restore

    /// Restores a tree snapshot into `dest`. With [`RestoreMode::RefuseNonEmpty`]
    /// a non-empty `dest` is refused before anything is read. The data is
    /// written into a staging directory on `dest`'s own mount (beside it, or
    /// inside it when `dest` is a mount point) and moved into place only when
    /// complete; on any failure `dest` is as it was. Into an existing
    /// destination, each entry is swapped atomically with its old version,
    /// which is deleted only once every entry is in place (per entry, not the
    /// whole tree: see the `commit` module). Names in the snapshot's tree
    /// are checked first (a foreign repository is untrusted): an absolute
    /// name, `..`, `.`, an empty name, `/` or NUL, or a path twice, is refused
    /// before anything is written.
    pub fn restore_tree(
        &self,
        snapshot: &str,
        dest: &Path,
        mode: RestoreMode,
        progress: Option<ProgressFn>,
    ) -> EngineResult<SnapshotInfo> {
        if mode == RestoreMode::RefuseNonEmpty && !restore::is_empty_or_absent(dest)? {
            return Err(EngineError::DestinationNotEmpty(dest.to_path_buf()));
        }
        let _lock = RepoLock::acquire(Arc::clone(&self.storage), LockMode::Shared, "restore")?;
        let counters = Counters::new(progress);
        guarded(|| {
            let repo = self.handle(None, None)?;
            let snap = self.find_snapshot(&repo, snapshot)?;
            let info = SnapshotInfo::from_snapshot(&snap);
            if info.kind == Some(ContentKind::Stream) {
                return Err(EngineError::InvalidInput(format!(
                    "snapshot {} holds a stream, not a directory tree: restore it to a file",
                    info.id
                )));
            }
            let [root_path] = info.paths.as_slice() else {
                return Err(EngineError::InvalidInput(format!(
                    "snapshot {} has {} paths; Coffer restores snapshots of one tree",
                    info.id,
                    info.paths.len()
                )));
            };
            let repo = repo.to_indexed().map_err(|e| EngineError::rustic(&e))?;
            let root = repo
                .node_from_snapshot_and_path(&snap, root_path)
                .map_err(|e| EngineError::rustic(&e))?;
            let staging = Staging::for_dest(dest)?;
            if info.sealed {
                let identity = self.identity_for(&info)?;
                let dirs = self.read_sealed(&repo, &root, identity, true, |plain| {
                    tree_tar::unpack_tree(plain, &staging.path, &counters, TarOrigin::Repository)
                })?;
                commit_unpacked(&staging, dest, mode, &dirs)?;
                return Ok(info);
            }
            let dirs = restore::restore_tree_into(&repo, &root, &staging.path, &counters)?;
            restore::sync_filesystem(&staging.path)?;
            restore::commit(&staging, mode)?;
            restore::apply_dir_metadata(dest, &dirs)?;
            if root.node_type == rustic_core::repofile::NodeType::Dir {
                restore::apply_dir_node(dest, Path::new(""), &root.meta)?;
            } else {
                crate::meta::apply(dest, &root.node_type, &root.meta)?;
            }
            // The renames and directory metadata, too.
            restore::sync_filesystem(dest)?;
            Ok(info)
        })
    }

    /// Writes a stream snapshot's bytes to `out`.
    pub fn restore_stream(
        &self,
        snapshot: &str,
        out: &mut dyn Write,
    ) -> EngineResult<SnapshotInfo> {
        let _lock = RepoLock::acquire(Arc::clone(&self.storage), LockMode::Shared, "restore")?;
        guarded(|| {
            let repo = self.handle(None, None)?;
            let snap = self.find_snapshot(&repo, snapshot)?;
            let info = SnapshotInfo::from_snapshot(&snap);
            let [path] = info.paths.as_slice() else {
                return Err(EngineError::InvalidInput(format!(
                    "snapshot {} is not a single stream",
                    info.id
                )));
            };
            if info.kind == Some(ContentKind::Tree) {
                return Err(EngineError::InvalidInput(format!(
                    "snapshot {} holds a directory tree, not a stream: restore it to a directory",
                    info.id
                )));
            }
            let repo = repo.to_indexed().map_err(|e| EngineError::rustic(&e))?;
            let node = repo
                .node_from_snapshot_and_path(&snap, path)
                .map_err(|e| EngineError::rustic(&e))?;
            if info.sealed {
                let identity = self.identity_for(&info)?;
                self.read_sealed(&repo, &node, identity, true, |plain| {
                    std::io::copy(plain, out).map(|_| ())
                })?;
                return Ok(info);
            }
            dump_counted(&repo, &node, out, &info.id)?;
            Ok(info)
        })
    }

    /// How `snapshot` travels as one file in an export: a stream as its bytes, a sealed snapshot as its age file
    /// (never decrypted), a tree as a GNU tar ([`Repo::write_portable`]).
    /// The length is exact, from metadata alone.
    pub fn portable_form(&self, snapshot: &str) -> EngineResult<PortableForm> {
        let _lock = RepoLock::acquire(Arc::clone(&self.storage), LockMode::Shared, "export")?;
        guarded(|| {
            let repo = self.handle(None, None)?;
            let snap = self.find_snapshot(&repo, snapshot)?;
            let info = SnapshotInfo::from_snapshot(&snap);
            let repo = repo.to_indexed().map_err(|e| EngineError::rustic(&e))?;
            let (node, single) = portable_root(&repo, &snap, &info)?;
            let component = info
                .backup
                .as_ref()
                .map_or_else(|| "tree".to_owned(), |b| b.component.to_string());
            let (file_name, len) = if single {
                // A stream's node records no size (it is unknown when the
                // node is written); the snapshot summary has it.
                let len = if node.meta.size > 0 {
                    node.meta.size
                } else if snap.summary.is_some() {
                    info.bytes
                } else {
                    dump_counted(&repo, &node, &mut std::io::sink(), &info.id)?
                };
                (info.paths[0].clone(), len)
            } else {
                let len = tree_tar(&repo, &node, &mut std::io::sink(), false)?;
                (format!("{component}.tar"), len)
            };
            Ok(PortableForm {
                file_name,
                len,
                content: info.kind.unwrap_or(ContentKind::Stream),
                sealed: info.sealed,
            })
        })
    }

    /// Writes the portable form of `snapshot` ([`Repo::portable_form`]) to
    /// `out`; returns the bytes written.
    pub fn write_portable(&self, snapshot: &str, out: &mut dyn Write) -> EngineResult<u64> {
        let _lock = RepoLock::acquire(Arc::clone(&self.storage), LockMode::Shared, "export")?;
        guarded(|| {
            let repo = self.handle(None, None)?;
            let snap = self.find_snapshot(&repo, snapshot)?;
            let info = SnapshotInfo::from_snapshot(&snap);
            let repo = repo.to_indexed().map_err(|e| EngineError::rustic(&e))?;
            let (node, single) = portable_root(&repo, &snap, &info)?;
            if single {
                return dump_counted(&repo, &node, out, &info.id);
            }
            tree_tar(&repo, &node, out, true)
        })
    }

    /// Checks, before anything is restored, that this handle's identity opens
    /// the sealed snapshot (`Ok` for a snapshot that is not sealed). Reads
    /// only the age header.
    pub fn check_identity(&self, snapshot: &str) -> EngineResult<()> {
        let _lock = RepoLock::acquire(Arc::clone(&self.storage), LockMode::Shared, "restore")?;
        guarded(|| {
            let repo = self.handle(None, None)?;
            let snap = self.find_snapshot(&repo, snapshot)?;
            let info = SnapshotInfo::from_snapshot(&snap);
            if !info.sealed {
                return Ok(());
            }
            let identity = self.identity_for(&info)?;
            let repo = repo.to_indexed().map_err(|e| EngineError::rustic(&e))?;
            // A sealed snapshot is one file: its portable form is the age file.
            let (node, _) = portable_root(&repo, &snap, &info)?;
            self.read_sealed(&repo, &node, identity, false, |_| Ok(()))
        })
    }

    /// The identity a sealed snapshot needs, or an error saying so.
    fn identity_for(&self, info: &SnapshotInfo) -> EngineResult<&AgeIdentity> {
        self.identity
            .as_deref()
            .ok_or_else(|| EngineError::SealedWithoutIdentity {
                snapshot: info.id.clone(),
            })
    }

    /// Streams the sealed file `node` through age decryption into `consume`.
    /// rustic_core only writes a file out, so it dumps into a pipe on a
    /// scoped thread while this one decrypts. With `whole`, the dump must
    /// also finish cleanly (a consumer that stops early ends it with a
    /// broken pipe, which is expected only for a header check).
    fn read_sealed<S: rustic_core::IndexedFull + Sync, T>(
        &self,
        repo: &Repository<S>,
        node: &rustic_core::repofile::Node,
        identity: &AgeIdentity,
        whole: bool,
        consume: impl FnOnce(&mut dyn Read) -> std::io::Result<T>,
    ) -> EngineResult<T> {
        let (mut pipe, mut writer) =
            std::io::pipe().map_err(|e| EngineError::io("creating a pipe", e))?;
        std::thread::scope(|scope| {
            let dumper = scope.spawn(move || {
                let result = repo.dump(node, &mut writer);
                drop(writer);
                result
            });
            let consumed =
                seal::open_sealed(&mut pipe, identity).and_then(|mut plain| consume(&mut plain));
            // Whatever the consumer left unread ends the dump with a broken pipe.
            drop(pipe);
            let dumped = dumper
                .join()
                .map_err(|_| EngineError::Panicked("reading the sealed snapshot".into()))?;
            match (consumed, dumped) {
                (Ok(v), Ok(())) => Ok(v),
                (Ok(v), Err(_)) if !whole => Ok(v),
                (Ok(_), Err(e)) => Err(EngineError::Engine(format!(
                    "reading the sealed snapshot: {}",
                    e.display_log()
                ))),
                (Err(e), Ok(())) => Err(EngineError::Unseal(e.to_string())),
                (Err(e), Err(de)) => Err(EngineError::Unseal(format!(
                    "{e} (reading the snapshot: {})",
                    de.display_log()
                ))),
            }
        })
    }

    // ------------------------------------------------------------------ maintenance

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
        let _lock = RepoLock::acquire(Arc::clone(&self.storage), LockMode::Shared, "check")?;
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
        let _lock = RepoLock::acquire(Arc::clone(&self.storage), LockMode::Exclusive, "forget")?;
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
        let _lock = RepoLock::acquire(Arc::clone(&self.storage), LockMode::Exclusive, "prune")?;
        guarded(|| {
            let repo = self.handle(None, None)?;
            let mut opts = PruneOptions::default().instant_delete(instant);
            if instant {
                // Also delete packs an earlier prune marked, without waiting
                // out their grace period.
                opts = opts.keep_delete(rustic_core::jiff::Span::new());
            }
            let plan = repo
                .prune_plan(&opts)
                .map_err(|e| EngineError::rustic(&e))?;
            // rustic_core's statistics: `packs.unused` are packs no snapshot
            // uses any more (marked now, or deleted now when instant);
            // `packs_to_delete.remove` are packs marked by an earlier prune
            // whose grace period is over; `packs_to_delete.keep` are marked
            // packs still waiting.
            let stats = &plan.stats;
            let sizes = stats.size_sum();
            let (unused_removed, unused_marked, unused_bytes) = if instant {
                (stats.packs.unused, 0, sizes.remove)
            } else {
                (0, stats.packs.unused, 0)
            };
            let report = PruneReport {
                packs_removed: stats.packs_to_delete.remove + unused_removed,
                packs_repacked: stats.packs.repack,
                packs_marked: unused_marked,
                packs_waiting: stats.packs_to_delete.keep,
                bytes_freed: stats.size_to_delete.remove + sizes.repackrm + unused_bytes,
            };
            repo.prune(&opts, plan)
                .map_err(|e| EngineError::rustic(&e))?;
            Ok(report)
        })
    }
}

/// What one component's backup holds while it runs.
struct BackupJob {
    /// Held until the backup ends.
    _lock: RepoLock,
    /// Refuses the snapshot file once any failure is recorded.
    gate: Arc<SnapshotGate>,
    /// What the source yielded, for the cross-check.
    tally: Arc<SourceTally>,
    counters: Arc<Counters>,
    component: String,
}

/// A snapshot as one file: see [`Repo::portable_form`].
#[derive(Debug, Clone, Serialize)]
pub struct PortableForm {
    /// `db.pgdump`, `keys.tar.age`, `uploads.tar`.
    pub file_name: String,
    /// Its exact length in bytes.
    pub len: u64,
    /// What it restores as.
    pub content: ContentKind,
    /// An age file (a sealed snapshot, carried as stored).
    pub sealed: bool,
}

/// The node a portable form starts from, and whether it is a single file
/// (a stream or a sealed tree) rather than a tree to archive.
fn portable_root<S: rustic_core::IndexedFull>(
    repo: &Repository<S>,
    snap: &SnapshotFile,
    info: &SnapshotInfo,
) -> EngineResult<(rustic_core::repofile::Node, bool)> {
    let [path] = info.paths.as_slice() else {
        return Err(EngineError::InvalidInput(format!(
            "snapshot {} has {} paths; Coffer exports snapshots of one tree or stream",
            info.id,
            info.paths.len()
        )));
    };
    let node = repo
        .node_from_snapshot_and_path(snap, path)
        .map_err(|e| EngineError::rustic(&e))?;
    let single = info.sealed || info.kind != Some(ContentKind::Tree);
    if single && node.node_type != rustic_core::repofile::NodeType::File {
        return Err(EngineError::InvalidInput(format!(
            "snapshot {} should hold one file at {path}",
            info.id
        )));
    }
    Ok((node, single))
}

/// Restores a tree from a tar — a `files` component's native or exported
/// form, from outside the repository — into `dest` the way
/// [`Repo::restore_tree`] does: unpacked into staging on `dest`'s mount and
/// moved into place only when complete, so on any failure `dest` is as it
/// was.
///
/// The archive is untrusted ([`TarOrigin::Untrusted`]). Refused, with
/// nothing written outside the staging directory: unsafe paths (absolute,
/// `..`), entries below a symbolic link or at the path of an earlier entry
/// (a symlink's above all; a directory listed twice is allowed), hard links,
/// sparse files, device nodes, and extension headers (PAX, GNU long names)
/// declaring more than 1 MiB each. Restored as content owned by the user
/// Coffer runs as: owners in the archive are ignored, set-uid and set-gid
/// bits are cleared (permissions and the sticky bit are kept), and only
/// `user.*` extended attributes are set (`security.*` — file capabilities,
/// SELinux labels —, `trusted.*` and `system.*` — ACLs — are dropped).
/// Directory metadata is applied through descriptors opened without
/// following symbolic links.
pub fn restore_tree_from_tar(
    tar: &mut dyn Read,
    dest: &Path,
    mode: RestoreMode,
    progress: Option<ProgressFn>,
) -> EngineResult<()> {
    if mode == RestoreMode::RefuseNonEmpty && !restore::is_empty_or_absent(dest)? {
        return Err(EngineError::DestinationNotEmpty(dest.to_path_buf()));
    }
    let counters = Counters::new(progress);
    let staging = Staging::for_dest(dest)?;
    let dirs = tree_tar::unpack_tree(tar, &staging.path, &counters, TarOrigin::Untrusted)
        .map_err(|e| EngineError::InvalidInput(format!("the tree's archive: {e}")))?;
    commit_unpacked(&staging, dest, mode, &dirs)
}

/// `path` resolved to a canonical directory, or why it cannot be `doing`.
fn canonical_dir(path: &Path, doing: &str) -> EngineResult<PathBuf> {
    let meta = std::fs::metadata(path).map_err(|e| {
        EngineError::InvalidInput(format!("cannot {doing} {}: {e}", path.display()))
    })?;
    if !meta.is_dir() {
        return Err(EngineError::InvalidInput(format!(
            "cannot {doing} {}: not a directory",
            path.display()
        )));
    }
    std::fs::canonicalize(path)
        .map_err(|e| EngineError::io(format!("resolving {}", path.display()), e))
}

/// Moves an unpacked tree from `staging` into `dest`, then applies its
/// directories' metadata; durable when it returns.
fn commit_unpacked(
    staging: &Staging,
    dest: &Path,
    mode: RestoreMode,
    dirs: &[tree_tar::UnpackedDir],
) -> EngineResult<()> {
    restore::sync_filesystem(&staging.path)?;
    restore::commit(staging, mode)?;
    tree_tar::apply_unpacked_dirs(dest, dirs).map_err(|e| {
        EngineError::io(
            format!("restoring directory metadata in {}", dest.display()),
            e,
        )
    })?;
    // The renames and directory metadata, too.
    restore::sync_filesystem(dest)
}

/// Writes a GNU tar of the directory `root` (with `excludes`, walked as a
/// backup walks it) to `out` — a `files` component's native form, laid out
/// like the trees in exports. Returns the bytes written.
pub fn write_dir_tar(
    root: &Path,
    excludes: &[String],
    out: &mut dyn Write,
    cancel: Option<&CancelToken>,
) -> EngineResult<u64> {
    let root = canonical_dir(root, "archive")?;
    let excludes = Excludes::default().globs(exclude_globs(excludes)?);
    let mut counted = CountingWriter {
        inner: out,
        written: 0,
    };
    tree_tar::write_plain_tree(&mut counted, &root, &excludes, cancel)
        .map_err(|e| EngineError::io(format!("archiving {}", root.display()), e))?;
    Ok(counted.written)
}

/// Runs `command` and copies its standard output to `out`; fails — after
/// the bytes it wrote — when it exits non-zero, with its standard error.
/// A dump command's native form. Returns the bytes written.
pub fn write_command_output(command: &mut Command, out: &mut dyn Write) -> EngineResult<u64> {
    let mut reader = ChildReader::spawn(command)?;
    let program = reader.program.clone();
    std::io::copy(&mut reader, out).map_err(|e| EngineError::io(program, e))
}

/// Writes the tree below `root` as a GNU tar (the sealed-tree layout, see
/// `tree_tar::append_node`) and returns its length. Without `content`, file
/// data is replaced by zeros of the same length: the exact size, from
/// metadata alone.
fn tree_tar<S: rustic_core::IndexedFull + Sync>(
    repo: &Repository<S>,
    root: &rustic_core::repofile::Node,
    out: &mut dyn Write,
    content: bool,
) -> EngineResult<u64> {
    use rustic_core::repofile::NodeType;
    let io_err = |e: std::io::Error| EngineError::io("writing the tree archive", e);
    let mut tar = tar::Builder::new(CountingWriter {
        inner: out,
        written: 0,
    });
    let dot = std::path::Path::new(".");
    tree_tar::append_node(&mut tar, dot, root, None, dot).map_err(io_err)?;
    let opts = rustic_core::LsOptions::default().recursive(true);
    // A foreign repository's names are judged as restores judge them; the
    // length pass ([`Repo::portable_form`]) refuses before any export is
    // written.
    let mut names = crate::paths::NodeNames::default();
    for item in repo.ls(root, &opts).map_err(|e| EngineError::rustic(&e))? {
        let (rel, node) = item.map_err(|e| EngineError::rustic(&e))?;
        names.check(&rel, &node)?;
        if node.node_type != NodeType::File {
            tree_tar::append_node(&mut tar, &rel, &node, None, &rel).map_err(io_err)?;
        } else if !content {
            let zeros = Box::new(std::io::repeat(0));
            tree_tar::append_node(&mut tar, &rel, &node, Some(zeros), &rel).map_err(io_err)?;
        } else {
            // rustic_core writes file content out; tar reads it in: a pipe.
            let (mut pipe, mut writer) =
                std::io::pipe().map_err(|e| EngineError::io("creating a pipe", e))?;
            std::thread::scope(|scope| {
                let node = &node;
                let dumper = scope.spawn(move || {
                    let r = repo.dump(node, &mut writer);
                    drop(writer);
                    r
                });
                let appended =
                    tree_tar::append_node(&mut tar, &rel, node, Some(Box::new(&mut pipe)), &rel);
                drop(pipe);
                let dumped = dumper
                    .join()
                    .map_err(|_| EngineError::Panicked(format!("reading {}", rel.display())))?;
                dumped.map_err(|e| {
                    EngineError::Engine(format!("reading {}: {}", rel.display(), e.display_log()))
                })?;
                appended.map_err(io_err)
            })?;
        }
    }
    let counted = tar.into_inner().map_err(io_err)?;
    Ok(counted.written)
}

/// Dumps the file `node` of snapshot `id` into `out`; returns its length.
fn dump_counted<S: rustic_core::IndexedFull>(
    repo: &Repository<S>,
    node: &rustic_core::repofile::Node,
    out: &mut dyn Write,
    id: &str,
) -> EngineResult<u64> {
    let mut w = CountingWriter {
        inner: out,
        written: 0,
    };
    repo.dump(node, &mut w)
        .map_err(|e| EngineError::Engine(format!("reading snapshot {id}: {}", e.display_log())))?;
    Ok(w.written)
}

/// Counts what passes through (and gives rustic_core's `dump`, which wants a
/// sized `Write`, one over a `dyn Write`).
struct CountingWriter<'a> {
    inner: &'a mut dyn Write,
    written: u64,
}

impl Write for CountingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The standard output of a child process, failing at EOF unless the child
/// exited with status 0, so a dump command's failure is seen *before* the
/// snapshot would be recorded.
struct ChildReader {
    child: Child,
    stdout: std::process::ChildStdout,
    stderr: StderrTail,
    program: String,
    finished: bool,
    /// Checked while the program is silent, so a cancel stops a dump that
    /// writes nothing for a long time (a `sleep`, a server-side lock wait).
    cancel: Option<CancelToken>,
}

impl ChildReader {
    /// Starts `command` with its output piped (standard input closed).
    fn spawn(command: &mut Command) -> EngineResult<Self> {
        let program = format!("{:?}", command.get_program());
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| EngineError::io(format!("starting {program}"), e))?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            let _ = child.kill();
            return Err(EngineError::Engine(format!("{program}: no pipes")));
        };
        Ok(Self {
            child,
            stdout,
            stderr: StderrTail::collect(stderr),
            program,
            finished: false,
            cancel: None,
        })
    }

    /// Waits until the pipe has data (or EOF), checking the cancel token every
    /// 200 ms; on cancel, kills the program.
    fn wait_readable(&mut self) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let Some(cancel) = &self.cancel else {
            return Ok(());
        };
        let mut fds = libc::pollfd {
            fd: self.stdout.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        loop {
            if cancel.is_cancelled() {
                self.finished = true;
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(std::io::Error::other(crate::source::CANCELLED));
            }
            // SAFETY: one valid pollfd for an fd this struct owns.
            let rc = unsafe { libc::poll(&mut fds, 1, 200) };
            if rc > 0 {
                return Ok(());
            }
            if rc < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }

    fn finish(&mut self) -> std::io::Result<()> {
        self.finished = true;
        let status = self.child.wait()?;
        let stderr = self.stderr.finish();
        if status.success() {
            return Ok(());
        }
        Err(std::io::Error::other(describe_failure(
            &self.program,
            status,
            &stderr,
        )))
    }
}

impl Read for ChildReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.finished {
            return Ok(0);
        }
        self.wait_readable()?;
        let n = self.stdout.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.finish()?;
        }
        Ok(n)
    }
}

impl Drop for ChildReader {
    fn drop(&mut self) {
        if !self.finished {
            // The backup was abandoned: do not leave the dump running.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
