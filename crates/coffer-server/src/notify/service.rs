//! Notification destinations as a service: list, show, create, change,
//! delete and test, each checked against the caller. Messages speak of
//! every component, so only a caller limited to no component manages or
//! sees destinations; a destination added over the API carries its secret
//! itself (never a file or variable of the server's) and must reach a host
//! `server.target_allow` allows. Destinations from coffer.toml are
//! read-only over the API.

use std::collections::BTreeSet;

use coffer_model::access::Scope;
use coffer_model::secret::reveal_secrets;
use serde_json::json;

use crate::access::Principal;
use crate::catalog::NotificationRow;
use crate::error::{ServiceError, ServiceResult};
use crate::notify::handle::{Alert, EventKind};
use crate::notify::outbox::{message, send};
use crate::notify::spec::NotificationSpec;
use crate::notify::webhook::Delivery;
use crate::state::AppState;
use crate::targets::policy::{check_host, require_literal, url_host};

const SEAL: &str = "notification-spec";

/// Opens a stored spec.
pub fn open_spec(state: &AppState, row: &NotificationRow) -> ServiceResult<NotificationSpec> {
    let plain = state
        .key
        .open(SEAL, &row.spec_sealed)
        .map_err(|e| ServiceError::internal(format!("notification {}: {e}", row.name)))?;
    serde_json::from_slice(&plain)
        .map_err(|e| ServiceError::internal(format!("notification {}: {e}", row.name)))
}

pub(crate) fn seal(state: &AppState, spec: &NotificationSpec) -> ServiceResult<Vec<u8>> {
    let json = reveal_secrets(|| serde_json::to_vec(spec)).map_err(ServiceError::internal)?;
    Ok(state.key.seal(SEAL, &json))
}

/// Forbidden unless `p` holds `scope` and is limited to no component.
fn require_whole(p: &Principal, scope: Scope) -> ServiceResult<()> {
    p.require(scope)?;
    if let Some(mine) = &p.components {
        return Err(ServiceError::Forbidden(format!(
            "this token is limited to components {}: notifications tell about every component",
            mine.iter().cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(())
}

/// A destination with its row.
pub type Destination = (NotificationRow, NotificationSpec);

/// Every destination.
pub fn list(state: &AppState, p: &Principal) -> ServiceResult<Vec<Destination>> {
    require_whole(p, Scope::NotificationsRead)?;
    state
        .catalog
        .notifications()?
        .into_iter()
        .map(|r| open_spec(state, &r).map(|s| (r, s)))
        .collect()
}

fn find(state: &AppState, name: &str) -> ServiceResult<Destination> {
    let row = state
        .catalog
        .notification(name)?
        .ok_or_else(|| ServiceError::NotFound(format!("no notification named {name:?}")))?;
    let spec = open_spec(state, &row)?;
    Ok((row, spec))
}

/// One destination.
pub fn show(state: &AppState, p: &Principal, name: &str) -> ServiceResult<Destination> {
    require_whole(p, Scope::NotificationsRead)?;
    find(state, name)
}

fn check_api(state: &AppState, spec: &NotificationSpec) -> ServiceResult<()> {
    spec.check().map_err(ServiceError::Invalid)?;
    require_literal("secret", spec.secret.as_ref())?;
    require_literal("password", spec.password.as_ref())?;
    if let Some(url) = &spec.url {
        let host = url_host(url)
            .ok_or_else(|| ServiceError::Invalid(format!("url: no host in {url:?}")))?;
        check_host("url", host, &state.config.target_allow)?;
    }
    if let Some(host) = &spec.smtp_host {
        check_host("smtp_host", host, &state.config.target_allow)?;
    }
    Ok(())
}

/// Adds a destination.
pub fn create(
    state: &AppState,
    p: &Principal,
    spec: NotificationSpec,
) -> ServiceResult<Destination> {
    require_whole(p, Scope::NotificationsWrite)?;
    check_api(state, &spec)?;
    let row = NotificationRow {
        name: spec.name.clone(),
        spec_sealed: seal(state, &spec)?,
        declared: false,
        created_at: state.clock.now().as_second(),
    };
    if !state.catalog.insert_notification(&row)? {
        return Err(ServiceError::Conflict(format!(
            "a notification named {:?} exists",
            spec.name
        )));
    }
    tracing::info!(notification = %row.name, by = %p.id, "notification added");
    Ok((row, spec))
}

/// Replaces a destination's spec (not one from coffer.toml).
pub fn update(
    state: &AppState,
    p: &Principal,
    name: &str,
    spec: NotificationSpec,
) -> ServiceResult<Destination> {
    require_whole(p, Scope::NotificationsWrite)?;
    let (row, _) = find(state, name)?;
    writable(&row)?;
    if spec.name != name {
        return Err(ServiceError::Invalid(format!(
            "name: {:?} differs from {name:?} (a notification cannot be renamed)",
            spec.name
        )));
    }
    check_api(state, &spec)?;
    let row = NotificationRow {
        spec_sealed: seal(state, &spec)?,
        ..row
    };
    state.catalog.update_notification(&row)?;
    Ok((row, spec))
}

fn writable(row: &NotificationRow) -> ServiceResult<()> {
    if row.declared {
        return Err(ServiceError::Conflict(format!(
            "notification {} is declared in the configuration file: change it there",
            row.name
        )));
    }
    Ok(())
}

/// Deletes a destination (not one from coffer.toml).
pub fn delete(state: &AppState, p: &Principal, name: &str) -> ServiceResult<()> {
    require_whole(p, Scope::NotificationsWrite)?;
    let (row, _) = find(state, name)?;
    writable(&row)?;
    state.catalog.delete_notification(name)?;
    Ok(())
}

/// Sends a test message to one destination now and returns the
/// transport's answer (tries, status, the start of the answer, the error).
pub fn test(state: &AppState, p: &Principal, name: &str) -> ServiceResult<Delivery> {
    require_whole(p, Scope::NotificationsWrite)?;
    let (_, spec) = find(state, name)?;
    let alert = Alert {
        kind: EventKind::Test,
        condition: None,
        summary: format!("test message to {name}, asked by {}", p.name),
        details: json!({ "notification": name }),
    };
    let id = format!("msg-{}", uuid::Uuid::new_v4());
    let body = message(&alert, "occurred", state.clock.now(), &id);
    Ok(send(state, &spec, EventKind::Test, &id, &body))
}

/// Makes the catalog's declared destinations what coffer.toml says.
pub fn apply_declared(state: &AppState) -> ServiceResult<()> {
    let declared: BTreeSet<&str> = state
        .config
        .notifications
        .iter()
        .map(|n| n.name.as_str())
        .collect();
    for row in state.catalog.notifications()? {
        if row.declared && !declared.contains(row.name.as_str()) {
            state.catalog.delete_notification(&row.name)?;
        }
    }
    for spec in &state.config.notifications {
        let row = NotificationRow {
            name: spec.name.clone(),
            spec_sealed: seal(state, spec)?,
            declared: true,
            created_at: state.clock.now().as_second(),
        };
        if !state.catalog.insert_notification(&row)? {
            state.catalog.update_notification(&row)?;
        }
    }
    Ok(())
}
