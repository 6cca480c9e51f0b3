//! DC/OS's shape of a backup (`GET /api/v1/backups/{id}?view=dcos`), for
//! scripts written against `dcos backup show`: states prefixed `STATUS_`
//! (`STATUS_BACKING_UP`, `STATUS_READY`, `STATUS_ERROR`,
//! `STATUS_RESTORING`), `component_status.<name>`, and `restores` as the
//! latest restore with its own `component_status.<name>`.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use crate::api::restores::RestoreView;

/// The latest restore of a backup, DC/OS-style.
#[derive(Debug, Serialize, ToSchema)]
pub struct DcosRestoreView {
    /// The restore's id.
    pub id: String,
    /// `STATUS_RESTORING`, `STATUS_READY` or `STATUS_ERROR`.
    pub status: String,
    /// Why it is `STATUS_ERROR`.
    pub error: Option<String>,
    /// Start (RFC 3339).
    pub created_at: String,
    /// End (RFC 3339).
    pub finished_at: Option<String>,
    /// Each component's state by name (those the token may see).
    pub component_status: BTreeMap<String, String>,
}

/// A backup, DC/OS-style.
#[derive(Debug, Serialize, ToSchema)]
pub struct DcosBackupView {
    /// `<label>-<uuid>`.
    pub id: String,
    /// Label.
    pub label: String,
    /// `STATUS_BACKING_UP`, `STATUS_READY` or `STATUS_ERROR`.
    pub status: String,
    /// Why it is `STATUS_ERROR`.
    pub error: Option<String>,
    /// Start (RFC 3339).
    pub created_at: String,
    /// End (RFC 3339).
    pub finished_at: Option<String>,
    /// Each component's state by name (those the token may see).
    pub component_status: BTreeMap<String, String>,
    /// The latest restore of this backup, if any.
    pub restores: Option<DcosRestoreView>,
}

/// A Coffer state as DC/OS names it.
fn status(s: &str) -> String {
    format!("STATUS_{s}")
}

fn statuses(m: BTreeMap<String, String>) -> BTreeMap<String, String> {
    m.into_iter().map(|(k, v)| (k, status(&v))).collect()
}

impl From<RestoreView> for DcosRestoreView {
    fn from(r: RestoreView) -> Self {
        Self {
            status: status(&r.status),
            component_status: statuses(r.component_status),
            id: r.id,
            error: r.error,
            created_at: r.created_at,
            finished_at: r.finished_at,
        }
    }
}

/// What [`DcosBackupView::new`] is made from: a backup as Coffer shows it,
/// its components' states and its restores, newest first.
pub struct BackupParts {
    /// `<label>-<uuid>`.
    pub id: String,
    /// Label.
    pub label: String,
    /// Coffer's state (`READY`, …).
    pub status: String,
    /// Why it failed.
    pub error: Option<String>,
    /// Start (RFC 3339).
    pub created_at: String,
    /// End (RFC 3339).
    pub finished_at: Option<String>,
    /// Component name → Coffer's state.
    pub component_status: BTreeMap<String, String>,
    /// Its restores, newest first.
    pub restores: Vec<RestoreView>,
}

impl DcosBackupView {
    /// The DC/OS shape of a backup: states renamed, the latest restore.
    pub fn new(b: BackupParts) -> Self {
        Self {
            status: status(&b.status),
            component_status: statuses(b.component_status),
            // Newest first: the latest restore is the first.
            restores: b.restores.into_iter().next().map(DcosRestoreView::from),
            id: b.id,
            label: b.label,
            error: b.error,
            created_at: b.created_at,
            finished_at: b.finished_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_prefixed_and_the_latest_restore_is_shown() {
        let restore = |id: &str, s: &str| RestoreView {
            id: id.into(),
            backup_id: "nightly-1".into(),
            status: s.into(),
            error: None,
            created_at: "2026-12-03T00:00:00Z".into(),
            finished_at: None,
            component_status: BTreeMap::from([("marathon".into(), s.into())]),
            components: Vec::new(),
        };
        let d = DcosBackupView::new(BackupParts {
            id: "nightly-1".into(),
            label: "nightly".into(),
            status: "READY".into(),
            error: None,
            created_at: "2026-12-03T00:00:00Z".into(),
            finished_at: None,
            component_status: BTreeMap::from([("marathon".into(), "READY".into())]),
            restores: vec![restore("r2", "RESTORING"), restore("r1", "READY")],
        });
        assert_eq!(d.status, "STATUS_READY");
        assert_eq!(d.component_status["marathon"], "STATUS_READY");
        let r = d.restores.expect("the latest restore");
        assert_eq!(r.id, "r2");
        assert_eq!(r.status, "STATUS_RESTORING");
        assert_eq!(r.component_status["marathon"], "STATUS_RESTORING");
    }
}
