//! Coffer's backup engine — the only crate that touches `rustic_core`.
//!
//! Repositories are restic repositories: plain `restic` and `rustic` open
//! them, so data is recoverable without Coffer. Storage comes from
//! `coffer-targets` through an adapter; no other crate sees a rustic type.
//!
//! What this layer adds to rustic_core, and why:
//!
//! * **No incomplete backup is ever recorded.** rustic_core skips unreadable
//!   files and still saves the snapshot; here every entry, open and read is
//!   accounted for, the storage adapter refuses to write the snapshot file
//!   while any problem is known, and the result is cross-checked afterwards.
//! * **Snapshots carry their backup.** Tags hold the backup id, label,
//!   component and component count, so backups can be rebuilt from the
//!   repository alone.
//! * **Explicit parents.** The previous snapshot of the same component is the
//!   parent, so an unchanged re-backup reads only metadata.
//! * **A fresh index per job**, because an engine handle does not see blobs
//!   written through another.
//! * **Locks** that all Coffer processes honour (see [`lock`]).
//! * **A bounded-memory restore** into staging, moved into place on success;
//!   panics inside rustic_core become errors ([`EngineError::Panicked`]).
//!
//! The API is synchronous and may block for a long time: async callers run it
//! with `tokio::task::spawn_blocking`.

mod archiver;
pub mod audit;
mod backend;
mod cancel;
pub mod child;
mod commit;
mod crypto;
mod error;
mod fetch;
mod fsops;
#[cfg(test)]
mod hostile_repo_tests;
pub mod lock;
pub mod memory;
mod meta;
mod paths;
mod progress;
mod repo;
mod restic_locks;
mod restore;
pub mod seal;
mod source;
mod tree_tar;
mod uploads;

pub use cancel::CancelToken;
pub use error::{EngineError, EngineResult};
pub use progress::{ProgressFn, ProgressInfo};
pub use repo::{
    AUDIT_PREFIX, Affected, ArchiverKind, AuditCopy, CheckReport, ContentKind, Damage, EntryKind,
    KeyInfo, PortableForm, PrunePrepared, PruneReport, PruneSettings, Repo, SnapshotFilter,
    SnapshotInfo, TreeBackupOptions, TreeEntry, restore_tree_from_tar, tags, write_command_output,
    write_dir_tar,
};
pub use restic_locks::ResticLock;
pub use restore::RestoreMode;
pub use seal::{AgeIdentity, AgeRecipients, TarOrigin};
