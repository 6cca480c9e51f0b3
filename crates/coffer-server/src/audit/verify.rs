//! Checks the audit log: the catalog's chain on its own, then each owned
//! target's copy on its own (see [`coffer_engine::Repo::read_audit`]) and
//! against the catalog. Between them a removed, altered or cut-off entry
//! shows wherever it was tampered with: the catalog's tail cut off shows
//! against a copy's head, a copy's tail against its own head.

use coffer_engine::audit::{AuditEntry, AuditHead, verify_chain};
use serde::Serialize;
use utoipa::ToSchema;

use super::require_reader;
use crate::access::Principal;
use crate::catalog::TargetMode;
use crate::error::ServiceResult;
use crate::state::AppState;

/// What the verification found.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditReport {
    /// No problem anywhere (every owned target read).
    pub ok: bool,
    /// Entries in the catalog.
    pub entries: u64,
    /// The catalog's last entry.
    pub head_seq: u64,
    /// Its hash.
    pub head_hash: String,
    /// What is wrong with the catalog's chain.
    pub problems: Vec<String>,
    /// Each owned target's copy.
    pub targets: Vec<TargetAudit>,
}

/// One owned target's copy of the log.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TargetAudit {
    /// The target.
    pub target: String,
    /// The copy's head (0: nothing copied yet).
    pub head_seq: u64,
    /// Catalog entries not copied yet (the copier runs every few seconds).
    pub pending: u64,
    /// What is wrong with the copy, or why it could not be read.
    pub problems: Vec<String>,
}

/// Verifies the whole log (see the module's documentation).
pub fn verify(state: &AppState, p: &Principal) -> ServiceResult<AuditReport> {
    require_reader(p)?;
    let mut entries: Vec<AuditEntry> = Vec::new();
    loop {
        let after = entries.last().map_or(0, |e| e.seq);
        let page = state.catalog.audit_entries(after, 10_000)?;
        if page.is_empty() {
            break;
        }
        entries.extend(page);
    }
    let head = AuditHead::of(&entries);
    let problems = verify_chain(&entries, None);
    let mut targets = Vec::new();
    for t in state.catalog.targets()? {
        if t.mode != TargetMode::Own {
            continue;
        }
        targets.push(against_target(state, &t.name, &entries, &head));
    }
    Ok(AuditReport {
        ok: problems.is_empty() && targets.iter().all(|t| t.problems.is_empty()),
        entries: entries.len() as u64,
        head_seq: head.seq,
        head_hash: head.hash,
        problems,
        targets,
    })
}

fn against_target(
    state: &AppState,
    target: &str,
    catalog: &[AuditEntry],
    head: &AuditHead,
) -> TargetAudit {
    let copy = state
        .repo(target)
        .map_err(|e| e.to_string())
        .and_then(|r| r.read_audit().map_err(|e| e.to_string()));
    let copy = match copy {
        Ok(c) => c,
        Err(e) => {
            return TargetAudit {
                target: target.to_owned(),
                head_seq: 0,
                pending: head.seq,
                problems: vec![format!("its copy could not be read: {e}")],
            };
        }
    };
    let mut problems = copy.problems;
    let copy_head = copy.head.map_or(0, |h| h.seq);
    if copy_head > head.seq {
        problems.push(format!(
            "the catalog ends at entry {} but this copy holds entries up to {copy_head}: the \
             catalog's entries {}–{copy_head} were cut off",
            head.seq,
            head.seq + 1
        ));
    }
    for e in &copy.entries {
        let ours = catalog
            .binary_search_by_key(&e.seq, |c| c.seq)
            .ok()
            .map(|i| &catalog[i]);
        if let Some(c) = ours
            && c != e
        {
            problems.push(format!(
                "entry {} differs between the catalog and this copy: one of them was altered",
                e.seq
            ));
        }
    }
    TargetAudit {
        target: target.to_owned(),
        head_seq: copy_head,
        pending: head.seq.saturating_sub(copy_head),
        problems,
    }
}
