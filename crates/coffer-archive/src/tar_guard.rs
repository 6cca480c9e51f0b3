//! A guard against tar header bombs.
//!
//! The `tar` crate reads a PAX extended header (`x`) and GNU long-name and
//! long-link entries (`L`, `K`) wholly into memory before it hands out the
//! entry they describe, whatever size their header declares. A few hundred
//! bytes of zstd can declare an 8 GiB PAX header and exhaust the server's
//! memory long before any size or ratio check sees a byte of file content.
//!
//! [`HeaderGuard`] sits between the raw byte stream and `tar::Archive` and
//! follows the archive block by block, exactly as the `tar` crate reads it:
//! every header is a 512-byte block; the next header follows the entry's
//! data rounded up to 512 bytes; sizes are octal or GNU base-256; a PAX
//! `size` record overrides the next entry's size; GNU sparse headers may be
//! followed by extension blocks. It refuses — with an [`io::ErrorKind::InvalidData`]
//! error wrapping a [`HeaderLimitExceeded`] — an extension entry (anything
//! that is not a file, directory, link, device or FIFO: `x`, `g`, `L`, `K`,
//! vendor types) declaring more than [`HeaderLimits::max_header`] bytes, or
//! extension entries declaring more than [`HeaderLimits::max_total`] bytes in
//! all. The refusal comes with the read that completes the offending header
//! block, before the `tar` crate reads a byte of that header's data.
//!
//! Bytes pass through unchanged and unbuffered (the guard keeps a copy of at
//! most one header block), so the guard is invisible to a well-formed
//! archive. A [`HeaderCounter`] tells callers how many bytes were headers
//! rather than file content, to charge them against their own limits.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Default cap of one extension entry's data (a PAX header, a GNU long name).
pub const DEFAULT_MAX_HEADER: u64 = 1 << 20;
/// Default budget of all extension entries' data in one archive.
pub const DEFAULT_MAX_TOTAL: u64 = 16 << 20;

const BLOCK: usize = 512;

/// How much extension-header data an archive may declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderLimits {
    /// Bytes of one extension entry's data ([`DEFAULT_MAX_HEADER`]).
    pub max_header: u64,
    /// Bytes of all extension entries' data together ([`DEFAULT_MAX_TOTAL`]).
    pub max_total: u64,
}

impl Default for HeaderLimits {
    fn default() -> Self {
        Self {
            max_header: DEFAULT_MAX_HEADER,
            max_total: DEFAULT_MAX_TOTAL,
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    header_bytes: AtomicU64,
    metadata_bytes: AtomicU64,
    entries: AtomicU64,
}

/// What a [`HeaderGuard`] has seen so far; cheap to clone and shared with
/// the guard, so it can be read while the guard is owned by a `tar::Archive`.
#[derive(Debug, Clone, Default)]
pub struct HeaderCounter(Arc<Counts>);

impl HeaderCounter {
    /// Bytes that were not file content: header blocks (end-of-archive
    /// blocks included), GNU sparse maps, extension entries' data, padding.
    pub fn header_bytes(&self) -> u64 {
        self.0.header_bytes.load(Ordering::Relaxed)
    }

    /// Bytes of data the extension entries declared (what
    /// [`HeaderLimits::max_total`] bounds).
    pub fn metadata_bytes(&self) -> u64 {
        self.0.metadata_bytes.load(Ordering::Relaxed)
    }

    /// Header blocks read (extension entries included, end-of-archive
    /// blocks and sparse maps not).
    pub fn entries(&self) -> u64 {
        self.0.entries.load(Ordering::Relaxed)
    }

    fn add_header_bytes(&self, n: u64) {
        self.0.header_bytes.fetch_add(n, Ordering::Relaxed);
    }
}

/// Which limit an archive broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// One extension entry declares more than [`HeaderLimits::max_header`].
    Header,
    /// Extension entries together declare more than [`HeaderLimits::max_total`].
    Total,
}

/// The error inside the `io::Error` a [`HeaderGuard`] fails with (see
/// [`limit_exceeded`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderLimitExceeded {
    /// Which limit.
    pub kind: LimitKind,
    /// The entry's type flag (`b'x'`, `b'L'`, …).
    pub entry_type: u8,
    /// What the entry declares ([`LimitKind::Header`]) or what all
    /// extension entries declare with it ([`LimitKind::Total`]).
    pub declared: u64,
    /// The limit broken.
    pub limit: u64,
    /// Where the entry's header block starts in the archive.
    pub offset: u64,
}

impl std::fmt::Display for HeaderLimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = describe(self.entry_type);
        match self.kind {
            LimitKind::Header => write!(
                f,
                "the archive's {what} at offset {} declares {} bytes; at most {} are allowed \
                 per header",
                self.offset, self.declared, self.limit
            ),
            LimitKind::Total => write!(
                f,
                "the archive's extension headers declare {} bytes in all (reached with the \
                 {what} at offset {}); at most {} are allowed",
                self.declared, self.offset, self.limit
            ),
        }
    }
}

impl std::error::Error for HeaderLimitExceeded {}

/// The guard's refusal inside `e`, if `e` is one (the `tar` crate passes a
/// reader's errors through unchanged).
pub fn limit_exceeded(e: &io::Error) -> Option<&HeaderLimitExceeded> {
    e.get_ref()?.downcast_ref()
}

fn describe(kind: u8) -> String {
    match kind {
        b'x' => "PAX extended header ('x')".to_owned(),
        b'g' => "PAX global header ('g')".to_owned(),
        b'L' => "GNU long name ('L')".to_owned(),
        b'K' => "GNU long link name ('K')".to_owned(),
        k if k.is_ascii_graphic() => format!("extension header of type '{}'", k as char),
        k => format!("extension header of type {k:#04x}"),
    }
}

/// Where the guard is in the archive.
#[derive(Debug, Clone, Copy)]
enum State {
    /// Collecting a header block.
    Header,
    /// Collecting a GNU sparse extension block; `data` bytes of the
    /// entry follow the last one.
    SparseExt { data: u64 },
    /// Inside an entry: `content` bytes of data, then `padding`.
    Data {
        content: u64,
        padding: u64,
        metadata: bool,
    },
    /// After the end-of-archive marker, past a block that is no header:
    /// whatever follows is not read as a tar any more.
    Passthrough,
}

/// A `Read` wrapper that refuses tar archives declaring oversized
/// extension headers (see the [module documentation](self)).
pub struct HeaderGuard<R> {
    inner: R,
    limits: HeaderLimits,
    counter: HeaderCounter,
    state: State,
    block: [u8; BLOCK],
    filled: usize,
    /// Bytes passed so far (the archive offset).
    offset: u64,
    /// An end-of-archive (all-zero) block was seen.
    ended: bool,
    /// The size a PAX `size` record sets for the next entry, as the `tar`
    /// crate applies it.
    pending_size: Option<u64>,
    /// Reading the records of a PAX extended header.
    pax: Option<PaxSizeScan>,
    metadata_total: u64,
}

impl<R: Read> HeaderGuard<R> {
    /// Guards `inner` with the default limits.
    pub fn new(inner: R) -> Self {
        Self::with_limits(inner, HeaderLimits::default())
    }

    /// Guards `inner` with `limits`.
    pub fn with_limits(inner: R, limits: HeaderLimits) -> Self {
        Self {
            inner,
            limits,
            counter: HeaderCounter::default(),
            state: State::Header,
            block: [0; BLOCK],
            filled: 0,
            offset: 0,
            ended: false,
            pending_size: None,
            pax: None,
            metadata_total: 0,
        }
    }

    /// A handle on the guard's counts.
    pub fn counter(&self) -> HeaderCounter {
        self.counter.clone()
    }

    /// The wrapped reader.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The wrapped reader, dropping the guard.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn invalid(&self, at: u64, problem: &str) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the archive's header block at offset {at}: {problem}"),
        )
    }

    /// A whole block was collected.
    fn block_done(&mut self) -> io::Result<()> {
        let at = self.offset - BLOCK as u64;
        self.counter.add_header_bytes(BLOCK as u64);
        match self.state {
            State::SparseExt { data } => {
                // `GnuExtSparseHeader::isextended`: another block follows.
                if self.block[504] != 1 {
                    self.enter_data(data, false);
                }
                Ok(())
            }
            _ => self.header_done(at),
        }
    }

    fn header_done(&mut self, at: u64) -> io::Result<()> {
        if self.block.iter().all(|&b| b == 0) {
            // End of archive (the tar crate stops here unless it ignores
            // zeros; then the next block is a header again).
            self.ended = true;
            return Ok(());
        }
        let header = match parse_header(&self.block) {
            Ok(h) => h,
            // After the end marker this is trailing data nobody reads as a
            // tar; before it, the tar crate would refuse the block too.
            Err(_) if self.ended => {
                self.state = State::Passthrough;
                return Ok(());
            }
            Err(problem) => return Err(self.invalid(at, problem)),
        };
        self.counter.0.entries.fetch_add(1, Ordering::Relaxed);
        let kind = header.kind;
        // What `tar::Archive` does (0.4.46, `next_entry_raw`/`next_entry`):
        // a PAX `size` overrides the size of the next entry that is not
        // itself an extension header; recognised (ustar/GNU) `L`, `K`, `x`
        // entries are read into memory and describe the next entry, which
        // consumes the PAX records.
        let extension_type = matches!(kind, b'L' | b'K' | b'x' | b'g');
        let size = match (extension_type, self.pending_size) {
            (false, Some(pax)) => pax,
            _ => header.size,
        };
        let internal = header.recognized && matches!(kind, b'L' | b'K' | b'x');
        if !internal {
            self.pending_size = None;
        }
        let metadata = !matches!(kind, 0 | b'0'..=b'7' | b'S');
        if metadata {
            self.charge(kind, size, at)?;
        }
        if size.checked_add(BLOCK as u64 - 1).is_none() {
            return Err(self.invalid(at, "the entry's size overflows"));
        }
        if internal && kind == b'x' {
            self.pending_size = None;
            self.pax = Some(PaxSizeScan::default());
        }
        // `GnuHeader::isextended`: the sparse map goes on in extension blocks.
        if !internal && kind == b'S' && header.gnu && self.block[482] == 1 {
            self.state = State::SparseExt { data: size };
        } else {
            self.enter_data(size, metadata);
        }
        Ok(())
    }

    /// Checks an extension entry's declared size against both limits.
    fn charge(&mut self, kind: u8, size: u64, at: u64) -> io::Result<()> {
        let refuse = |kind_of: LimitKind, declared: u64, limit: u64| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                HeaderLimitExceeded {
                    kind: kind_of,
                    entry_type: kind,
                    declared,
                    limit,
                    offset: at,
                },
            )
        };
        if size > self.limits.max_header {
            return Err(refuse(LimitKind::Header, size, self.limits.max_header));
        }
        self.metadata_total = self.metadata_total.saturating_add(size);
        self.counter
            .0
            .metadata_bytes
            .store(self.metadata_total, Ordering::Relaxed);
        if self.metadata_total > self.limits.max_total {
            return Err(refuse(
                LimitKind::Total,
                self.metadata_total,
                self.limits.max_total,
            ));
        }
        Ok(())
    }

    /// Starts an entry's data: `size` bytes, then padding to the block.
    fn enter_data(&mut self, size: u64, metadata: bool) {
        let padding = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        self.state = State::Data {
            content: size,
            padding,
            metadata,
        };
        if size == 0 {
            self.entry_done();
        }
    }

    fn entry_done(&mut self) {
        if let Some(scan) = self.pax.take() {
            self.pending_size = scan.finish();
        }
        self.state = State::Header;
    }
}

impl<R: Read> Read for HeaderGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self.state {
            State::Passthrough => self.inner.read(buf),
            State::Header | State::SparseExt { .. } => {
                // Never past the block: its end is where the decision falls.
                let want = buf.len().min(BLOCK - self.filled);
                let n = self.inner.read(&mut buf[..want])?;
                self.block[self.filled..self.filled + n].copy_from_slice(&buf[..n]);
                self.filled += n;
                self.offset += n as u64;
                if self.filled == BLOCK {
                    self.filled = 0;
                    self.block_done()?;
                }
                Ok(n)
            }
            State::Data {
                content,
                padding,
                metadata,
            } => {
                let left = content + padding;
                let want = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
                let n = self.inner.read(&mut buf[..want])?;
                self.offset += n as u64;
                let in_content = (n as u64).min(content);
                if let Some(scan) = &mut self.pax {
                    scan.feed(&buf[..in_content as usize]);
                }
                let not_content = if metadata {
                    n as u64
                } else {
                    n as u64 - in_content
                };
                self.counter.add_header_bytes(not_content);
                let content = content - in_content;
                let padding = padding - (n as u64 - in_content);
                self.state = State::Data {
                    content,
                    padding,
                    metadata,
                };
                if content == 0 && padding == 0 {
                    self.entry_done();
                }
                Ok(n)
            }
        }
    }
}

/// What the guard needs of a header block.
struct Header {
    kind: u8,
    size: u64,
    /// ustar or GNU magic: the tar crate handles `L`, `K`, `x` only then.
    recognized: bool,
    gnu: bool,
}

/// A header block read as `tar::Archive` reads it, or why it would refuse it.
fn parse_header(b: &[u8; BLOCK]) -> Result<Header, &'static str> {
    let computed = b[..148]
        .iter()
        .chain(&b[156..])
        .fold(8 * 32u32, |a, &x| a + u32::from(x));
    // The tar crate compares the octal field truncated to 32 bits.
    let stored = octal(&b[148..156]).map(|v| v as u32);
    if stored != Some(computed) {
        return Err("not a tar header (checksum mismatch)");
    }
    let size = numeric(&b[124..136]).ok_or("the entry's size is not a number")?;
    let (magic, version) = (&b[257..263], &b[263..265]);
    let gnu = magic == b"ustar " && version == b" \0";
    let ustar = magic == b"ustar\0" && version == b"00";
    Ok(Header {
        kind: b[156],
        size,
        recognized: gnu || ustar,
        gnu,
    })
}

/// A numeric field: GNU base-256 when the high bit is set (the tar crate
/// reads only the last 8 bytes), else octal.
fn numeric(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 == 0 {
        return octal(field);
    }
    let skip = if field.len() == 8 { 1 } else { field.len() - 8 };
    let first = if field.len() == 8 {
        u64::from(field[0] ^ 0x80)
    } else {
        0
    };
    Some(
        field[skip..]
            .iter()
            .fold(first, |acc, &b| (acc << 8) | u64::from(b)),
    )
}

/// An octal field as the tar crate reads it: up to the first NUL, UTF-8,
/// trimmed.
fn octal(field: &[u8]) -> Option<u64> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    let text = std::str::from_utf8(&field[..end]).ok()?;
    u64::from_str_radix(text.trim(), 8).ok()
}

/// Finds, while a PAX extended header's data streams past, the `size` the
/// tar crate takes from it (`pax_extensions_value(data, "size")`): records
/// are the lines between `\n`; an empty line ends them; the first malformed
/// line (no space, a length that is not a number or not the line's length
/// plus one, no `=`) means no size; the first `size` record decides, by
/// whether its value parses as a `u64`.
#[derive(Debug, Default)]
struct PaxSizeScan {
    /// `Some(result)` once the records decided.
    decided: Option<Option<u64>>,
    line: PaxLine,
}

#[derive(Debug, Default)]
struct PaxLine {
    len: u64,
    phase: PaxPhase,
    length: Decimal,
    key_len: u64,
    key_is_size: bool,
    value: Decimal,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum PaxPhase {
    /// Before the first space: the record's length.
    #[default]
    Length,
    /// Before the first `=`: the key.
    Key,
    /// The value.
    Value,
}

impl PaxSizeScan {
    fn feed(&mut self, data: &[u8]) {
        for &b in data {
            if self.decided.is_some() {
                return;
            }
            if b == b'\n' {
                self.end_line();
                continue;
            }
            let line = &mut self.line;
            line.len += 1;
            match line.phase {
                PaxPhase::Length if b == b' ' => {
                    line.phase = PaxPhase::Key;
                    line.key_is_size = true;
                }
                PaxPhase::Length => line.length.push(b),
                PaxPhase::Key if b == b'=' => {
                    line.key_is_size &= line.key_len == 4;
                    line.phase = PaxPhase::Value;
                }
                PaxPhase::Key => {
                    let at = line.key_len as usize;
                    line.key_is_size &= b"size".get(at) == Some(&b);
                    line.key_len += 1;
                }
                PaxPhase::Value if line.key_is_size => line.value.push(b),
                PaxPhase::Value => {}
            }
        }
    }

    fn end_line(&mut self) {
        let line = std::mem::take(&mut self.line);
        let well_formed = line.phase == PaxPhase::Value && line.length.get() == Some(line.len + 1);
        if line.len == 0 || !well_formed {
            self.decided = Some(None);
        } else if line.key_is_size {
            self.decided = Some(line.value.get());
        }
    }

    /// The size, once every byte of the data was fed.
    fn finish(mut self) -> Option<u64> {
        if self.decided.is_none() {
            // The text after the last newline is a line too (empty: the end).
            self.end_line();
        }
        self.decided.flatten()
    }
}

/// A decimal read as Rust's `str::parse::<u64>` reads it: an optional `+`,
/// then one or more ASCII digits, without overflow.
#[derive(Debug, Default)]
struct Decimal {
    value: u64,
    bytes: u64,
    digits: u64,
    bad: bool,
}

impl Decimal {
    fn push(&mut self, b: u8) {
        let first = self.bytes == 0;
        self.bytes += 1;
        if self.bad || (first && b == b'+') {
            return;
        }
        let next = b
            .is_ascii_digit()
            .then(|| self.value.checked_mul(10)?.checked_add(u64::from(b - b'0')))
            .flatten();
        match next {
            Some(v) => {
                self.value = v;
                self.digits += 1;
            }
            None => self.bad = true,
        }
    }

    fn get(&self) -> Option<u64> {
        (!self.bad && self.digits > 0).then_some(self.value)
    }
}

#[cfg(test)]
mod tests;
