//! The audit log: who changed what, from where, and how it ended.
//!
//! * [`request`]: every state-changing API request (the console's included:
//!   it calls the API) is appended when it has been answered, with the
//!   credential's id, the client's address and the status.
//! * Jobs append their end themselves (the catalog's `finish_*`), as
//!   `system`; the request that started one is its own entry.
//! * [`sync`]: entries are copied, hash-chained, into every owned target's
//!   repository (`coffer/audit/`), so they outlive the server.
//! * [`verify`]: checks the catalog's chain and each copy against it.

pub mod request;
pub mod sync;
pub mod verify;

use coffer_engine::audit::AuditEntry;
use coffer_model::access::Scope;

use crate::access::Principal;
use crate::error::{ServiceError, ServiceResult};
use crate::state::AppState;

/// Forbidden unless `p` holds `audit:read` for the whole installation.
pub fn require_reader(p: &Principal) -> ServiceResult<()> {
    p.require(Scope::AuditRead)?;
    if let Some(mine) = &p.components {
        return Err(ServiceError::Forbidden(format!(
            "this token is limited to components {}: the audit log tells of every component",
            mine.iter().cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(())
}

/// The most entries one listing returns.
pub const MAX_PAGE: usize = 1000;

/// Entries after `after`, oldest first, at most `limit` (≤ [`MAX_PAGE`]).
pub fn list(
    state: &AppState,
    p: &Principal,
    after: u64,
    limit: usize,
) -> ServiceResult<Vec<AuditEntry>> {
    require_reader(p)?;
    if limit == 0 || limit > MAX_PAGE {
        return Err(ServiceError::Invalid(format!(
            "limit: between 1 and {MAX_PAGE}"
        )));
    }
    Ok(state.catalog.audit_entries(after, limit)?)
}
