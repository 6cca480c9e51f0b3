//! Named crash points, for the crash suite (`crates/coffer-cli/tests/crash_points.rs`,
//! docs/testing.md): with `COFFER_CRASH_AT=<name>` in its environment, the
//! process aborts — no destructor, no flush, as `kill -9` would leave it —
//! the first time execution passes [`crash_point`]`("<name>")`;
//! `COFFER_CRASH_AT=<name>@<n>` aborts at the n-th pass. Unset (always, in
//! production), a point costs one atomic load.
//!
//! Points sit where a crash is most likely to hurt: between writing data
//! and recording it, between the steps of a commit, before and after each
//! catalog write. [`POINTS`] lists every one; the suite crashes at each.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable naming the point to crash at.
pub const ENV: &str = "COFFER_CRASH_AT";

/// Every crash point, by phase (docs/testing.md explains each).
pub const POINTS: &[&str] = &[
    // Repository writes and deletes (every operation that changes a repository).
    "store.pack.before",
    "store.pack.after",
    "store.index.before",
    "store.index.after",
    "store.snapshot.before",
    "store.snapshot.after",
    "remove.pack.before",
    "remove.pack.after",
    "remove.index.before",
    "remove.index.after",
    "remove.snapshot.before",
    "remove.snapshot.after",
    // Locks: the lock object written, its restic mirror written, released half-way.
    "lock.object.written",
    "lock.restic.written",
    "lock.releasing",
    // Backup jobs (catalog writes).
    "backup.recorded",
    "backup.component.started",
    "backup.component.recorded",
    "backup.finished",
    // Hooks, once they ran.
    "hook.pre-backup.ran",
    "hook.post-backup.ran",
    "hook.pre-restore.ran",
    "hook.post-restore.ran",
    // Restore jobs (catalog writes).
    "restore.recorded",
    "restore.component.started",
    "restore.component.recorded",
    "restore.finished",
    // Restores of a tree (files): staged, between two moves into place, moved.
    "restore.tree.staged",
    "restore.tree.commit.step",
    "restore.tree.committed",
    // Restores of the other kinds, half-way.
    "restore.sqlite.staged",
    "restore.postgres.loading",
    "restore.mysql.loading",
    "restore.redis.copying",
    "restore.s3.uploading",
    "restore.command.running",
    // Exports.
    "export.recorded",
    "export.file.writing",
    "export.file.written",
    "export.finished",
    // Restores of an upload.
    "upload.spooled",
    "upload.unpacked",
    // Deleting a backup.
    "delete.forgetting",
    "delete.forgotten",
    // Prunes.
    "prune.recorded",
    "prune.planned",
    "prune.locked",
    "prune.finished",
    // Checks and drills.
    "check.recorded",
    "check.finished",
    "drill.restored",
    "drill.finished",
    // The audit log's copy: a batch written, its head not yet.
    "audit.batch.written",
];

struct Armed {
    name: String,
    at: u64,
    seen: AtomicU64,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let spec = std::env::var(ENV).ok()?;
            let (name, at) = match spec.split_once('@') {
                Some((n, at)) => (n, at.parse().ok()?),
                None => (spec.as_str(), 1),
            };
            Some(Armed {
                name: name.to_owned(),
                at,
                seen: AtomicU64::new(0),
            })
        })
        .as_ref()
}

/// Aborts the process here if `COFFER_CRASH_AT` names this point (and this
/// is the pass it counts to); nothing otherwise.
pub fn crash_point(name: &'static str) {
    debug_assert!(
        POINTS.contains(&name),
        "crash point {name} is not in POINTS"
    );
    let Some(a) = armed() else {
        return;
    };
    if a.name == name && a.seen.fetch_add(1, Ordering::SeqCst) + 1 == a.at {
        eprintln!("crash point {name}: aborting");
        std::process::abort();
    }
}
