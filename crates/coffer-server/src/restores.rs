//! Restores as a service: show one and its log, checked against the
//! caller the way backups are — a caller limited to some components sees a
//! restore only through them, and its log only if it may see them all.
//! Starting restores is [`crate::jobs::restore`]'s and
//! [`crate::jobs::upload`]'s. Blocking.

use coffer_model::access::Scope;

use crate::access::Principal;
use crate::catalog::{RestoreComponentRow, RestoreRow};
use crate::error::{ServiceError, ServiceResult};
use crate::state::AppState;

/// A restore as a caller may see it.
#[derive(Debug)]
pub struct RestoreDetail {
    /// The restore; its `error` only speaks of components the caller sees.
    pub restore: RestoreRow,
    /// The components the caller may see.
    pub components: Vec<RestoreComponentRow>,
}

fn sensitive(state: &AppState, c: &RestoreComponentRow) -> bool {
    c.sensitive
        || state
            .config
            .component(&c.component)
            .is_some_and(|s| s.sensitive)
}

fn find(state: &AppState, id: &str) -> ServiceResult<(RestoreRow, Vec<RestoreComponentRow>)> {
    state
        .catalog
        .restore(id)?
        .ok_or_else(|| ServiceError::NotFound(format!("no restore with id {id:?}")))
}

/// One restore, through the components `p` may see.
pub fn show(state: &AppState, p: &Principal, id: &str) -> ServiceResult<RestoreDetail> {
    p.require(Scope::BackupsRead)?;
    let (mut restore, comps) = find(state, id)?;
    let total = comps.len();
    let (components, hidden): (Vec<_>, Vec<_>) = comps
        .into_iter()
        .partition(|c| p.sees(&c.component, sensitive(state, c)));
    if components.is_empty()
        && let Some(c) = hidden.first()
    {
        p.require_reach(&c.component, sensitive(state, c))?;
    }
    if components.len() < total && restore.error.is_some() {
        let visible: Vec<String> = components
            .iter()
            .filter_map(|c| c.error.as_ref().map(|e| format!("{}: {e}", c.component)))
            .collect();
        restore.error = Some(if visible.is_empty() {
            format!(
                "failed in {} component(s) or hook(s) this token may not see",
                total - components.len()
            )
        } else {
            visible.join("; ")
        });
    }
    Ok(RestoreDetail {
        restore,
        components,
    })
}

/// A restore's log, hook output included, for a caller that may see every
/// component of it.
pub fn log(state: &AppState, p: &Principal, id: &str) -> ServiceResult<Vec<(i64, String)>> {
    p.require(Scope::BackupsRead)?;
    let (_, comps) = find(state, id)?;
    for c in &comps {
        p.require_reach(&c.component, sensitive(state, c))?;
    }
    state.logs.flush();
    Ok(state.catalog.job_log(id)?)
}
