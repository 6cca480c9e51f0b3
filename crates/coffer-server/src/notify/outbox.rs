//! A message as it leaves: its JSON body, and its delivery to one
//! destination by the destination's kind.

use serde_json::json;

use crate::notify::handle::{Alert, EventKind};
use coffer_model::secret::Secret;

use crate::notify::email;
use crate::notify::spec::{DestinationKind, NotificationSpec};
use crate::notify::webhook::{Delivery, deliver};
use crate::state::AppState;

/// The message's body: the event, whether it is `firing`, `resolved` or a
/// one-off `occurred`, and what it is about. Never a secret.
pub fn message(alert: &Alert, phase: &str, at: jiff::Timestamp, id: &str) -> Vec<u8> {
    let body = json!({
        "id": id,
        "event": alert.kind.as_str(),
        "state": phase,
        "summary": alert.summary,
        "details": alert.details,
        "at": at.to_string(),
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Delivers `body` to one destination.
pub fn send(
    state: &AppState,
    spec: &NotificationSpec,
    kind: EventKind,
    id: &str,
    body: &[u8],
) -> Delivery {
    let failed = |error: String| Delivery {
        attempts: 0,
        status: None,
        answer: None,
        error: Some(error),
    };
    let resolve = |field: &str, s: Option<&Secret>| match s.map(Secret::resolve) {
        None => Ok(None),
        Some(Ok(v)) => Ok(Some(v)),
        Some(Err(e)) => Err(format!("{field}: {e}")),
    };
    match spec.kind {
        DestinationKind::Webhook => {
            let secret = match resolve("secret", spec.secret.as_ref()) {
                Ok(s) => s,
                Err(e) => return failed(e),
            };
            deliver(
                spec.url.as_deref().unwrap_or_default(),
                secret.as_deref(),
                kind.as_str(),
                id,
                body,
                &state.config.target_allow,
            )
        }
        DestinationKind::Email => {
            let password = match resolve("password", spec.password.as_ref()) {
                Ok(s) => s,
                Err(e) => return failed(e),
            };
            email::deliver(spec, password.as_deref(), body, &state.config.target_allow)
        }
    }
}
