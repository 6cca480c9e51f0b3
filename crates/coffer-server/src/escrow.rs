//! Coffer recovers itself: the server's own state — targets added over the
//! API with their credentials and repository passwords, schedules,
//! notification destinations, users and token hashes, and the audit log's
//! head — is escrowed in every owned target's repository
//! (`coffer/escrow/state`, encrypted with the repository key, so the
//! repository password opens it), rewritten within seconds of any change.
//! A new installation given only a target and its repository password
//! restores it ([`restore`], `POST /api/v1/targets/{name}/state`).
//!
//! What `coffer.toml` declares (components, declared targets, schedules and
//! notifications, settings) is not escrowed: keep the configuration file
//! with the repository password.

use std::collections::HashMap;

use coffer_engine::audit::AuditHead;
use coffer_model::ComponentName;
use coffer_model::access::Scope;
use coffer_model::secret::reveal_secrets;
use coffer_model::target::{TargetKind, TargetSpec};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::access::Principal;
use crate::catalog::{
    AuditEvent, NotificationRow, ScheduleRow, TargetMode, TokenRow, UserRow, now,
};
use crate::error::{ServiceError, ServiceResult};
use crate::notify::spec::NotificationSpec;
use crate::schedules::spec::ScheduleSpec;
use crate::state::AppState;

/// Where the state lives in a repository.
pub const KEY: &str = "coffer/escrow/state";

#[derive(Serialize, Deserialize)]
struct Escrow {
    targets: Vec<EscrowedTarget>,
    schedules: Vec<EscrowedSchedule>,
    notifications: Vec<NotificationSpec>,
    users: Vec<EscrowedUser>,
    tokens: Vec<EscrowedToken>,
    audit_head: AuditHead,
}

#[derive(Serialize, Deserialize)]
struct EscrowedTarget {
    name: String,
    kind: TargetKind,
    repository_password: String,
    own: bool,
    is_default: bool,
}

#[derive(Serialize, Deserialize)]
struct EscrowedSchedule {
    spec: ScheduleSpec,
    owner_components: Option<Vec<String>>,
    owner_sensitive: bool,
}

#[derive(Serialize, Deserialize)]
struct EscrowedUser {
    id: String,
    name: String,
    password_hash: String,
    scopes: Vec<Scope>,
    components: Option<Vec<String>>,
    created_at: i64,
    disabled_at: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct EscrowedToken {
    id: String,
    name: String,
    hash: String,
    scopes: Vec<Scope>,
    components: Option<Vec<String>>,
    expires_at: Option<i64>,
    created_at: i64,
    revoked_at: Option<i64>,
}

/// The state as escrowed now (what `coffer.toml` declares left out).
fn capture(state: &AppState) -> ServiceResult<Escrow> {
    let mut targets = Vec::new();
    for row in state.catalog.targets()?.into_iter().filter(|t| !t.declared) {
        let spec = state.target_spec(&row)?;
        targets.push(EscrowedTarget {
            repository_password: state.target_password(&row)?,
            name: row.name,
            kind: spec.kind,
            own: row.mode == TargetMode::Own,
            is_default: row.is_default,
        });
    }
    let mut schedules = Vec::new();
    for row in state
        .catalog
        .schedules()?
        .into_iter()
        .filter(|s| !s.declared)
    {
        schedules.push(EscrowedSchedule {
            spec: crate::schedules::service::open_spec(state, &row)?,
            owner_components: row.owner_components,
            owner_sensitive: row.owner_sensitive,
        });
    }
    let mut notifications = Vec::new();
    for row in state
        .catalog
        .notifications()?
        .into_iter()
        .filter(|n| !n.declared)
    {
        notifications.push(crate::notify::service::open_spec(state, &row)?);
    }
    let users = state
        .catalog
        .users()?
        .into_iter()
        .map(|u| EscrowedUser {
            id: u.id,
            name: u.name,
            password_hash: u.password_hash,
            scopes: u.scopes,
            components: u.components,
            created_at: u.created_at,
            disabled_at: u.disabled_at,
        })
        .collect();
    let tokens = state
        .catalog
        .tokens()?
        .into_iter()
        .map(|t| EscrowedToken {
            id: t.id,
            name: t.name,
            hash: t.hash,
            scopes: t.scopes,
            components: t.components,
            expires_at: t.expires_at,
            created_at: t.created_at,
            revoked_at: t.revoked_at,
        })
        .collect();
    let audit_head = state.catalog.audit_head()?;
    Ok(Escrow {
        targets,
        schedules,
        notifications,
        users,
        tokens,
        audit_head,
    })
}

/// Writes the state into every owned target whose copy differs from it.
/// `written` remembers, per target, the digest of what it holds. Returns
/// whether every owned target holds it now. Blocking.
pub fn round(state: &AppState, written: &mut HashMap<String, [u8; 32]>) -> bool {
    let json = match capture(state)
        .and_then(|e| reveal_secrets(|| serde_json::to_vec(&e)).map_err(ServiceError::internal))
    {
        Ok(j) => j,
        Err(e) => {
            tracing::error!("escrowing the server's state: {e}");
            return false;
        }
    };
    let digest: [u8; 32] = Sha256::digest(&json).into();
    let owned = match state.catalog.targets() {
        Ok(t) => t.into_iter().filter(|t| t.mode == TargetMode::Own),
        Err(e) => {
            tracing::error!("escrowing the server's state: {e}");
            return false;
        }
    };
    let mut all = true;
    for t in owned {
        if written.get(&t.name) == Some(&digest) {
            continue;
        }
        let stored = state.repo(&t.name).and_then(|r| {
            r.put_private(KEY, &json)
                .map_err(|e| ServiceError::Upstream(e.to_string()))
        });
        match stored {
            Ok(()) => {
                written.insert(t.name, digest);
            }
            Err(e) => {
                all = false;
                tracing::warn!("escrowing the server's state in target {}: {e}", t.name);
            }
        }
    }
    all
}

/// What a restore of the escrowed state added, and what it left alone.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct StateReport {
    /// The target read.
    pub target: String,
    /// Targets added (with their repository passwords).
    pub targets: Vec<String>,
    /// Schedules added.
    pub schedules: Vec<String>,
    /// Notification destinations added.
    pub notifications: Vec<String>,
    /// Users added (their passwords as they were).
    pub users: Vec<String>,
    /// Tokens added (their secrets work as they did).
    pub tokens: Vec<String>,
    /// What this installation already had, by kind and name: left as it is.
    pub kept: Vec<String>,
    /// The escrowed audit log's last entry (sequence number), recorded in
    /// this installation's log.
    pub audit_head_seq: u64,
    /// Its hash.
    pub audit_head_hash: String,
}

/// Restores the state escrowed in `target`'s repository into this
/// installation: everything it lacks, nothing it has replaced. Needs
/// `admin` (the route's scope): it adds tokens and users of any scope.
pub fn restore(state: &AppState, p: &Principal, target: &str) -> ServiceResult<StateReport> {
    p.require(Scope::Admin)?;
    if let Some(mine) = &p.components {
        return Err(ServiceError::Forbidden(format!(
            "this token is limited to components {}: the state restored gives tokens and users \
             of every component",
            mine.iter().cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    let repo = state.repo(target)?;
    let plain = repo
        .get_private(KEY)
        .map_err(|e| ServiceError::Upstream(format!("target {target}: {e}")))?
        .ok_or_else(|| {
            ServiceError::NotFound(format!(
                "target {target} holds no escrowed state (a Coffer server that owned it writes \
                 one within seconds of any change)"
            ))
        })?;
    let escrow: Escrow = serde_json::from_slice(&plain)
        .map_err(|e| ServiceError::Upstream(format!("target {target}: the escrowed state: {e}")))?;
    let mut report = StateReport {
        target: target.to_owned(),
        audit_head_seq: escrow.audit_head.seq,
        audit_head_hash: escrow.audit_head.hash.clone(),
        ..StateReport::default()
    };
    let have: Vec<String> = state
        .catalog
        .targets()?
        .into_iter()
        .map(|t| t.name)
        .collect();
    for t in escrow.targets {
        if have.contains(&t.name) {
            report.kept.push(format!("target {}", t.name));
            continue;
        }
        let name = ComponentName::new(&t.name)
            .map_err(|e| ServiceError::Upstream(format!("the escrowed state: {e}")))?;
        let spec = TargetSpec { name, kind: t.kind };
        let mode = if t.own {
            TargetMode::Own
        } else {
            TargetMode::Attach
        };
        // The default stays this installation's.
        let row = state.seal_target(&spec, &t.repository_password, mode, false)?;
        state.catalog.insert_target(&row)?;
        report.targets.push(t.name);
    }
    for s in escrow.schedules {
        let row = ScheduleRow {
            name: s.spec.name.clone(),
            spec_sealed: crate::schedules::service::seal_spec(state, &s.spec)?,
            declared: false,
            owner_components: s.owner_components,
            owner_sensitive: s.owner_sensitive,
            created_at: state.clock.now().as_second(),
            handled_at: state.clock.now().as_second(),
        };
        if state.catalog.insert_schedule(&row)? {
            report.schedules.push(row.name);
        } else {
            report.kept.push(format!("schedule {}", row.name));
        }
    }
    for n in escrow.notifications {
        let row = NotificationRow {
            name: n.name.clone(),
            spec_sealed: crate::notify::service::seal(state, &n)?,
            declared: false,
            created_at: now(),
        };
        if state.catalog.insert_notification(&row)? {
            report.notifications.push(row.name);
        } else {
            report.kept.push(format!("notification {}", row.name));
        }
    }
    let users: Vec<String> = state.catalog.users()?.into_iter().map(|u| u.name).collect();
    for u in escrow.users {
        if users.contains(&u.name) {
            report.kept.push(format!("user {}", u.name));
            continue;
        }
        state.catalog.insert_user(&UserRow {
            id: u.id,
            name: u.name.clone(),
            password_hash: u.password_hash,
            scopes: u.scopes,
            components: u.components,
            created_at: u.created_at,
            disabled_at: u.disabled_at,
        })?;
        report.users.push(u.name);
    }
    let tokens: Vec<String> = state.catalog.tokens()?.into_iter().map(|t| t.id).collect();
    for t in escrow.tokens {
        if tokens.contains(&t.id) {
            report.kept.push(format!("token {}", t.id));
            continue;
        }
        state.catalog.insert_token(&TokenRow {
            id: t.id.clone(),
            name: t.name,
            hash: t.hash,
            scopes: t.scopes,
            components: t.components,
            expires_at: t.expires_at,
            created_at: t.created_at,
            revoked_at: t.revoked_at,
        })?;
        report.tokens.push(t.id);
    }
    // Anchor the old log in the new one.
    state.catalog.append_audit(AuditEvent {
        actor: p.id.clone(),
        address: None,
        action: "state restored".into(),
        subject: target.to_owned(),
        outcome: format!(
            "escrowed audit head: entry {} ({})",
            escrow.audit_head.seq, escrow.audit_head.hash
        ),
    })?;
    state.scheduler.wake();
    Ok(report)
}
