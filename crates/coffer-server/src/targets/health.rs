//! Whether a target can be reached now, how large its repository is and,
//! for a local one, how much room is left: a probe that only lists (it
//! writes nothing and takes no lock), run by the scheduler every
//! `alerts.probe_every_secs`.

use coffer_model::target::TargetKind;
use coffer_targets::OpenTarget;

use super::last_probe::TargetHealth;
use crate::catalog::TargetRow;
use crate::state::AppState;

/// Probes `row`: lists its repository (the `config` object must be there)
/// and, for a local target, measures the free space of its file system.
pub fn probe(state: &AppState, row: &TargetRow) -> TargetHealth {
    let spec = state.target_spec(row);
    let free = match &spec {
        Ok(s) => match &s.kind {
            TargetKind::Local(l) => coffer_targets::free_space_at(&l.path)
                .ok()
                .map(|n| (l.path.clone(), n)),
            _ => None,
        },
        Err(_) => None,
    };
    let reached = spec
        .map_err(|e| e.message())
        .and_then(|s| OpenTarget::open(&s).map_err(|e| e.to_string()))
        .and_then(|t| {
            let storage = t.storage();
            let objects = storage.list("").map_err(|e| e.to_string())?;
            if !objects.iter().any(|o| o.key == "config") {
                return Err(format!(
                    "{} holds no repository (its config file is missing)",
                    storage.location()
                ));
            }
            Ok(objects.iter().map(|o| o.size).sum())
        });
    TargetHealth {
        name: row.name.clone(),
        reached,
        free,
    }
}
