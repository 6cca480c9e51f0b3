//! Copies the audit log — and, through [`crate::escrow`], the server's own
//! state — into every owned target's repository, every
//! [`EVERY`]: the entries past the repository's own head, as one batch, then
//! the head (see [`coffer_engine::Repo::append_audit`]). The repository's
//! head says what it holds, so a copy interrupted anywhere is completed by
//! the next round. A target that fails is retried after [`BACKOFF`]; a copy
//! that does not continue the catalog's chain (a catalog restored from an
//! old state, a forged copy) is left alone and reported by
//! [`super::verify`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use coffer_engine::audit::AuditHead;

use crate::catalog::TargetMode;
use crate::state::{AppState, Shared};

/// How often new entries are looked for.
pub const EVERY: Duration = Duration::from_secs(2);
/// How long a target that failed is left alone.
pub const BACKOFF: Duration = Duration::from_secs(60);
/// Entries per batch object.
const BATCH: usize = 1000;

/// What the copier knows between rounds.
#[derive(Debug, Default)]
struct Copier {
    /// Per target, the digest of the escrowed state it holds.
    escrowed: HashMap<String, [u8; 32]>,
    /// The audit head every owned target's escrow is up to: every change
    /// of the state is an audited request, so until the head moves there
    /// is nothing new to capture.
    escrowed_at: Option<u64>,
    /// The sequence number each target's copy is known to hold.
    synced: HashMap<String, u64>,
    /// Targets that failed, and when to try them again.
    resting: HashMap<String, Instant>,
}

/// Starts the copier on the runtime.
pub fn spawn(state: Shared) {
    tokio::spawn(async move {
        let mut copier = Copier::default();
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let st = std::sync::Arc::clone(&state);
            copier = match tokio::task::spawn_blocking(move || {
                copier.round(&st);
                copier
            })
            .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!("the audit copier failed: {e}");
                    Copier::default()
                }
            };
        }
    });
}

impl Copier {
    fn round(&mut self, state: &AppState) {
        let last = match state.catalog.audit_head() {
            Ok(h) => h.seq,
            Err(e) => {
                tracing::error!("audit copy: {e}");
                return;
            }
        };
        // The server's own state goes with its log (see `crate::escrow`).
        if self.escrowed_at != Some(last) && crate::escrow::round(state, &mut self.escrowed) {
            self.escrowed_at = Some(last);
        }
        let targets = match state.catalog.targets() {
            Ok(t) => t,
            Err(e) => {
                tracing::error!("audit copy: {e}");
                return;
            }
        };
        for t in targets.into_iter().filter(|t| t.mode == TargetMode::Own) {
            if self.synced.get(&t.name).is_some_and(|&s| s >= last)
                || self
                    .resting
                    .get(&t.name)
                    .is_some_and(|&at| Instant::now() < at)
            {
                continue;
            }
            match copy_to(state, &t.name, last) {
                Ok(held) => {
                    self.resting.remove(&t.name);
                    self.synced.insert(t.name, held);
                }
                Err(e) => {
                    tracing::warn!(
                        "could not copy the audit log to target {} (retried in {} s): {e}",
                        t.name,
                        BACKOFF.as_secs()
                    );
                    self.resting.insert(t.name, Instant::now() + BACKOFF);
                }
            }
        }
    }
}

/// Brings `target`'s copy up to `last`; returns the sequence number it holds.
fn copy_to(state: &AppState, target: &str, last: u64) -> Result<u64, String> {
    let repo = state.repo(target).map_err(|e| e.to_string())?;
    let mut head = repo
        .audit_head()
        .map_err(|e| e.to_string())?
        .unwrap_or_else(AuditHead::empty);
    while head.seq < last {
        let batch = state
            .catalog
            .audit_entries(head.seq, BATCH)
            .map_err(|e| e.to_string())?;
        let Some(first) = batch.first() else {
            break;
        };
        if first.prev != head.hash {
            // Reported by verify; writing would hide the fork.
            return Err(format!(
                "its copy ends at entry {} with another hash than the catalog's: not continued \
                 (run the audit verification)",
                head.seq
            ));
        }
        repo.append_audit(&batch).map_err(|e| e.to_string())?;
        head = AuditHead::of(&batch);
    }
    Ok(head.seq)
}
