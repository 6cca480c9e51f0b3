//! An in-process pipe between a producer thread and a reader that, unlike an
//! OS pipe, can carry an error: a producer that fails makes the reader fail,
//! never see a clean end of stream — so whoever consumes it (the engine
//! recording a backup, an upload) records nothing.
//!
//! One pipe for every crate that streams between threads: the S3
//! component's tar in both directions, and [`spawn_producer`] for a reader
//! filled by a worker (the engine's sealing of streams and trees).

use std::io::{self, Read, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// Bytes per message.
const CHUNK: usize = 1 << 20;
/// Messages in flight: bounds the pipe's memory to about 8 MiB.
const DEPTH: usize = 8;

/// Creates a connected writer and reader.
pub fn pipe() -> (PipeWriter, PipeReader) {
    let (tx, rx) = sync_channel(DEPTH);
    (
        PipeWriter {
            tx: Some(tx),
            buf: Vec::with_capacity(CHUNK),
        },
        PipeReader {
            rx,
            chunk: Vec::new(),
            pos: 0,
            done: false,
        },
    )
}

/// The producer's end. Call [`PipeWriter::finish`] on success or
/// [`PipeWriter::fail`] on failure; dropping it without either is a failure.
pub struct PipeWriter {
    tx: Option<SyncSender<io::Result<Vec<u8>>>>,
    buf: Vec<u8>,
}

impl PipeWriter {
    fn send(&mut self, msg: io::Result<Vec<u8>>) -> io::Result<()> {
        match &self.tx {
            Some(tx) => tx
                .send(msg)
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the reader went away")),
            None => Err(io::Error::other("pipe already closed")),
        }
    }

    /// Sends what is buffered and ends the stream cleanly.
    pub fn finish(mut self) -> io::Result<()> {
        self.flush()?;
        self.tx = None;
        Ok(())
    }

    /// Ends the stream with `err`, which the reader returns.
    pub fn fail(mut self, err: io::Error) {
        let _ = self.send(Err(err));
        self.tx = None;
    }
}

impl Write for PipeWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.flush()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
            self.send(Ok(chunk))?;
        }
        Ok(())
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        if self.tx.is_some() {
            let _ = self.send(Err(io::Error::other(
                "the stream producer stopped before the end",
            )));
        }
    }
}

/// A reader of what `produce` writes on a new thread named `coffer-<name>`.
/// At the end of the data it reports `produce`'s error (or its panic)
/// instead of a clean end of stream.
pub fn spawn_producer(
    name: &str,
    produce: impl FnOnce(&mut PipeWriter) -> io::Result<()> + Send + 'static,
) -> io::Result<PipeReader> {
    let (mut writer, reader) = pipe();
    std::thread::Builder::new()
        .name(format!("coffer-{name}"))
        .spawn(move || match produce(&mut writer) {
            Ok(()) => {
                // A reader that went away already has its answer.
                let _ = writer.finish();
            }
            Err(e) => writer.fail(e),
        })?;
    Ok(reader)
}

/// The consumer's end.
pub struct PipeReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Read for PipeReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                // Clean end: the writer finished and was dropped.
                Err(_) => {
                    self.done = true;
                    return Ok(0);
                }
            }
        }
        let n = out.len().min(self.chunk.len() - self.pos);
        out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_arrive_in_order_and_errors_are_not_eof() {
        let (mut w, mut r) = pipe();
        let producer = std::thread::spawn(move || {
            for i in 0..3000u32 {
                w.write_all(&i.to_le_bytes().repeat(100)).unwrap();
            }
            w.finish().unwrap();
        });
        let mut all = Vec::new();
        r.read_to_end(&mut all).unwrap();
        producer.join().unwrap();
        assert_eq!(all.len(), 3000 * 400);
        assert_eq!(&all[400..404], &1u32.to_le_bytes());

        let (mut w, mut r) = pipe();
        w.write_all(b"partial").unwrap();
        w.fail(io::Error::other("source failed"));
        let err = r.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(err.to_string(), "source failed");

        let (w, mut r) = pipe();
        drop(w);
        assert!(r.read_to_end(&mut Vec::new()).is_err());
    }

    #[test]
    fn a_producer_thread_ends_the_stream_with_its_outcome() {
        let mut r = spawn_producer("ok", |w| w.write_all(b"all of it")).unwrap();
        let mut all = Vec::new();
        r.read_to_end(&mut all).unwrap();
        assert_eq!(all, b"all of it");

        let mut r = spawn_producer("fails", |w| {
            w.write_all(b"half")?;
            Err(io::Error::other("the source broke"))
        })
        .unwrap();
        let err = r.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(err.to_string(), "the source broke");

        let mut r = spawn_producer("panics", |_| panic!("boom")).unwrap();
        let err = r.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("stopped before the end"), "{err}");
    }
}
