//! `/api/v1/audit`: read the audit log, and verify it.

use axum::Json;
use axum::extract::{Query, State};
use coffer_engine::audit::AuditEntry;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::Principal;
use crate::api::common::{ApiResult, blocking, time};
use crate::api::error::ErrorBody;
use crate::audit;
use crate::audit::verify::AuditReport;
use crate::state::Shared;

/// Which entries to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// Entries after this sequence number (default 0: from the first).
    pub after: Option<u64>,
    /// At most this many (1–1000, default 100).
    pub limit: Option<usize>,
}

/// One entry, as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryView {
    /// 1, 2, 3… without gaps.
    pub seq: u64,
    /// When (RFC 3339).
    pub time: String,
    /// Who: `tok-…`, `usr-…`, `system`, `anonymous`.
    pub actor: String,
    /// The client's address (after `server.trusted_proxies`).
    pub address: Option<String>,
    /// What: the method and route, or `job <kind>`.
    pub action: String,
    /// On what: the request's path, or the job's id.
    pub subject: String,
    /// The HTTP status, or the job's state and error.
    pub outcome: String,
    /// The previous entry's hash.
    pub prev: String,
    /// This entry's hash.
    pub hash: String,
}

/// A page of the log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditList {
    /// Oldest first.
    pub entries: Vec<AuditEntryView>,
    /// Pass as `after` for the next page (absent: this was the last).
    pub next_after: Option<u64>,
}

fn view(e: AuditEntry) -> AuditEntryView {
    AuditEntryView {
        seq: e.seq,
        time: time(e.record.time),
        actor: e.record.actor,
        address: e.record.address,
        action: e.record.action,
        subject: e.record.subject,
        outcome: e.record.outcome,
        prev: e.prev,
        hash: e.hash,
    }
}

/// Lists the audit log, oldest first.
#[utoipa::path(get, path = "/api/v1/audit", params(AuditQuery),
    security(("bearer" = ["audit:read"])),
    extensions(("x-coffer-components" = json!("all"))),
    responses((status = 200, body = AuditList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_audit(
    State(state): State<Shared>,
    p: Principal,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<AuditList>> {
    let limit = q.limit.unwrap_or(100);
    let entries = blocking(move || audit::list(&state, &p, q.after.unwrap_or(0), limit)).await?;
    // A full page may have a next one (the limit was checked: ≤ MAX_PAGE).
    let next_after = entries
        .last()
        .filter(|_| entries.len() == limit)
        .map(|e| e.seq);
    Ok(Json(AuditList {
        entries: entries.into_iter().map(view).collect(),
        next_after,
    }))
}

/// Verifies the audit log: the catalog's chain, and each owned target's
/// copy on its own and against the catalog.
#[utoipa::path(get, path = "/api/v1/audit/verify",
    security(("bearer" = ["audit:read"])),
    extensions(("x-coffer-components" = json!("all"))),
    responses((status = 200, body = AuditReport), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn verify_audit(
    State(state): State<Shared>,
    p: Principal,
) -> ApiResult<Json<AuditReport>> {
    Ok(Json(
        blocking(move || audit::verify::verify(&state, &p)).await?,
    ))
}
