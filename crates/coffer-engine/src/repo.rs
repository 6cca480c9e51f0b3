//! The repository API the rest of Coffer uses.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use coffer_model::BackupRef;
use coffer_targets::Storage;
use rustic_core::repofile::{MasterKey, SnapshotFile};
use rustic_core::{
    ConfigOptions, Credentials, KeyOptions, NoProgressBars, OpenStatus, Repository,
    RepositoryBackends, RepositoryOptions,
};
use serde::Serialize;

use crate::backend::{SnapshotGate, StorageBackend};
use crate::cancel::CancelToken;
use crate::fetch::Fetcher;
use crate::lock::{LockMode, RepoLock};
use crate::progress::{Counters, EngineProgressBars};
use crate::seal::{AgeIdentity, AgeRecipients};
use crate::{EngineError, EngineResult};

mod audit;
mod backup;
mod browse;
mod copy;
mod damage;
mod keys;
mod maintenance;
mod portable;
mod private;
mod restore;
mod sealed;

pub use audit::{AUDIT_PREFIX, AuditCopy};
pub use backup::TreeBackupOptions;
pub use browse::{EntryKind, TreeEntry};
pub use damage::{Affected, Damage};
pub use keys::KeyInfo;
pub use maintenance::{CheckReport, PrunePrepared, PruneReport, PruneSettings};
pub use portable::{PortableForm, write_command_output, write_dir_tar};
pub use restore::restore_tree_from_tar;

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

/// Which archiver writes backups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArchiverKind {
    /// Coffer's own parallel archiver (see `archiver` in the engine's
    /// architecture notes).
    #[default]
    Coffer,
    /// rustic_core's archiver, as before Coffer had its own.
    Rustic,
}

impl ArchiverKind {
    /// `coffer` or `rustic`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Coffer => "coffer",
            Self::Rustic => "rustic",
        }
    }
}

impl std::str::FromStr for ArchiverKind {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "coffer" => Ok(Self::Coffer),
            "rustic" => Ok(Self::Rustic),
            other => Err(EngineError::InvalidInput(format!(
                "unknown archiver {other:?}: use \"coffer\" or \"rustic\""
            ))),
        }
    }
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
    /// What writes this handle's backups.
    archiver: ArchiverKind,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repo")
            .field("location", &self.storage.location())
            .finish_non_exhaustive()
    }
}

impl Repo {
    /// Takes this repository's lock for `owner` ([`crate::lock`]): with a
    /// restic lock file beside it, and plain restic's locks honoured.
    pub(crate) fn lock(&self, mode: LockMode, owner: &str) -> EngineResult<RepoLock> {
        self.lock_patiently(mode, owner, std::time::Duration::ZERO)
    }

    /// [`Self::lock`], waiting up to `patience` for operations of this
    /// process to release a conflicting one.
    pub(crate) fn lock_patiently(
        &self,
        mode: LockMode,
        owner: &str,
        patience: std::time::Duration,
    ) -> EngineResult<RepoLock> {
        RepoLock::acquire_for_restic(
            Arc::clone(&self.storage),
            mode,
            owner,
            patience,
            Some(&self.key),
        )
    }

    /// Reads this repository's packs for restores and exports.
    fn fetcher(&self) -> Fetcher {
        Fetcher::new(Arc::clone(&self.storage), &self.key)
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
                archiver: ArchiverKind::default(),
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
                archiver: ArchiverKind::default(),
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

    /// A handle on the same repository whose backups `kind` writes.
    pub fn with_archiver(&self, kind: ArchiverKind) -> Self {
        Self {
            archiver: kind,
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
}

/// `path` resolved to a canonical directory, or why it cannot be `doing`.
pub(crate) fn canonical_dir(path: &Path, doing: &str) -> EngineResult<PathBuf> {
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
