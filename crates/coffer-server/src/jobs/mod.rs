//! Jobs: the work that outlives a request. Each backup, restore and export
//! is checked and recorded by its `start` function (which takes the
//! caller's principal and makes every scope and component check itself),
//! then runs on a thread of its own; its components run in parallel under
//! time limits. A job records its states as it goes, so a crash leaves it
//! `BACKING_UP`/`RESTORING`/`EXPORTING` in the catalog, which the next
//! start turns into `ERROR` ("interrupted by restart").

pub mod backup;
pub mod check;
pub mod drill;
pub mod export;
pub mod hooks;
pub mod overrides;
pub mod part;
pub mod prune;
pub mod registry;
pub mod restore;
pub mod runner;
pub mod sensitive_export;
pub mod upload;
