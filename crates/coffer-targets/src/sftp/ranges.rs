//! Ranged reads on a second SFTP channel of the same SSH connection, with
//! every request of a range sent at once.
//!
//! `russh_sftp`'s file reader first sends one read to learn the server's
//! read size, then keeps a few ahead, and goes on requesting past the end of
//! a ranged read: a 2 MiB span cost four round trips and a few hundred KiB
//! read for nothing. A range is a known set of offsets, so here each one is
//! asked for straight away (bounded by [`IN_FLIGHT`]) on the raw protocol,
//! and the handle is closed without waiting for the answer: open, one round
//! trip of reads, done.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use futures_util::StreamExt;
use russh_sftp::client::RawSftpSession;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};

/// The largest read asked for: OpenSSH answers at most 255 KiB (and less
/// than asked is handled, see [`RangeReader::read`]).
const READ_CHUNK: u32 = 255 * 1024;

/// Reads in flight per range: 16 × 255 KiB covers a 4 MiB span.
const IN_FLIGHT: usize = 16;

/// The raw SFTP channel used for ranged reads.
pub(super) struct RangeReader {
    raw: Arc<RawSftpSession>,
    /// How much one read returns: lowered when a server answers less than
    /// asked in the middle of a file, so later ranges need no catching up.
    chunk: AtomicU32,
}

impl RangeReader {
    /// Opens the channel and starts SFTP on it.
    pub(super) async fn open<H: russh::client::Handler>(
        ssh: &russh::client::Handle<H>,
        request_timeout_secs: u64,
    ) -> Result<Self, String> {
        let channel = super::sftp_channel(ssh).await?;
        let config = russh_sftp::client::Config {
            request_timeout_secs,
            ..Default::default()
        };
        let raw = RawSftpSession::new_with_config(channel, config);
        raw.init().await.map_err(|e| e.to_string())?;
        Ok(Self {
            raw: Arc::new(raw),
            chunk: AtomicU32::new(READ_CHUNK),
        })
    }

    /// Up to `length` bytes of `path` from `offset`: fewer only where the
    /// file ends first.
    pub(super) async fn read(
        &self,
        path: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, SftpError> {
        let handle = self
            .raw
            .open(path, OpenFlags::READ, FileAttributes::default())
            .await?
            .handle;
        let result = self.read_handle(&handle, offset, length).await;
        // The answer to a close changes nothing here: not waited for.
        let raw = Arc::clone(&self.raw);
        tokio::spawn(async move {
            let _ = raw.close(handle).await;
        });
        result
    }

    async fn read_handle(
        &self,
        handle: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, SftpError> {
        let end = offset.saturating_add(length);
        let chunk = u64::from(self.chunk.load(Ordering::Relaxed).max(1));
        let asks = (0..length.div_ceil(chunk)).map(|i| {
            let at = offset + i * chunk;
            let len = chunk.min(end - at) as u32;
            async move { (at, self.raw.read(handle, at, len).await) }
        });
        let mut answers = futures_util::stream::iter(asks).buffered(IN_FLIGHT);
        let mut out = Vec::with_capacity(usize::try_from(length).unwrap_or(0));
        // Where the bytes read so far end, and how many the last answer held.
        let mut cursor = offset;
        let mut last = chunk;
        while let Some((at, answer)) = answers.next().await {
            if at > cursor {
                // The server answered an earlier read with less than asked:
                // catch up one read at a time, and ask for less from now on.
                self.chunk.store(
                    u32::try_from(last).unwrap_or(READ_CHUNK).max(1),
                    Ordering::Relaxed,
                );
                if !self
                    .read_serially(handle, &mut out, &mut cursor, at)
                    .await?
                {
                    return Ok(out);
                }
            }
            let data = match answer {
                Ok(data) if !data.data.is_empty() => data.data,
                // The file ended here.
                Ok(_) => return Ok(out),
                Err(SftpError::Status(s)) if s.status_code == StatusCode::Eof => return Ok(out),
                Err(e) => return Err(e),
            };
            last = data.len() as u64;
            append(&mut out, &mut cursor, at, end, &data);
        }
        if cursor < end {
            self.read_serially(handle, &mut out, &mut cursor, end)
                .await?;
        }
        Ok(out)
    }

    /// Reads `[cursor, until)` one request after the other onto `out`.
    /// False when the file ended first.
    async fn read_serially(
        &self,
        handle: &str,
        out: &mut Vec<u8>,
        cursor: &mut u64,
        until: u64,
    ) -> Result<bool, SftpError> {
        while *cursor < until {
            let len = (until - *cursor).min(u64::from(READ_CHUNK)) as u32;
            match self.raw.read(handle, *cursor, len).await {
                Ok(data) if !data.data.is_empty() => {
                    let at = *cursor;
                    append(out, cursor, at, until, &data.data);
                }
                Ok(_) => return Ok(false),
                Err(SftpError::Status(s)) if s.status_code == StatusCode::Eof => {
                    return Ok(false);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

/// Adds the part of `data` (read at `at`) that lies in `[cursor, end)` to
/// `out`: a server answering more than asked adds nothing twice.
fn append(out: &mut Vec<u8>, cursor: &mut u64, at: u64, end: u64, data: &[u8]) {
    let from = usize::try_from(cursor.saturating_sub(at)).unwrap_or(usize::MAX);
    let to = usize::try_from(end.saturating_sub(at)).unwrap_or(usize::MAX);
    if let Some(new) = data.get(from..to.min(data.len())) {
        out.extend_from_slice(new);
        *cursor += new.len() as u64;
    }
}

#[cfg(test)]
#[path = "ranges_tests.rs"]
mod tests;
