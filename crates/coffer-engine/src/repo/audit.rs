//! The repository's copy of the server's audit log (see [`crate::audit`]):
//! batches of entries under `coffer/audit/`, each an object encrypted with
//! the repository key (so only a holder of the password reads or forges
//! them), and the head beside them. restic ignores `coffer/`.

use super::Repo;
use crate::audit::{AuditEntry, AuditHead, verify_chain};
use crate::{EngineError, EngineResult};

/// Where the audit log's copy lives.
pub const AUDIT_PREFIX: &str = "coffer/audit/";
/// Its head: the last entry written (sequence number and hash).
const HEAD_KEY: &str = "coffer/audit/head";

/// The audit log as a repository holds it, and what is wrong with it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditCopy {
    /// The entries, by sequence number.
    pub entries: Vec<AuditEntry>,
    /// The head written with the last batch (`None`: never written).
    pub head: Option<AuditHead>,
    /// Unreadable objects, broken links, a cut-off tail: empty when sound.
    pub problems: Vec<String>,
}

impl Repo {
    /// Appends `entries` (the continuation of this copy's chain) as one
    /// object, then moves the head to the last of them.
    pub fn append_audit(&self, entries: &[AuditEntry]) -> EngineResult<()> {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Ok(());
        };
        let body = serde_json::to_vec(entries).map_err(|e| EngineError::Engine(e.to_string()))?;
        let key = format!("{AUDIT_PREFIX}{:020}-{:020}.json", first.seq, last.seq);
        self.put_private(&key, &body)?;
        coffer_model::crash::crash_point("audit.batch.written");
        let head = AuditHead::of(entries);
        let head = serde_json::to_vec(&head).map_err(|e| EngineError::Engine(e.to_string()))?;
        self.put_private(HEAD_KEY, &head)?;
        log::debug!("audit entries {}–{} written to {key}", first.seq, last.seq);
        Ok(())
    }

    /// The head of this repository's copy (`None`: nothing written yet).
    pub fn audit_head(&self) -> EngineResult<Option<AuditHead>> {
        let Some(plain) = self.get_private(HEAD_KEY)? else {
            return Ok(None);
        };
        serde_json::from_slice(&plain).map(Some).map_err(|e| {
            EngineError::Engine(format!("the audit head {HEAD_KEY} is not valid: {e}"))
        })
    }

    /// Reads and checks this repository's copy of the audit log: every
    /// batch opens, the entries form one chain (an entry written twice by a
    /// retried batch counts once) and it ends at the head.
    pub fn read_audit(&self) -> EngineResult<AuditCopy> {
        let mut problems = Vec::new();
        let mut entries: Vec<AuditEntry> = Vec::new();
        for o in self.storage.list(AUDIT_PREFIX)? {
            if o.key == HEAD_KEY {
                continue;
            }
            let batch = self
                .get_private(&o.key)
                .map_err(|e| e.to_string())
                .and_then(|p| p.ok_or_else(|| "it vanished".to_owned()))
                .and_then(|p| {
                    serde_json::from_slice::<Vec<AuditEntry>>(&p).map_err(|e| e.to_string())
                });
            match batch {
                Ok(b) => entries.extend(b),
                Err(e) => problems.push(format!("audit object {} is unreadable: {e}", o.key)),
            }
        }
        entries.sort_by_key(|e| e.seq);
        entries.dedup();
        if let Some(w) = entries.windows(2).find(|w| w[0].seq == w[1].seq) {
            problems.push(format!(
                "two different entries {} (the log was forked or forged)",
                w[0].seq
            ));
        }
        let head = match self.audit_head() {
            Ok(h) => h,
            Err(e) => {
                problems.push(e.to_string());
                None
            }
        };
        if head.is_none() && !entries.is_empty() {
            problems.push(format!("the audit head {HEAD_KEY} is missing"));
        }
        problems.extend(verify_chain(&entries, head.as_ref()));
        Ok(AuditCopy {
            entries,
            head,
            problems,
        })
    }
}
