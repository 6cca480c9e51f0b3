//! The audit log's chain: entries linked by SHA-256, so that a removed,
//! altered or reordered entry breaks it, and a head (the last entry's
//! sequence number and hash) kept elsewhere, so that a cut-off tail shows.
//!
//! An entry's hash covers the previous entry's hash and every field of the
//! entry (serialized as JSON in the field order below, which never
//! changes): `hash = SHA-256(prev_hash_hex || json(fields))`. The first
//! entry (sequence number 1) links to [`GENESIS`].
//!
//! The server keeps the chain in its catalog and copies it into each owned
//! repository under `coffer/audit/` (see [`crate::Repo::append_audit`]);
//! this module is what both, and the offline CLI, check it with.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What the first entry links to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened: an entry without its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When (seconds since the Unix epoch).
    pub time: i64,
    /// Who: a token or user id (`tok-…`, `usr-…`), `schedule:<name>`,
    /// `system`, or `anonymous` for a request without valid credentials.
    pub actor: String,
    /// The client's address (after `server.trusted_proxies`), if a request.
    pub address: Option<String>,
    /// What: `POST /api/v1/backups/{id}/restore` (the route), or a job's
    /// end, e.g. `job backup`.
    pub action: String,
    /// On what: the request's path (it names the backup, component or
    /// target), or the job's id.
    pub subject: String,
    /// The result: the HTTP status, or the job's state and error.
    pub outcome: String,
}

/// One audit entry: a record in its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// 1, 2, 3… without gaps.
    pub seq: u64,
    /// What happened.
    #[serde(flatten)]
    pub record: AuditRecord,
    /// The previous entry's hash ([`GENESIS`] for the first).
    pub prev: String,
    /// This entry's hash (see the module's documentation).
    pub hash: String,
}

/// The fields a hash covers, in their fixed order.
#[derive(Serialize)]
struct Hashed<'a> {
    seq: u64,
    #[serde(flatten)]
    record: &'a AuditRecord,
}

impl AuditEntry {
    /// `record` as the entry after `head`, with its hash.
    pub fn next(head: &AuditHead, record: AuditRecord) -> Self {
        let mut e = Self {
            seq: head.seq + 1,
            record,
            prev: head.hash.clone(),
            hash: String::new(),
        };
        e.hash = e.computed_hash();
        e
    }

    /// The hash this entry's fields and `prev` give.
    pub fn computed_hash(&self) -> String {
        let fields = Hashed {
            seq: self.seq,
            record: &self.record,
        };
        let mut h = Sha256::new();
        h.update(self.prev.as_bytes());
        // Serializing plain strings and numbers cannot fail.
        h.update(serde_json::to_vec(&fields).unwrap_or_default());
        hex::encode(h.finalize())
    }
}

/// The chain's last entry, kept apart from the entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHead {
    /// Its sequence number (0: no entry yet).
    pub seq: u64,
    /// Its hash ([`GENESIS`] when there is none).
    pub hash: String,
}

impl AuditHead {
    /// The head of an empty chain.
    pub fn empty() -> Self {
        Self {
            seq: 0,
            hash: GENESIS.to_owned(),
        }
    }

    /// The head of `entries` (as they are, checked or not).
    pub fn of(entries: &[AuditEntry]) -> Self {
        entries.last().map_or_else(Self::empty, |e| Self {
            seq: e.seq,
            hash: e.hash.clone(),
        })
    }
}

/// Checks that `entries` (sorted by sequence number) form one unbroken
/// chain from the first entry, and end at `head` when one is given.
/// Returns every problem found, each naming the entry; empty when sound.
pub fn verify_chain(entries: &[AuditEntry], head: Option<&AuditHead>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut prev: Option<&AuditEntry> = None;
    for e in entries {
        let (want_seq, want_prev) = match prev {
            Some(p) => (p.seq + 1, p.hash.as_str()),
            None => (1, GENESIS),
        };
        if e.seq != want_seq {
            problems.push(format!(
                "entry {} follows entry {}: entries {}–{} are missing",
                e.seq,
                want_seq - 1,
                want_seq,
                e.seq.saturating_sub(1)
            ));
        } else if e.prev != want_prev {
            problems.push(format!(
                "entry {} does not link to entry {}: one of them was altered or replaced",
                e.seq,
                want_seq - 1
            ));
        }
        if e.computed_hash() != e.hash {
            problems.push(format!(
                "entry {} was altered: its content does not match its hash",
                e.seq
            ));
        }
        prev = Some(e);
    }
    if let Some(head) = head {
        let last = AuditHead::of(entries);
        if head.seq > last.seq {
            problems.push(format!(
                "the log ends at entry {} but its head says {}: entries {}–{} were cut off",
                last.seq,
                head.seq,
                last.seq + 1,
                head.seq
            ));
        } else if head.seq < last.seq {
            problems.push(format!(
                "the log goes on to entry {} past its head at {}: the head was set back",
                last.seq, head.seq
            ));
        } else if head.hash != last.hash {
            problems.push(format!(
                "entry {} does not match the head's hash: it was replaced",
                last.seq
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<AuditEntry> {
        let mut out: Vec<AuditEntry> = Vec::new();
        for i in 0..n {
            let record = AuditRecord {
                time: 1_700_000_000 + i as i64,
                actor: "tok-1".into(),
                address: Some("127.0.0.1".into()),
                action: "POST /api/v1/backups".into(),
                subject: "/api/v1/backups".into(),
                outcome: "202".into(),
            };
            out.push(AuditEntry::next(&AuditHead::of(&out), record));
        }
        out
    }

    #[test]
    fn a_sound_chain_passes_and_every_kind_of_tampering_is_named() {
        let c = chain(5);
        let head = AuditHead::of(&c);
        assert!(verify_chain(&c, Some(&head)).is_empty());

        let mut altered = c.clone();
        altered[2].record.outcome = "500".into();
        let p = verify_chain(&altered, Some(&head));
        assert!(p.iter().any(|m| m.contains("entry 3 was altered")), "{p:?}");

        let mut removed = c.clone();
        removed.remove(1);
        let p = verify_chain(&removed, Some(&head));
        assert!(
            p.iter().any(|m| m.contains("entries 2–2 are missing")),
            "{p:?}"
        );

        let cut = &c[..3];
        let p = verify_chain(cut, Some(&head));
        assert!(p.iter().any(|m| m.contains("cut off")), "{p:?}");

        // A rewritten entry with a fresh hash still breaks the next link.
        let mut rewritten = c.clone();
        rewritten[1].record.actor = "someone-else".into();
        rewritten[1].hash = rewritten[1].computed_hash();
        let p = verify_chain(&rewritten, Some(&head));
        assert!(
            p.iter().any(|m| m.contains("entry 3 does not link")),
            "{p:?}"
        );
    }
}
