//! The repository's copy of the audit log: written in batches, read back
//! as one chain, and every kind of tampering with the objects named.

mod common;

use coffer_engine::audit::{AuditEntry, AuditHead, AuditRecord};
use common::*;

fn record(i: i64) -> AuditRecord {
    AuditRecord {
        time: 1_800_000_000 + i,
        actor: "usr-1".into(),
        address: Some("192.0.2.7".into()),
        action: "DELETE /api/v1/backups/{id}".into(),
        subject: format!("/api/v1/backups/b{i}"),
        outcome: "204".into(),
    }
}

fn chain(n: i64) -> Vec<AuditEntry> {
    let mut out: Vec<AuditEntry> = Vec::new();
    for i in 0..n {
        out.push(AuditEntry::next(&AuditHead::of(&out), record(i)));
    }
    out
}

fn audit_objects(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("coffer/audit"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    v.sort();
    v
}

#[test]
fn batches_read_back_as_one_chain_and_tampering_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let repo = new_repo(&dir);
    assert_eq!(repo.audit_head().unwrap(), None);
    let copy = repo.read_audit().unwrap();
    assert!(copy.entries.is_empty() && copy.problems.is_empty());

    let all = chain(9);
    repo.append_audit(&all[..3]).unwrap();
    repo.append_audit(&all[3..6]).unwrap();
    // A batch retried after a failure overlaps the one before: counted once.
    repo.append_audit(&all[5..9]).unwrap();
    let copy = repo.read_audit().unwrap();
    assert!(copy.problems.is_empty(), "{:?}", copy.problems);
    assert_eq!(copy.entries, all);
    assert_eq!(copy.head, Some(AuditHead::of(&all)));
    // restic does not mind the objects.
    coffer_testkit::restic_check(&dir, PW);

    // Cut off the tail: the head still says 9.
    let objects = audit_objects(&dir);
    assert_eq!(objects.len(), 3);
    let last = std::fs::read(&objects[2]).unwrap();
    std::fs::remove_file(&objects[2]).unwrap();
    let p = repo.read_audit().unwrap().problems;
    assert!(p.iter().any(|m| m.contains("cut off")), "{p:?}");
    std::fs::write(&objects[2], &last).unwrap();

    // Remove a batch in the middle.
    let middle = std::fs::read(&objects[1]).unwrap();
    std::fs::remove_file(&objects[1]).unwrap();
    let p = repo.read_audit().unwrap().problems;
    assert!(p.iter().any(|m| m.contains("are missing")), "{p:?}");
    std::fs::write(&objects[1], &middle).unwrap();

    // Alter bytes of an object (without the key): it no longer opens.
    let mut damaged = middle.clone();
    damaged[40] ^= 1;
    std::fs::write(&objects[1], &damaged).unwrap();
    let p = repo.read_audit().unwrap().problems;
    assert!(p.iter().any(|m| m.contains("unreadable")), "{p:?}");
    std::fs::write(&objects[1], &middle).unwrap();

    // A key holder rewrites an entry, hash and all: the next link breaks.
    let mut forged = all[3..6].to_vec();
    forged[1].record.actor = "usr-innocent".into();
    forged[1].hash = forged[1].computed_hash();
    std::fs::remove_file(&objects[1]).unwrap();
    let head = repo.audit_head().unwrap();
    repo.append_audit(&forged).unwrap();
    // (append_audit moved the head back to 6; the forger would restore it.)
    assert_ne!(repo.audit_head().unwrap(), head);
    let p = repo.read_audit().unwrap().problems;
    assert!(
        p.iter().any(|m| m.contains("entry 6 does not link")),
        "{p:?}"
    );
    assert!(p.iter().any(|m| m.contains("past its head")), "{p:?}");
}
