//! The body of an object opened for streaming: exactly its length, or an
//! error — never a clean end of a body shorter or longer than declared.

use std::io::{self, Read};

/// Opens the rest of the object from a byte offset, for a body that broke off.
pub(crate) type Resume = Box<dyn FnMut(u64) -> io::Result<Box<dyn Read + Send>> + Send>;

/// How many times a body that broke off is resumed.
const RESUMES: u32 = 3;

/// An object's body from [`S3Client::open`]: exactly [`ObjectBody::len`]
/// bytes, or an error (never a clean end of a shorter or longer body). A
/// connection that breaks or ends early is resumed where it stopped, when
/// the body was made [`ObjectBody::resumable`].
pub struct ObjectBody {
    inner: Box<dyn Read + Send>,
    len: u64,
    left: u64,
    /// `location: get "key"`, for errors.
    what: String,
    resume: Option<Resume>,
    resumes_left: u32,
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
            resume: None,
            resumes_left: RESUMES,
        }
    }

    /// This body, going on through `resume` when it breaks off.
    pub(super) fn resumable(mut self, resume: Resume) -> Self {
        self.resume = Some(resume);
        self
    }

    /// Swaps in the rest of the body after `broke`; `broke` itself when it
    /// cannot be resumed.
    fn resume_after(&mut self, broke: io::Error) -> io::Result<()> {
        let at = self.len - self.left;
        match self.resume.as_mut() {
            Some(resume) if self.resumes_left > 0 => {
                self.resumes_left -= 1;
                self.inner = resume(at).map_err(|e| {
                    io::Error::new(broke.kind(), format!("{broke}; resuming at byte {at}: {e}"))
                })?;
                Ok(())
            }
            _ => Err(broke),
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
        loop {
            // The inner reader is limited to what is left: at the end it
            // probes one byte further and fails if the server has more.
            let broke = match self.inner.read(buf) {
                Ok(0) if self.left > 0 => io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "{}: the body ended {} bytes early, after {} of {} \
                         (changed or cut while it was copied)",
                        self.what,
                        self.left,
                        self.len - self.left,
                        self.len
                    ),
                ),
                Ok(n) => {
                    self.left = self.left.saturating_sub(n as u64);
                    return Ok(n);
                }
                Err(e) => {
                    let longer = e
                        .get_ref()
                        .and_then(|i| i.downcast_ref::<ureq::Error>())
                        .is_some_and(|u| matches!(u, ureq::Error::BodyExceedsLimit(_)));
                    if longer {
                        return Err(io::Error::other(format!(
                            "{}: the server sent more than the {} bytes expected \
                             (the object changed while it was copied?)",
                            self.what, self.len
                        )));
                    }
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
            };
            self.resume_after(broke)?;
        }
    }
}
