//! Checks of a target's repository: its structure and, with `read_data`,
//! the content of all packs or a part of them (a check schedule rotates
//! the parts so every pack is read within its period). Damage is reported
//! by pack and by the backups it hurts; a check that finds damage is
//! `ERROR` and told (`check_failed`) until a clean one.

use std::collections::BTreeSet;
use std::sync::Arc;

use coffer_model::access::Scope;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::access::Principal;
use crate::catalog::{CheckRow, now};
use crate::error::{ServiceError, ServiceResult};
use crate::jobs::registry::Reservation;
use crate::jobs::runner::spawn_job;
use crate::notify::handle::{Alert, EventKind};
use crate::state::{AppState, Shared};

/// Start a check.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// Read pack contents too: `all`, a part `n/m` (`3/30`), a share
    /// (`10%`) or a size (`500M`). Without it, only the structure (index,
    /// trees, snapshots) is checked.
    #[serde(default)]
    pub read_data: Option<String>,
}

/// A backup a damaged pack hurts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AffectedBackup {
    /// The backup (or the snapshot, for one Coffer did not write).
    pub backup_id: String,
    /// Its component.
    pub component: Option<String>,
    /// What of it is damaged.
    pub why: String,
}

/// What a check found.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct CheckFindings {
    /// Problems that make data unreadable or the repository inconsistent.
    pub errors: Vec<String>,
    /// Findings that do not endanger data.
    pub warnings: Vec<String>,
    /// Packs the errors name.
    pub damaged_packs: Vec<String>,
    /// Backups those packs hurt.
    pub affected: Vec<AffectedBackup>,
}

/// The pack ids (or prefixes) a check's error names: a hex word of at
/// least 8 digits right after `pack`/`Pack:`, or any 64-digit one.
fn pack_ids(text: &str) -> Vec<String> {
    let lower = text.to_ascii_lowercase();
    let mut out = Vec::new();
    for (i, _) in lower.match_indices("pack") {
        let rest = lower[i + 4..].trim_start_matches([':', ' ', '"', '\'', '(']);
        let hex: String = rest.chars().take_while(char::is_ascii_hexdigit).collect();
        if hex.len() >= 8 {
            out.push(hex);
        }
    }
    out.extend(
        lower
            .split(|c: char| !c.is_ascii_hexdigit())
            .filter(|w| w.len() == 64)
            .map(str::to_owned),
    );
    out
}

/// A check error as people read it: its message without the backtraces
/// and details rustic_core appends, on one line, at most 600 characters.
fn one_line(error: &str) -> String {
    let head = error.split("Backtrace:").next().unwrap_or(error);
    let head = head.split("Some additional details").next().unwrap_or(head);
    let mut line = head.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > 600 {
        line = line.chars().take(600).collect::<String>() + "…";
    }
    line
}

/// Starts a check of `target` as `p` (`maintenance`); returns its id.
pub fn start(
    state: &Shared,
    p: &Principal,
    target: &str,
    req: CheckRequest,
    schedule: Option<String>,
) -> ServiceResult<String> {
    p.require(Scope::Maintenance)?;
    state.target_row(target)?;
    if let Some(r) = &req.read_data
        && (r.is_empty() || r.len() > 32 || r.contains(char::is_whitespace))
    {
        return Err(ServiceError::Invalid(format!(
            "read_data: {r:?}: use all, a part such as 3/30, a share such as 10%, or a size such as 500M"
        )));
    }
    let id = format!("check-{}", uuid::Uuid::new_v4());
    let reservation = state.jobs.reserve(&id, vec![format!("check:{target}")])?;
    let row = CheckRow {
        id: id.clone(),
        target: target.to_owned(),
        schedule,
        read_data: req.read_data,
        status: "CHECKING".into(),
        error: None,
        report: None,
        created_at: now(),
        finished_at: None,
    };
    state.catalog.insert_check(&row)?;
    let st = Arc::clone(state);
    spawn_job(&id, move || run(&st, row, reservation))?;
    Ok(id)
}

fn run(state: &AppState, row: CheckRow, reservation: Reservation) {
    let _reservation = reservation;
    let log = |line: String| state.log(&row.id, &line);
    log(format!(
        "check of target {} started (read data: {})",
        row.target,
        row.read_data.as_deref().unwrap_or("no")
    ));
    let outcome = (|| -> Result<CheckFindings, String> {
        let repo = state.repo(&row.target).map_err(|e| e.message())?;
        let report = repo
            .check(row.read_data.as_deref())
            .map_err(|e| e.to_string())?;
        let named: BTreeSet<String> = report.errors.iter().flat_map(|e| pack_ids(e)).collect();
        let mut f = CheckFindings {
            errors: report.errors.iter().map(|e| one_line(e)).collect(),
            warnings: report.warnings.iter().map(|w| one_line(w)).collect(),
            ..CheckFindings::default()
        };
        if !named.is_empty() {
            // Ids that are not packs (blobs, trees) simply match nothing.
            let damage = repo
                .snapshots_using_packs(&named.into_iter().collect::<Vec<_>>())
                .map_err(|e| e.to_string())?;
            f.damaged_packs = damage.packs;
            f.affected = damage
                .affected
                .into_iter()
                .map(|a| AffectedBackup {
                    backup_id: a
                        .snapshot
                        .backup
                        .as_ref()
                        .map_or_else(|| a.snapshot.id.clone(), |b| b.backup_id.to_string()),
                    component: a.snapshot.backup.as_ref().map(|b| b.component.to_string()),
                    why: a.why,
                })
                .collect();
        }
        Ok(f)
    })();
    let (error, findings) = match outcome {
        Err(e) => (Some(e), CheckFindings::default()),
        Ok(f) if f.errors.is_empty() => (None, f),
        Ok(f) => {
            let backups: BTreeSet<&str> = f.affected.iter().map(|a| a.backup_id.as_str()).collect();
            (
                Some(format!(
                    "{} error(s); damaged packs: {}; affected backups: {}",
                    f.errors.len(),
                    if f.damaged_packs.is_empty() {
                        "none named".to_owned()
                    } else {
                        f.damaged_packs.join(", ")
                    },
                    if backups.is_empty() {
                        "none found".to_owned()
                    } else {
                        backups.into_iter().collect::<Vec<_>>().join(", ")
                    }
                )),
                f,
            )
        }
    };
    for e in &findings.errors {
        log(format!("error: {e}"));
    }
    log(match &error {
        None => format!("check READY: {} warning(s)", findings.warnings.len()),
        Some(e) => format!("check ERROR: {e}"),
    });
    state.logs.flush();
    let report = serde_json::to_string(&findings).unwrap_or_default();
    if let Err(e) = state
        .catalog
        .finish_check(&row.id, error.as_deref(), &report)
    {
        tracing::error!(check = %row.id, "recording the end of the check: {e}");
    }
    state.notifier.raise(Alert {
        kind: EventKind::CheckFailed,
        condition: Some((
            format!("check_failed:target {}", row.target),
            error.is_some(),
        )),
        summary: match &error {
            Some(e) => format!("check {} of target {} failed: {e}", row.id, row.target),
            None => format!("target {} checks clean again ({})", row.target, row.id),
        },
        details: json!({
            "check_id": row.id, "target": row.target, "read_data": row.read_data,
            "damaged_packs": findings.damaged_packs, "affected": findings.affected,
        }),
    });
    state.scheduler.wake();
}

/// A check, for `p` (`maintenance`).
pub fn show(state: &AppState, p: &Principal, id: &str) -> ServiceResult<CheckRow> {
    p.require(Scope::Maintenance)?;
    state
        .catalog
        .check(id)?
        .ok_or_else(|| ServiceError::NotFound(format!("no check with id {id:?}")))
}
