//! Digests of an export as it is written (what the API shows).

use std::io::{self, Write};

use serde::Serialize;

/// SHA-256 and MD5 of everything written through it, and the length: what
/// the API shows for an export so operators can compare (Auth0 style).
pub struct DigestWriter<W> {
    inner: HashingWriter<W>,
    md5: md5::Md5,
}

/// The digests of a finished file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Digests {
    /// Bytes.
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: String,
    /// MD5, hex.
    pub md5: String,
}

impl<W: Write> DigestWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        use md5::Digest;
        Self {
            inner: HashingWriter::new(inner),
            md5: md5::Md5::new(),
        }
    }

    /// The writer and the digests of what passed.
    pub fn finish(self) -> (W, Digests) {
        use md5::Digest;
        let (inner, size, sha256) = self.inner.finish();
        let digests = Digests {
            size,
            sha256,
            md5: hex::encode(self.md5.finalize()),
        };
        (inner, digests)
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        use md5::Digest;
        let n = self.inner.write(buf)?;
        self.md5.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// SHA-256 and length of what is written through it.
pub(crate) struct HashingWriter<W> {
    inner: W,
    sha256: ring::digest::Context,
    pub(crate) len: u64,
}

impl<W> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        Self {
            inner,
            sha256: ring::digest::Context::new(&ring::digest::SHA256),
            len: 0,
        }
    }

    /// The writer, the length and the SHA-256 (hex) of what passed.
    pub(crate) fn finish(self) -> (W, u64, String) {
        (self.inner, self.len, hex::encode(self.sha256.finish()))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha256.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
