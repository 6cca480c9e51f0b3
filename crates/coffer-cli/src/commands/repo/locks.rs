//! `coffer repo locks`: the Coffer lock objects in the repository, and
//! whether the stale-lock rule applies to each. Needs no password.

use coffer_engine::lock::{LockInfo, RepoLock};
use coffer_targets::Storage;
use serde::Serialize;

use crate::error::CliResult;
use crate::output::{Output, short_id};

/// One lock object, as `repo locks` shows it.
#[derive(Debug, Serialize)]
struct LockRow {
    #[serde(flatten)]
    info: LockInfo,
    /// Whether the stale-lock rule applies (the next operation will remove it).
    stale: bool,
}

/// Lists the lock objects.
pub fn run(storage: &dyn Storage, out: Output) -> CliResult {
    let rows: Vec<LockRow> = RepoLock::list(storage)?
        .into_iter()
        .map(|info| LockRow {
            stale: info.is_stale_now(),
            info,
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    out.result(&rows, |rows| {
        let mut s = String::new();
        for r in rows {
            s.push_str(&format!(
                "{:<10} {:<9} {:<12} pid {:<8} on {:<20} refreshed {} s ago{}\n",
                short_id(&r.info.id),
                format!("{:?}", r.info.mode).to_lowercase(),
                r.info.owner,
                r.info.pid,
                r.info.host,
                now.saturating_sub(r.info.refreshed),
                if r.stale { " (stale)" } else { "" }
            ));
        }
        s.push_str(&format!("{} locks", rows.len()));
        s
    });
    Ok(())
}
