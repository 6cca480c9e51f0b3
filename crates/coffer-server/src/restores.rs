//! Restores as a service: list, show one and its log, checked against the
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
    let (restore, comps) = find(state, id)?;
    let first_hidden = comps
        .iter()
        .find(|c| !p.sees(&c.component, sensitive(state, c)))
        .cloned();
    match visible(state, p, restore, comps) {
        Some(d) => Ok(d),
        None => {
            let c = first_hidden
                .ok_or_else(|| ServiceError::internal("a restore hidden without components"))?;
            p.require_reach(&c.component, sensitive(state, &c))?;
            Err(ServiceError::internal(
                "a hidden component passed the check",
            ))
        }
    }
}

/// Restores, newest first, optionally only those of `backup`: each one
/// through the components `p` may see, those it sees none of left out.
pub fn list(
    state: &AppState,
    p: &Principal,
    backup: Option<&str>,
) -> ServiceResult<Vec<RestoreDetail>> {
    p.require(Scope::BackupsRead)?;
    Ok(state
        .catalog
        .restores(backup)?
        .into_iter()
        .filter_map(|(r, comps)| visible(state, p, r, comps))
        .collect())
}

/// The restore as `p` sees it; `None` when it sees none of its components.
fn visible(
    state: &AppState,
    p: &Principal,
    mut restore: RestoreRow,
    comps: Vec<RestoreComponentRow>,
) -> Option<RestoreDetail> {
    let total = comps.len();
    let components: Vec<RestoreComponentRow> = comps
        .into_iter()
        .filter(|c| p.sees(&c.component, sensitive(state, c)))
        .collect();
    if components.is_empty() && total > 0 {
        return None;
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
    Some(RestoreDetail {
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
