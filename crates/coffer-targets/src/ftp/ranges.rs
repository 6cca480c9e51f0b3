//! Ranges of one file read through one `RETR`.
//!
//! Every FTP read costs a data connection and three commands (`PASV`,
//! `REST`, `RETR`): four round trips before the first byte, and the server
//! sends on to the end of the file until the client closes the data
//! connection. Reading a restore's spans of a pack one request each left FTP
//! at an eighth of a plain download's speed; here the spans of a run are read
//! in order from one stream, the bytes between them read and dropped, and the
//! stream is only closed at the end of the run (or to go backwards).

use std::io::Read;

use suppaftp::{FtpError, ImplFtpStream, RustlsFtpStream, Status, TlsStream, TransferStream};

use super::FtpStorage;
use crate::{StorageError, StorageErrorKind, StorageResult, exact_range};

/// The TLS stream type of [`RustlsFtpStream`], which suppaftp does not
/// export by name.
trait Tls {
    type Stream: TlsStream;
}

impl<T: TlsStream> Tls for ImplFtpStream<T> {
    type Stream = T;
}

/// A `RETR` in progress and the control connection it belongs to.
struct OpenRead {
    conn: RustlsFtpStream,
    data: TransferStream<<RustlsFtpStream as Tls>::Stream>,
    /// The file offset of the next byte `data` yields.
    at: u64,
}

/// Yields the bytes of each of `ranges` of one file, in order, from as few
/// transfers as possible. Transient failures are retried from the range that
/// failed, on a new connection.
pub(super) struct RangeReader<'a> {
    ftp: &'a FtpStorage,
    key: String,
    path: String,
    ranges: std::vec::IntoIter<(u64, u64)>,
    open: Option<OpenRead>,
}

impl<'a> RangeReader<'a> {
    pub(super) fn new(ftp: &'a FtpStorage, key: &str, ranges: Vec<(u64, u64)>) -> Self {
        Self {
            ftp,
            key: key.to_owned(),
            path: ftp.path(key),
            ranges: ranges.into_iter(),
            open: None,
        }
    }

    /// Reads one range, from the open transfer when it has not passed
    /// `offset` yet, else from a new one.
    fn read(&mut self, offset: u64, length: u64) -> StorageResult<Vec<u8>> {
        if self.open.as_ref().is_some_and(|o| o.at > offset) {
            self.close();
        }
        let mut open = match self.open.take() {
            Some(open) => open,
            None => self.start(offset)?,
        };
        match read_at(&mut open, offset, length) {
            Ok(data) if data.len() as u64 == length => {
                self.open = Some(open);
                Ok(data)
            }
            // The end of an FTP data connection is the end of the file and
            // a cut transfer alike: the transfer's reply tells them apart,
            // and where a middlebox cut it cleanly after the server's 226,
            // the file's size does.
            Ok(data) => match open.data.finish().and_then(|()| open.conn.size(&self.path)) {
                Ok(size) => {
                    self.ftp.checkin(Some(open.conn));
                    if size as u64 >= offset + length {
                        return Err(StorageError::new(
                            StorageErrorKind::Transient,
                            &self.ftp.location,
                            "get-range",
                            &self.key,
                            format!(
                                "the transfer ended at {} of a {size}-byte file",
                                offset + data.len() as u64
                            ),
                        ));
                    }
                    exact_range(&self.ftp.location, &self.key, offset, length, data)
                }
                Err(e) => Err(self.broken(open.conn, e)),
            },
            Err(e) => Err(self.broken(open.conn, e)),
        }
    }

    /// The transfer broke mid-stream: neither it nor its control
    /// connection can be trusted, nor (likely) the idle ones.
    fn broken(&self, conn: RustlsFtpStream, e: FtpError) -> StorageError {
        drop(conn);
        self.ftp.checkin(None);
        self.ftp.drop_idle();
        self.ftp.err("get-range", &self.key, e)
    }

    /// `REST offset` + `RETR` on a pooled connection.
    fn start(&self, offset: u64) -> StorageResult<OpenRead> {
        let mut conn = self.ftp.checkout()?;
        let opened = conn
            .resume_transfer(usize::try_from(offset).unwrap_or(usize::MAX))
            .and_then(|()| conn.retr_as_stream(&self.path));
        match opened {
            Ok(data) => Ok(OpenRead {
                conn,
                data,
                at: offset,
            }),
            Err(e) => {
                self.ftp.give_back(conn, &e);
                Err(self.ftp.err("get-range", &self.key, e))
            }
        }
    }

    /// Ends the open transfer and returns its connection to the pool.
    ///
    /// No `ABOR`: servers answer it with a second reply (vsftpd: "225 No
    /// transfer to ABOR" after the transfer's own) that would be read as the
    /// answer to the next command. Closing the data connection instead gets
    /// exactly one reply — 226 when the server had sent everything, 426 (or
    /// 451) when the close cut it short — so the control connection stays
    /// in step and is reused, not logged in again.
    fn close(&mut self) {
        let Some(open) = self.open.take() else { return };
        let in_step = match open.data.finish() {
            Ok(()) => true,
            Err(FtpError::UnexpectedResponse(r)) => {
                matches!(r.status, Status::TransferAborted | Status::ActionAborted)
            }
            Err(_) => false,
        };
        self.ftp.checkin(in_step.then_some(open.conn));
    }
}

/// Drops the bytes up to `offset`, then reads `length` bytes (fewer only at
/// the end of the file).
fn read_at(open: &mut OpenRead, offset: u64, length: u64) -> Result<Vec<u8>, FtpError> {
    let gap = offset - open.at;
    let skipped = std::io::copy(&mut (&mut open.data).take(gap), &mut std::io::sink())
        .map_err(FtpError::ConnectionError)?;
    open.at += skipped;
    let mut buf = Vec::with_capacity(usize::try_from(length).unwrap_or(0));
    if skipped == gap {
        (&mut open.data)
            .take(length)
            .read_to_end(&mut buf)
            .map_err(FtpError::ConnectionError)?;
    }
    open.at += buf.len() as u64;
    Ok(buf)
}

impl Iterator for RangeReader<'_> {
    type Item = StorageResult<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        let Some((offset, length)) = self.ranges.next() else {
            self.close();
            return None;
        };
        if length == 0 {
            return Some(Ok(Vec::new()));
        }
        let retry = self.ftp.settings.retry;
        Some(retry.run(|| self.read(offset, length)))
    }
}

impl Drop for RangeReader<'_> {
    fn drop(&mut self) {
        self.close();
    }
}
