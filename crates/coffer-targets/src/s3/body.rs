//! The body of an object opened for streaming: exactly its length, or an
//! error — never a clean end of a body shorter or longer than declared.

use std::io::{self, Read};

/// An object's body from [`S3Client::open`]: exactly [`ObjectBody::len`]
/// bytes, or an error (never a clean end of a shorter or longer body).
pub struct ObjectBody {
    inner: Box<dyn Read + Send>,
    len: u64,
    left: u64,
    /// `location: get "key"`, for errors.
    what: String,
}

impl ObjectBody {
    /// `inner` must already be limited to `len` bytes by the HTTP client
    /// (which then fails on the first byte more); `what` names the object.
    pub(super) fn new(inner: Box<dyn Read + Send>, len: u64, what: String) -> Self {
        Self {
            inner,
            len,
            left: len,
            what,
        }
    }

    /// The bytes this body yields.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it yields nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::fmt::Debug for ObjectBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ObjectBody({}, {} bytes)", self.what, self.len)
    }
}

impl Read for ObjectBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // The inner reader is limited to `len`: at the end it probes one
        // byte further and fails if the server has more.
        let n = self.inner.read(buf).map_err(|e| {
            let longer = e
                .get_ref()
                .and_then(|i| i.downcast_ref::<ureq::Error>())
                .is_some_and(|u| matches!(u, ureq::Error::BodyExceedsLimit(_)));
            if longer {
                io::Error::other(format!(
                    "{}: the server sent more than the {} bytes expected \
                     (the object changed while it was copied?)",
                    self.what, self.len
                ))
            } else {
                io::Error::new(
                    e.kind(),
                    format!(
                        "{}: the body broke off after {} of {} bytes: {e}",
                        self.what,
                        self.len - self.left,
                        self.len
                    ),
                )
            }
        })?;
        if n == 0 && self.left > 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{}: the body ended {} bytes early, after {} of {} \
                     (changed or cut while it was copied)",
                    self.what,
                    self.left,
                    self.len - self.left,
                    self.len
                ),
            ));
        }
        self.left = self.left.saturating_sub(n as u64);
        Ok(n)
    }
}
