//! The notifier's thread: takes [`Alert`]s from its inbox, tells a
//! condition only when it starts or stops holding (recorded in the
//! catalog, so a restart does not repeat it), and delivers each message to
//! every enabled destination that subscribed to its kind.

use std::sync::mpsc;

use crate::notify::handle::Alert;
use crate::notify::outbox::{message, send};
use crate::notify::service::open_spec;
use crate::state::{AppState, Shared};

/// Starts the notifier's thread and connects the state's inbox to it.
pub fn spawn(state: Shared) -> std::io::Result<()> {
    let (tx, rx) = mpsc::channel::<Alert>();
    state.notifier.connect(tx);
    std::thread::Builder::new()
        .name("coffer-notifier".into())
        .spawn(move || {
            for alert in rx {
                handle(&state, &alert);
            }
        })
        .map(|_| ())
}

fn handle(state: &AppState, alert: &Alert) {
    let at = state.clock.now();
    let phase = match &alert.condition {
        None => "occurred",
        Some((key, holds)) => {
            match state.catalog.set_condition(
                key,
                alert.kind.as_str(),
                *holds,
                at.as_second(),
                &alert.summary,
            ) {
                Ok(true) if *holds => "firing",
                Ok(true) => "resolved",
                Ok(false) => return,
                Err(e) => {
                    tracing::error!("notifications: {e}");
                    return;
                }
            }
        }
    };
    let rows = match state.catalog.notifications() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("notifications: {e}");
            return;
        }
    };
    let id = format!("msg-{}", uuid::Uuid::new_v4());
    let body = message(alert, phase, at, &id);
    for row in rows {
        let spec = match open_spec(state, &row) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("notification {}: {}", row.name, e.message());
                continue;
            }
        };
        if !spec.wants(alert.kind) {
            continue;
        }
        let d = send(state, &spec, alert.kind, &id, &body);
        state
            .metrics
            .notification_sent(&spec.name, d.error.is_none());
        match &d.error {
            None => {
                tracing::info!(notification = %spec.name, event = alert.kind.as_str(), phase, "notification sent")
            }
            Some(e) => tracing::warn!(
                notification = %spec.name,
                event = alert.kind.as_str(),
                "notification not delivered after {} attempt(s): {e}",
                d.attempts
            ),
        }
    }
}
