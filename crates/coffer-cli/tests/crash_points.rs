//! The crash suite: the server aborted (as by `kill -9`) at each of the
//! named crash points (`coffer_model::crash::POINTS`, docs/testing.md), in
//! the operation that passes it; after a restart the repository passes
//! `restic check --read-data`, no backup is `READY` that is not complete,
//! nothing is left running, the audit log verifies, an interrupted restore's
//! destination is in the state its kind promises, and the operation done
//! again succeeds. The harness is `common/crash.rs`.
//!
//! One test per phase, so they run side by side; `COFFER_CRASH_POINTS`
//! (comma-separated) runs only the points named.

mod common;

use coffer_model::crash::POINTS;
use common::crash::{Scenario, run_case};

/// Every point, with the operation that passes it.
const CASES: &[(&str, Scenario)] = &[
    ("store.pack.before", Scenario::Backup),
    ("store.pack.after", Scenario::Backup),
    ("store.index.before", Scenario::Backup),
    ("store.index.after", Scenario::Backup),
    ("store.snapshot.before", Scenario::Backup),
    ("store.snapshot.after", Scenario::Backup),
    ("lock.object.written", Scenario::Backup),
    ("lock.restic.written", Scenario::Backup),
    ("lock.releasing", Scenario::Backup),
    ("backup.recorded", Scenario::Backup),
    ("backup.component.started", Scenario::Backup),
    ("backup.component.recorded", Scenario::Backup),
    ("backup.finished", Scenario::Backup),
    ("hook.pre-backup.ran", Scenario::Backup),
    ("hook.post-backup.ran", Scenario::Backup),
    ("restore.recorded", Scenario::RestoreFiles),
    ("restore.component.started", Scenario::RestoreFiles),
    ("restore.component.recorded", Scenario::RestoreFiles),
    ("restore.finished", Scenario::RestoreFiles),
    ("hook.pre-restore.ran", Scenario::RestoreFiles),
    ("hook.post-restore.ran", Scenario::RestoreFiles),
    ("restore.tree.staged", Scenario::RestoreFiles),
    ("restore.tree.commit.step", Scenario::RestoreFiles),
    ("restore.tree.committed", Scenario::RestoreFiles),
    // The moves into place again, for the other modes.
    ("restore.tree.staged", Scenario::RestoreFilesMirror),
    ("restore.tree.commit.step", Scenario::RestoreFilesMirror),
    ("restore.tree.committed", Scenario::RestoreFilesMirror),
    ("restore.tree.staged", Scenario::RestoreFilesElsewhere),
    ("restore.tree.committed", Scenario::RestoreFilesElsewhere),
    ("restore.sqlite.staged", Scenario::RestoreSqlite),
    ("restore.postgres.loading", Scenario::RestorePostgres),
    ("restore.mysql.loading", Scenario::RestoreMysql),
    ("restore.redis.copying", Scenario::RestoreRedis),
    ("restore.s3.uploading", Scenario::RestoreS3),
    ("restore.command.running", Scenario::RestoreCommand),
    ("export.recorded", Scenario::Export),
    ("export.file.writing", Scenario::Export),
    ("export.file.written", Scenario::Export),
    ("export.finished", Scenario::Export),
    ("upload.spooled", Scenario::Upload),
    ("upload.unpacked", Scenario::Upload),
    ("delete.forgetting", Scenario::Delete),
    ("delete.forgotten", Scenario::Delete),
    ("remove.snapshot.before", Scenario::Delete),
    ("remove.snapshot.after", Scenario::Delete),
    ("prune.recorded", Scenario::PruneMark),
    ("prune.planned", Scenario::PruneMark),
    ("prune.locked", Scenario::PruneMark),
    ("prune.finished", Scenario::PruneMark),
    ("remove.index.before", Scenario::PruneMark),
    ("remove.index.after", Scenario::PruneMark),
    ("remove.pack.before", Scenario::PruneRemove),
    ("remove.pack.after", Scenario::PruneRemove),
    ("check.recorded", Scenario::Check),
    ("check.finished", Scenario::Check),
    ("drill.restored", Scenario::Drill),
    ("drill.finished", Scenario::Drill),
    ("audit.batch.written", Scenario::Audit),
];

fn run(scenarios: &[Scenario]) {
    let only = std::env::var("COFFER_CRASH_POINTS").ok();
    for (point, scenario) in CASES.iter().filter(|(_, s)| scenarios.contains(s)) {
        if only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|p| p == *point))
        {
            continue;
        }
        eprintln!("=== crash at {point} ({scenario:?})");
        run_case(point, *scenario);
    }
}

#[test]
fn every_point_has_a_case_and_a_place_in_the_code() {
    let cased: Vec<&str> = CASES.iter().map(|(p, _)| *p).collect();
    for p in POINTS {
        assert!(cased.contains(p), "crash point {p} has no case");
    }
    for p in &cased {
        assert!(POINTS.contains(p), "case {p} is not a crash point");
    }
    assert!(POINTS.len() >= 50, "{} points", POINTS.len());
    // Each point is passed somewhere outside its list.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut sources = String::new();
    for krate in ["coffer-engine", "coffer-components", "coffer-server"] {
        let mut dirs = vec![root.join(krate).join("src")];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let path = e.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|x| x == "rs") {
                    sources.push_str(&std::fs::read_to_string(&path).unwrap());
                }
            }
        }
    }
    for p in POINTS {
        assert!(
            sources.contains(&format!("\"{p}\"")),
            "crash point {p} is passed nowhere"
        );
    }
    // And docs/testing.md names each.
    let doc = std::fs::read_to_string(root.join("../docs/testing.md")).unwrap();
    for p in POINTS {
        assert!(
            doc.contains(&format!("`{p}`")),
            "docs/testing.md does not name {p}"
        );
    }
}

#[test]
fn crashes_while_backing_up() {
    run(&[Scenario::Backup]);
}

#[test]
fn crashes_while_restoring_a_tree() {
    run(&[Scenario::RestoreFiles]);
}

#[test]
fn crashes_while_mirroring_a_tree_and_restoring_it_elsewhere() {
    run(&[
        Scenario::RestoreFilesMirror,
        Scenario::RestoreFilesElsewhere,
    ]);
}

#[test]
fn crashes_while_restoring_databases_objects_and_commands() {
    run(&[
        Scenario::RestoreSqlite,
        Scenario::RestorePostgres,
        Scenario::RestoreMysql,
        Scenario::RestoreRedis,
        Scenario::RestoreS3,
        Scenario::RestoreCommand,
    ]);
}

#[test]
fn crashes_while_exporting_and_restoring_uploads() {
    run(&[Scenario::Export, Scenario::Upload]);
}

#[test]
fn crashes_while_deleting_and_pruning() {
    run(&[Scenario::Delete, Scenario::PruneMark, Scenario::PruneRemove]);
}

#[test]
fn crashes_while_checking_drilling_and_auditing() {
    run(&[Scenario::Check, Scenario::Drill, Scenario::Audit]);
}
