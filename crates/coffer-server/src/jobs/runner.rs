//! How a job runs its components: a few at a time, each under a time limit,
//! and every component ends with an outcome — even one whose code panicked.

use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Duration;

use coffer_engine::CancelToken;

use coffer_model::component::ComponentSpec;

use crate::error::{ServiceError, ServiceResult};
use crate::state::AppState;

/// A component's outcome: `(name, result)`.
pub type Outcome<T> = (String, Result<T, String>);

/// Runs `run` for every item, at most `limit` at once, and returns the
/// outcomes in the items' order. A run that panics becomes an error outcome.
pub fn run_components<I: Send, T: Send>(
    items: Vec<(String, I)>,
    limit: usize,
    run: impl Fn(&str, I) -> Result<T, String> + Sync,
) -> Vec<Outcome<T>> {
    let names: Vec<String> = items.iter().map(|(n, _)| n.clone()).collect();
    let queue = Mutex::new(items.into_iter().enumerate());
    let results: Mutex<Vec<Option<Result<T, String>>>> =
        Mutex::new(names.iter().map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..limit.max(1).min(names.len()) {
            s.spawn(|| {
                loop {
                    let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                    let Some((i, (name, item))) = next else {
                        return;
                    };
                    let r = std::panic::catch_unwind(AssertUnwindSafe(|| run(&name, item)))
                        .unwrap_or_else(|p| {
                            Err(format!("the component panicked: {}", panic_text(&p)))
                        });
                    results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    names
        .into_iter()
        .zip(results)
        .map(|(n, r)| {
            (
                n,
                r.unwrap_or_else(|| Err("the component task ended without a result".into())),
            )
        })
        .collect()
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown cause".into())
}

/// Runs `f` on a thread of its own, named after the job.
pub fn spawn_job(id: &str, f: impl FnOnce() + Send + 'static) -> ServiceResult<()> {
    std::thread::Builder::new()
        .name(format!(
            "coffer-job-{}",
            id.chars().take(24).collect::<String>()
        ))
        .spawn(f)
        .map(|_| ())
        .map_err(|e| ServiceError::internal(format!("starting job {id}: {e}")))
}

/// The end of a run under a time limit.
pub enum Timed<T> {
    /// It finished in time.
    Done(T),
    /// It ran out of time; `cancel` was fired and the run was waited for:
    /// this is what it returned afterwards.
    TimedOut(T),
}

/// Runs `f` on a thread of its own; after `limit`, fires `cancel` and waits
/// for `f` to notice, so nothing keeps running in the background.
pub fn with_timeout<T: Send + 'static>(
    limit: Duration,
    cancel: &CancelToken,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<Timed<T>, String> {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("coffer-component".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| format!("starting the component's thread: {e}"))?;
    let outcome = match rx.recv_timeout(limit) {
        Ok(v) => Ok(Timed::Done(v)),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            cancel.cancel();
            rx.recv()
                .map(Timed::TimedOut)
                .map_err(|_| "the component panicked after its time ran out".to_owned())
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => Err("the component panicked".to_owned()),
    };
    let _ = handle.join();
    outcome
}

/// Records each outcome through `record`; returns the failures as
/// `name: reason` lines. A recording failure is logged through `log`.
pub fn record_outcomes<T>(
    outcomes: &[Outcome<T>],
    log: &dyn Fn(String),
    record: impl Fn(&str, Result<&T, &str>) -> crate::catalog::CatalogResult<()>,
) -> Vec<String> {
    let mut failures = Vec::new();
    for (name, r) in outcomes {
        if let Err(e) = r {
            failures.push(format!("{name}: {e}"));
        }
        if let Err(e) = record(name, r.as_ref().map_err(String::as_str)) {
            log(format!("recording component {name}: {e}"));
        }
    }
    failures
}

/// Creates the staging directory and refuses (507) when it cannot hold the
/// largest staging copy one of `specs` makes.
pub(crate) fn staging_fits(state: &AppState, specs: &[ComponentSpec]) -> ServiceResult<()> {
    let staging = &state.config.staging_dir;
    std::fs::create_dir_all(staging).map_err(|e| {
        ServiceError::internal(format!(
            "creating staging directory {}: {e}",
            staging.display()
        ))
    })?;
    coffer_components::check_staging_space(specs, staging)
        .map_err(ServiceError::InsufficientStorage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_keep_their_order_and_a_panic_is_an_error() {
        let items: Vec<(String, u32)> = (0..6).map(|i| (format!("c{i}"), i)).collect();
        let out = run_components(items, 2, |_, i| {
            if i == 3 {
                panic!("boom {i}");
            }
            Ok(i * 10)
        });
        assert_eq!(out.len(), 6);
        assert_eq!(out[5], ("c5".to_owned(), Ok(50)));
        let (name, r) = &out[3];
        assert_eq!(name, "c3");
        assert!(r.as_ref().unwrap_err().contains("boom 3"), "{r:?}");
    }

    #[test]
    fn a_run_past_its_time_is_cancelled_and_waited_for() {
        let token = CancelToken::new();
        let t = token.clone();
        let r = with_timeout(Duration::from_millis(50), &token, move || {
            while !t.is_cancelled() {
                std::thread::sleep(Duration::from_millis(5));
            }
            "stopped"
        })
        .unwrap();
        assert!(matches!(r, Timed::TimedOut("stopped")));
        let r = with_timeout(Duration::from_secs(5), &CancelToken::new(), || 7).unwrap();
        assert!(matches!(r, Timed::Done(7)));
    }
}
