//! A backup whose lock cannot be refreshed stops before others would think
//! the lock stale: nothing is recorded, the repository stays valid, and the
//! next backup works once the target does. Lock periods are shortened 120
//! times (refresh every 0.5 s, given up after 4 s; restic's file renewed
//! every 2.5 s, given up after 10 s).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use coffer_engine::{EngineError, Repo, SnapshotFilter};
use coffer_targets::{Storage, StorageErrorKind};
use coffer_testkit::faulty::{FaultyStorage, Op, Rule};
use common::*;

/// Starts a backup of a slow stream, breaks the writes under
/// `broken_prefix` once its lock is taken, and expects the backup to end
/// within `wait` with the lock lost and nothing recorded.
fn backup_with_broken_refreshes(broken_prefix: &str, wait: Duration) {
    coffer_engine::lock::shorten_periods_for_tests(120);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    new_repo(&dir);
    let faulty = FaultyStorage::new(storage(&dir));
    let repo = Repo::open(Arc::clone(&faulty) as Arc<dyn Storage>, PW).unwrap();

    let (tx, backup) = waiting_backup(&repo, &dir, "lost");
    faulty.inject(Rule::always(
        &[Op::Put],
        broken_prefix,
        StorageErrorKind::Transient,
    ));
    // A dump that keeps producing: the backup must stop reading it once
    // the lock is given up, not when the dump ends.
    let broken = Instant::now();
    while !backup.is_finished() {
        assert!(
            broken.elapsed() < wait,
            "the backup went on without its lock"
        );
        let _ = tx.send(vec![7u8; 10_000]);
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(tx);
    match backup.join().unwrap() {
        Err(EngineError::LockLost { reason, .. }) => {
            assert!(reason.contains("injected fault"), "{reason}")
        }
        other => panic!("a backup without its lock ended {other:?}"),
    }
    assert!(faulty.fired() > 0);
    assert!(
        repo.snapshots(&SnapshotFilter::default())
            .unwrap()
            .is_empty(),
        "nothing recorded"
    );

    faulty.heal();
    assert_eq!(count(&dir.join("coffer/locks")), 0, "lock object removed");
    assert_eq!(
        repo.restic_locks().unwrap().len(),
        0,
        "no restic lock of ours left"
    );
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a"), b"after").unwrap();
    backup_dir(&repo, &src, "files");
    coffer_testkit::restic_check(&dir, PW);
}

#[test]
fn a_backup_stops_when_its_lock_object_cannot_be_refreshed() {
    if !coffer_testkit::require_tool("restic") {
        return;
    }
    // Given up 4 s after the last refresh; polled every 0.5 s.
    backup_with_broken_refreshes("coffer/locks/", Duration::from_secs(7));
}

#[test]
fn a_backup_stops_when_its_restic_lock_cannot_be_renewed() {
    if !coffer_testkit::require_tool("restic") {
        return;
    }
    // Given up 10 s after the last renewal.
    backup_with_broken_refreshes("locks/", Duration::from_secs(14));
}
