//! The `job_log` table: every job's log lines, and the writer that batches
//! them.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use rusqlite::params;

use super::db::{Catalog, CatalogResult, Ctx, now};

/// Lines taken from the queue into one transaction at most.
const BATCH: usize = 2_000;

impl Catalog {
    /// Appends one line to a job's log at once (offline commands; the server
    /// writes through a [`LogWriter`]).
    pub fn log(&self, job_id: &str, line: &str) {
        if let Err(e) = self.append_log(&[(job_id.to_owned(), now(), line.to_owned())]) {
            tracing::warn!(job = job_id, "could not keep a log line: {e}");
        }
    }

    /// Appends `(job, time, line)` rows in one transaction: one disk sync for
    /// the whole batch.
    pub fn append_log(&self, lines: &[(String, i64, String)]) -> CatalogResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction().ctx("writing log lines")?;
        {
            let mut st = tx
                .prepare("INSERT INTO job_log (job_id, at, line) VALUES (?1, ?2, ?3)")
                .ctx("writing log lines")?;
            for (job, at, line) in lines {
                st.execute(params![job, at, line])
                    .ctx("writing log lines")?;
            }
        }
        tx.commit().ctx("writing log lines")
    }

    /// A job's log: (time, line), oldest first.
    pub fn job_log(&self, job_id: &str) -> CatalogResult<Vec<(i64, String)>> {
        let conn = self.conn();
        let mut q = conn
            .prepare("SELECT at, line FROM job_log WHERE job_id = ?1 ORDER BY seq")
            .ctx("reading a job log")?;
        let rows = q
            .query_map([job_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .ctx("reading a job log")?;
        rows.collect::<Result<_, _>>().ctx("reading a job log")
    }
}

enum Message {
    Line(String, i64, String),
    /// Answered once every line sent before it is committed.
    Flush(Sender<()>),
}

/// Writes job log lines on a thread of its own, many per transaction: a hook
/// can print thousands of lines, and each committed INSERT costs a disk
/// sync (the catalog runs with `synchronous = FULL`). [`log`](Self::log)
/// never blocks; [`flush`](Self::flush) waits until earlier lines are stored,
/// so a job's final state is never recorded before its log.
pub struct LogWriter {
    queue: Mutex<Sender<Message>>,
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogWriter")
    }
}

impl LogWriter {
    /// Starts the writer thread; it ends when the writer is dropped.
    pub fn start(catalog: Arc<Catalog>) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("coffer-log-writer".into())
            .spawn(move || write_batches(&catalog, &rx))?;
        Ok(Self {
            queue: Mutex::new(tx),
        })
    }

    fn send(&self, m: Message) -> bool {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(m)
            .is_ok()
    }

    /// Queues a line for `job`'s log.
    pub fn log(&self, job: &str, line: &str) {
        if !self.send(Message::Line(job.to_owned(), now(), line.to_owned())) {
            tracing::warn!(job, "the log writer has stopped; lost: {line}");
        }
    }

    /// Blocks until every line queued before the call is committed.
    pub fn flush(&self) {
        let (tx, rx) = mpsc::channel();
        if self.send(Message::Flush(tx)) {
            let _ = rx.recv();
        }
    }
}

fn write_batches(catalog: &Catalog, rx: &Receiver<Message>) {
    while let Ok(first) = rx.recv() {
        let mut lines = Vec::new();
        let mut waiting = Vec::new();
        let mut next = Some(first);
        while let Some(m) = next {
            match m {
                Message::Line(job, at, line) => lines.push((job, at, line)),
                Message::Flush(done) => waiting.push(done),
            }
            next = if lines.len() < BATCH {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        if !lines.is_empty()
            && let Err(e) = catalog.append_log(&lines)
        {
            tracing::warn!("could not keep {} log line(s): {e}", lines.len());
        }
        for done in waiting {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_stored_in_order_and_flush_waits_for_them() {
        let catalog = Arc::new(Catalog::in_memory().unwrap());
        let w = LogWriter::start(Arc::clone(&catalog)).unwrap();
        for i in 0..5_000 {
            w.log("job-1", &format!("line {i}"));
        }
        w.log("job-2", "other");
        w.flush();
        let lines = catalog.job_log("job-1").unwrap();
        assert_eq!(lines.len(), 5_000);
        assert_eq!(lines[4_999].1, "line 4999");
        assert_eq!(catalog.job_log("job-2").unwrap().len(), 1);
    }
}
