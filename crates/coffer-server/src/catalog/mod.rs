//! The catalog: what the server knows about targets, backups, restores,
//! exports, tokens, users and job logs, in SQLite (`<data_dir>/catalog.sqlite`).
//!
//! It is a cache of the repositories plus the server's own records: the
//! backups themselves live in the targets, and each component snapshot
//! carries its backup id, label and component count as tags.
//!
//! One file per table's queries. Migrations are the numbered SQL files in
//! `migrations/`, compiled in and applied in order, each inside a
//! transaction; `PRAGMA user_version` records how many ran. The database
//! file (and the WAL and shared-memory files SQLite creates beside it with
//! the same mode) is readable by its owner only: it holds sealed secrets
//! and token hashes.

mod audit;
pub(super) mod backups;
mod checks;
mod copies;
mod db;
mod drills;
mod exports;
mod logs;
mod notifications;
mod prunes;
mod restart;
mod restores;
mod schedules;
mod targets;
mod tokens;
mod users;

pub use audit::AuditEvent;
pub use backups::{BackupComponentRow, BackupRow, NewBackupComponent};
pub use checks::CheckRow;
pub use copies::CopyRow;
pub use db::{Catalog, CatalogError, CatalogResult, now};
pub use drills::{DrillRow, DrillStatus};
pub use exports::{ExportProtection, ExportRow, ExportStatus};
pub use logs::LogWriter;
pub use notifications::NotificationRow;
pub use prunes::{PruneRow, PruneStatus};
pub use restores::{RestoreComponentRow, RestoreRow};
pub use schedules::{RunOutcome, ScheduleRow, ScheduleRunRow};
pub use targets::{TargetMode, TargetRow};
pub use tokens::TokenRow;
pub use users::UserRow;
