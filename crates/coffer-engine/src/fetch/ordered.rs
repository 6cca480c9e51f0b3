//! A file's content streamed out in order, with the spans ahead of the one
//! being written already in flight.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::mpsc;
use std::sync::{Condvar, Mutex};

use rustic_core::repofile::Node;
use rustic_core::{IndexedFull, Repository};

use super::{Fetcher, PackSpan, locate, plan};
use crate::{EngineError, EngineResult};

/// Writes the content of the file `node` to `out`; returns its length.
/// Replaces rustic_core's `dump`, which reads blob by blob.
pub(crate) fn write_file<S: IndexedFull>(
    fetcher: &Fetcher,
    repo: &Repository<S>,
    node: &Node,
    out: &mut dyn Write,
) -> EngineResult<u64> {
    let content = node.content.as_deref().unwrap_or_default();
    let blobs = content
        .iter()
        .map(|id| locate(repo, id).map(|b| (b, ())))
        .collect::<EngineResult<Vec<_>>>()?;
    write_in_order(fetcher, &plan::in_order(blobs), out)
}

/// Which spans may be fetched: `[.. written + window)`.
struct Window {
    /// The next run a worker takes.
    next_run: usize,
    /// Spans written out.
    written: usize,
    /// Set when the writer stops early (an error on either side).
    stopped: bool,
}

/// Writes the blobs of `spans`, in order, to `out` (on this thread: `out`
/// need not be `Send`); returns the bytes written. Workers take runs of
/// spans in order ([`Fetcher::runs`]) and fetch at most
/// [`Fetcher::parallel`] spans ahead of the one being written, so memory
/// stays within twice that many spans.
pub(crate) fn write_in_order<T: Sync>(
    fetcher: &Fetcher,
    spans: &[PackSpan<T>],
    out: &mut dyn Write,
) -> EngineResult<u64> {
    let window = fetcher.parallel();
    let runs = fetcher.runs(spans);
    let state = Mutex::new(Window {
        next_run: 0,
        written: 0,
        stopped: false,
    });
    let moved = Condvar::new();
    // Waits until span `i` may be fetched; false when the writer stopped.
    let admit = |i: usize| {
        let Ok(mut s) = state.lock() else {
            return false;
        };
        while !s.stopped && i >= s.written + window {
            s = match moved.wait(s) {
                Ok(s) => s,
                Err(_) => return false,
            };
        }
        !s.stopped
    };
    let (tx, rx) = mpsc::channel::<(usize, EngineResult<Vec<Vec<u8>>>)>();
    let stop = || {
        if let Ok(mut s) = state.lock() {
            s.stopped = true;
        }
        moved.notify_all();
    };
    std::thread::scope(|scope| {
        for _ in 0..window.min(runs.len()) {
            let tx = tx.clone();
            let (state, runs, admit) = (&state, &runs, &admit);
            scope.spawn(move || {
                loop {
                    let run = {
                        let Ok(mut s) = state.lock() else { return };
                        let Some(run) = runs.get(s.next_run) else {
                            return;
                        };
                        s.next_run += 1;
                        run.clone()
                    };
                    if !admit(run.start) {
                        return;
                    }
                    // The spans handed over so far; the next one is where an
                    // error belongs.
                    let mut sent = run.start;
                    let fetched = fetcher.fetch_run(&spans[run.clone()], |_, blobs| {
                        tx.send((sent, Ok(blobs))).map_err(|_| stopped())?;
                        sent += 1;
                        if sent < run.end && !admit(sent) {
                            return Err(stopped());
                        }
                        Ok(())
                    });
                    if let Err(e) = fetched
                        && tx.send((sent, Err(e))).is_err()
                    {
                        return;
                    }
                }
            });
        }
        drop(tx);
        let mut ready: BTreeMap<usize, Vec<Vec<u8>>> = BTreeMap::new();
        let mut bytes = 0u64;
        let mut written = 0usize;
        let result = (|| {
            while written < spans.len() {
                let Some(blobs) = ready.remove(&written) else {
                    let (i, fetched) = rx.recv().map_err(|_| {
                        EngineError::Panicked("a worker reading the repository".into())
                    })?;
                    ready.insert(i, fetched?);
                    continue;
                };
                for blob in &blobs {
                    out.write_all(blob)
                        .map_err(|e| EngineError::io("writing restored data", e))?;
                    bytes += blob.len() as u64;
                }
                written += 1;
                if let Ok(mut s) = state.lock() {
                    s.written = written;
                }
                moved.notify_all();
            }
            Ok(bytes)
        })();
        stop();
        result
    })
}

/// What a worker returns when the writer has stopped: nobody reads it.
fn stopped() -> EngineError {
    EngineError::Engine("the restore stopped".into())
}
