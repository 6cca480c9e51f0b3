//! Coffer's portable export format, readable without Coffer.
//!
//! An export is one file, `<backup-id>.coffer`:
//!
//! ```text
//! age( zstd( tar ) )          age: a passphrase (scrypt, work factor 2^18) or X25519 recipients
//!
//! tar entries, in this order:
//!   components/<name>/<file>  one regular file per component: a stream as its bytes
//!                             (db.pgdump, app.sqlite), a directory as a GNU tar
//!                             (uploads.tar), a sealed component as its age file
//!   manifest.json             last: backup id, label, times, and per component
//!                             kind, content, file, size and SHA-256
//! ```
//!
//! So `age -d backup.coffer | zstd -d | tar x` opens it with standard tools.
//! The manifest comes last because the checksums are known only once the
//! data has passed; [`unpack`] verifies every file against it before anyone
//! uses what was unpacked.
//!
//! [`unpack`] treats its input as hostile: only the entry names above,
//! regular files only, sizes, entry counts and the expansion ratio capped
//! ([`Limits`]), nothing written outside the destination, and the archive
//! read to its authenticated end, so truncation is detected.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

use age::secrecy::SecretString;
pub use keys::{AgeIdentity, AgeRecipients};

mod keys;
pub mod tar_guard;
use coffer_model::ComponentName;
use serde::{Deserialize, Serialize};

/// The `format` of manifests this version writes and reads.
pub const FORMAT: &str = "coffer-export/1";
/// The manifest's name in the archive.
pub const MANIFEST: &str = "manifest.json";
/// The directory holding component files in the archive.
pub const COMPONENTS_DIR: &str = "components";
/// Passphrase exports use this scrypt work factor (log2 N): the `age` CLI's
/// own default, so any machine that runs `age` opens them (≈ 256 MiB, ≈ 1 s).
pub const SCRYPT_WORK_FACTOR: u8 = 18;
/// The highest scrypt work factor [`unpack`] accepts: what Coffer writes.
/// Each step doubles the memory and time a key derivation costs, so a
/// hostile file asking for more is refused from its header, before any key
/// is derived (2^20 would already cost the server 1 GiB and seconds).
pub const MAX_SCRYPT_WORK_FACTOR: u8 = SCRYPT_WORK_FACTOR;
/// zstd level: fast, with most of the gain.
const ZSTD_LEVEL: i32 = 3;
/// zstd window the reader accepts (2^27 = 128 MiB): bounds its memory.
const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// Why an export cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The passphrase or identity does not open the file.
    #[error("wrong password or identity: this export cannot be decrypted with it")]
    WrongSecret,
    /// Not an age file, or not one of ours.
    #[error("not a Coffer export: {0}")]
    NotAnExport(String),
    /// Damaged, truncated, or not matching its manifest.
    #[error("the export is damaged or truncated: {0}")]
    Corrupt(String),
    /// Breaks a rule or a limit: path traversal, links, devices, sizes,
    /// entry counts, expansion ratio.
    #[error("the export is refused: {0}")]
    Refused(String),
    /// A local file could not be written or read.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The cause.
        source: io::Error,
    },
    /// The caller asked for something invalid.
    #[error("{0}")]
    Invalid(String),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> ExportError {
    let context = context.into();
    move |source| ExportError::Io { context, source }
}

// ---------------------------------------------------------------------- manifest

/// What an export holds: written last into the archive, checked by [`unpack`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The backup exported.
    pub backup_id: String,
    /// Its label.
    pub label: String,
    /// When the backup was taken (RFC 3339).
    pub backup_created_at: String,
    /// When the export was written (RFC 3339).
    pub exported_at: String,
    /// The Coffer version that wrote it.
    pub coffer_version: String,
    /// An export of the sensitive components only (their data still sealed).
    #[serde(default)]
    pub sensitive: bool,
    /// The components, in archive order.
    pub components: Vec<ManifestComponent>,
}

/// One component of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestComponent {
    /// Component name.
    pub name: String,
    /// Its kind as configured (`postgres`, `files`, …).
    pub kind: String,
    /// `tree` (the file is a tar of a directory) or `stream`.
    pub content: String,
    /// Its path in the archive: `components/<name>/<file>`.
    pub file: String,
    /// Bytes.
    pub size: u64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// The file is an age file sealed to the component's own recipients.
    #[serde(default)]
    pub sealed: bool,
}

impl ManifestComponent {
    /// The file's own name (`db.pgdump`), without `components/<name>/`.
    pub fn file_name(&self) -> &str {
        self.file.rsplit('/').next().unwrap_or(&self.file)
    }

    /// The file is a tar of a directory tree (else a stream).
    pub fn is_tree(&self) -> bool {
        self.content == "tree"
    }
}

/// The backup an export is written from.
#[derive(Debug, Clone)]
pub struct BackupInfo {
    /// Backup id.
    pub backup_id: String,
    /// Label.
    pub label: String,
    /// When it was taken (RFC 3339).
    pub created_at: String,
    /// Now (RFC 3339).
    pub exported_at: String,
    /// Only sensitive components.
    pub sensitive: bool,
}

/// A component about to be written: everything of its manifest entry but
/// the checksum.
#[derive(Debug, Clone)]
pub struct ComponentHeader {
    /// Component name.
    pub name: String,
    /// Its kind as configured.
    pub kind: String,
    /// `tree` or `stream`.
    pub content: String,
    /// The file name inside `components/<name>/`.
    pub file_name: String,
    /// Sealed (an age file).
    pub sealed: bool,
}

/// The archive path of a component file, after checking both parts.
fn component_path(name: &str, file_name: &str) -> Result<String, String> {
    ComponentName::new(name).map_err(|e| e.to_string())?;
    let mut parts = Path::new(file_name).components();
    match (parts.next(), parts.next()) {
        (Some(Component::Normal(_)), None) if !file_name.contains('\\') => {
            Ok(format!("{COMPONENTS_DIR}/{name}/{file_name}"))
        }
        _ => Err(format!("{file_name:?} is not a plain file name")),
    }
}

// ---------------------------------------------------------------------- secrets

/// How an export is encrypted.
pub enum Protection {
    /// A passphrase (scrypt, [`SCRYPT_WORK_FACTOR`]).
    Passphrase(SecretString),
    /// age X25519 public keys: whoever holds one of the identities opens it.
    Recipients(Vec<age::x25519::Recipient>),
}

impl Protection {
    /// A passphrase (scrypt at [`SCRYPT_WORK_FACTOR`]).
    pub fn passphrase(p: &str) -> Self {
        Self::Passphrase(SecretString::from(p.to_owned()))
    }

    /// Parses `age1…` recipients.
    pub fn recipients<S: AsRef<str>>(keys: &[S]) -> Result<Self, ExportError> {
        AgeRecipients::parse(keys)
            .map(|r| Self::Recipients(r.into_keys()))
            .map_err(ExportError::Invalid)
    }

    fn encryptor(&self) -> Result<age::Encryptor, ExportError> {
        let result = match self {
            Self::Passphrase(p) => {
                let mut r = age::scrypt::Recipient::new(p.clone());
                r.set_work_factor(SCRYPT_WORK_FACTOR);
                age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient))
            }
            Self::Recipients(rs) => {
                age::Encryptor::with_recipients(rs.iter().map(|r| r as &dyn age::Recipient))
            }
        };
        result.map_err(|e| ExportError::Invalid(format!("age: {e}")))
    }
}

/// What opens an export.
pub enum Secret {
    /// The passphrase it was written with.
    Passphrase(SecretString),
    /// An X25519 identity matching one of its recipients.
    Identity(age::x25519::Identity),
}

impl Secret {
    /// A passphrase.
    pub fn passphrase(p: &str) -> Self {
        Self::Passphrase(SecretString::from(p.to_owned()))
    }

    /// An identity: the key or an `age-keygen` file's text.
    pub fn identity(text: &str) -> Result<Self, ExportError> {
        text.parse::<AgeIdentity>()
            .map(|id| Self::Identity(id.as_age().clone()))
            .map_err(ExportError::Invalid)
    }
}

// ---------------------------------------------------------------------- digests

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
struct HashingWriter<W> {
    inner: W,
    sha256: ring::digest::Context,
    len: u64,
}

impl<W> HashingWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            sha256: ring::digest::Context::new(&ring::digest::SHA256),
            len: 0,
        }
    }

    /// The writer, the length and the SHA-256 (hex) of what passed.
    fn finish(self) -> (W, u64, String) {
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

// ---------------------------------------------------------------------- writing

type Layers<W> = zstd::stream::write::Encoder<'static, age::stream::StreamWriter<W>>;

/// Writes an export: components one by one, then [`ExportWriter::finish`].
pub struct ExportWriter<W: Write> {
    tar: tar::Builder<Layers<W>>,
    components: Vec<ManifestComponent>,
}

impl<W: Write> ExportWriter<W> {
    /// Starts an export into `out`.
    pub fn new(out: W, protection: &Protection) -> Result<Self, ExportError> {
        let sealed = protection
            .encryptor()?
            .wrap_output(out)
            .map_err(io_err("writing the export header"))?;
        let zstd = zstd::stream::write::Encoder::new(sealed, ZSTD_LEVEL)
            .map_err(io_err("starting compression"))?;
        Ok(Self {
            tar: tar::Builder::new(zstd),
            components: Vec::new(),
        })
    }

    /// Adds one component of exactly `size` bytes, which `fill` writes.
    /// Writing fewer or more fails the export (a tar entry's size comes first).
    pub fn add_component(
        &mut self,
        c: ComponentHeader,
        size: u64,
        fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), ExportError> {
        let path = component_path(&c.name, &c.file_name).map_err(ExportError::Invalid)?;
        if self.components.iter().any(|m| m.name == c.name) {
            return Err(ExportError::Invalid(format!(
                "component {:?} added twice",
                c.name
            )));
        }
        let mut header = tar::Header::new_gnu();
        if path.len() > 100 {
            // The ustar name field holds 100 bytes; a PAX record holds any path.
            self.tar
                .append_pax_extensions([("path", path.as_bytes())])
                .map_err(io_err("writing the export"))?;
            let cut = (0..=100)
                .rev()
                .find(|&i| path.is_char_boundary(i))
                .unwrap_or(0);
            header
                .set_path(path[..cut].rsplit_once('/').map_or("long", |(a, _)| a))
                .map_err(io_err("writing the export"))?;
        } else {
            header
                .set_path(&path)
                .map_err(io_err("writing the export"))?;
        }
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(size);
        header.set_mode(0o600);
        header.set_mtime(0);
        header.set_cksum();
        let out = self.tar.get_mut();
        out.write_all(header.as_bytes())
            .map_err(io_err("writing the export"))?;
        let mut hashing = HashingWriter::new(&mut *out);
        fill(&mut hashing).map_err(io_err(format!("writing component {}", c.name)))?;
        let (_, written, sha256) = hashing.finish();
        if written != size {
            return Err(ExportError::Invalid(format!(
                "component {} gave {written} bytes instead of the announced {size}",
                c.name
            )));
        }
        let pad = (512 - size % 512) % 512;
        out.write_all(&[0u8; 512][..pad as usize])
            .map_err(io_err("writing the export"))?;
        self.components.push(ManifestComponent {
            name: c.name,
            kind: c.kind,
            content: c.content,
            file: path,
            size,
            sha256,
            sealed: c.sealed,
        });
        Ok(())
    }

    /// Writes the manifest and closes every layer; returns `out` and the manifest.
    pub fn finish(mut self, info: BackupInfo) -> Result<(W, Manifest), ExportError> {
        let manifest = Manifest {
            format: FORMAT.to_owned(),
            backup_id: info.backup_id,
            label: info.label,
            backup_created_at: info.created_at,
            exported_at: info.exported_at,
            coffer_version: env!("CARGO_PKG_VERSION").to_owned(),
            sensitive: info.sensitive,
            components: self.components,
        };
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| ExportError::Invalid(format!("manifest: {e}")))?;
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(json.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(0);
        self.tar
            .append_data(&mut header, MANIFEST, json.as_slice())
            .map_err(io_err("writing the manifest"))?;
        let zstd = self
            .tar
            .into_inner()
            .map_err(io_err("closing the archive"))?;
        let sealed = zstd.finish().map_err(io_err("closing the compression"))?;
        let out = sealed.finish().map_err(io_err("closing the encryption"))?;
        Ok((out, manifest))
    }
}

// ---------------------------------------------------------------------- reading

/// What [`unpack`] accepts at most.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Bytes of all component files together.
    pub max_bytes: u64,
    /// Entries in the archive.
    pub max_entries: u64,
    /// Decompressed ÷ compressed bytes, checked once more than
    /// [`Limits::ratio_floor`] bytes were decompressed.
    pub max_ratio: u64,
    /// Below this many decompressed bytes the ratio is not checked.
    pub ratio_floor: u64,
    /// Size of `manifest.json`.
    pub max_manifest_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 1 << 40,
            max_entries: 10_000,
            max_ratio: 1_000,
            ratio_floor: 64 << 20,
            max_manifest_bytes: 4 << 20,
        }
    }
}

/// A verified export, unpacked: each component's file on disk.
#[derive(Debug)]
pub struct Unpacked {
    /// The manifest, every file checked against it.
    pub manifest: Manifest,
    /// Component name → its file below the destination.
    pub files: BTreeMap<String, PathBuf>,
}

/// Counts bytes read through it (shared with the ratio check).
struct Counting<R> {
    inner: R,
    count: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// Decrypts, decompresses and unpacks an export into `dest` (an empty
/// directory the caller owns), then checks every file against the manifest.
/// On any error `dest` may hold partial files: the caller removes it.
pub fn unpack(
    input: impl Read,
    secret: &Secret,
    dest: &Path,
    limits: &Limits,
) -> Result<Unpacked, ExportError> {
    let compressed = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let counted = Counting {
        inner: input,
        count: std::rc::Rc::clone(&compressed),
    };
    // The work factor is read from the header first: age itself would
    // benchmark scrypt before looking at it.
    let (peeked, counted) = peek_scrypt_work_factor(counted)?;
    let input = BufReader::new(io::Cursor::new(peeked).chain(counted));
    let decryptor = age::Decryptor::new_buffered(input).map_err(|e| match e {
        age::DecryptError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            ExportError::NotAnExport("the file is empty or ends inside its header".into())
        }
        other => ExportError::NotAnExport(format!("not an age file ({other})")),
    })?;
    let plain = match secret {
        Secret::Passphrase(p) => {
            if !decryptor.is_scrypt() {
                return Err(ExportError::WrongSecret);
            }
            let mut id = age::scrypt::Identity::new(p.clone());
            id.set_max_work_factor(MAX_SCRYPT_WORK_FACTOR);
            decryptor.decrypt(std::iter::once(&id as &dyn age::Identity))
        }
        Secret::Identity(id) => decryptor.decrypt(std::iter::once(id as &dyn age::Identity)),
    }
    .map_err(|e| match e {
        age::DecryptError::ExcessiveWork { required, .. } => ExportError::Refused(format!(
            "its passphrase needs scrypt work factor {required}; at most \
             {MAX_SCRYPT_WORK_FACTOR} is accepted"
        )),
        age::DecryptError::NoMatchingKeys | age::DecryptError::DecryptionFailed => {
            ExportError::WrongSecret
        }
        other => ExportError::Corrupt(other.to_string()),
    })?;
    let mut zstd = zstd::stream::read::Decoder::new(plain)
        .map_err(|e| ExportError::Corrupt(format!("compression: {e}")))?;
    zstd.window_log_max(ZSTD_WINDOW_LOG_MAX)
        .map_err(|e| ExportError::Corrupt(format!("compression: {e}")))?;
    unpack_tar(zstd, dest, limits, Some(&compressed))
}

/// Reads the start of an age header (its version line and first stanza) and
/// refuses a scrypt stanza above [`MAX_SCRYPT_WORK_FACTOR`]. Returns the
/// bytes read, to be put back in front of `input`. Anything unexpected is
/// left for age to judge.
fn peek_scrypt_work_factor<R: Read>(mut input: R) -> Result<(Vec<u8>, R), ExportError> {
    // `age-encryption.org/v1\n-> scrypt <22 base64> <log_n>\n` is ~70 bytes.
    const PEEK: usize = 128;
    let mut peeked = Vec::with_capacity(PEEK);
    let mut buf = [0u8; PEEK];
    while peeked.len() < PEEK && peeked.iter().filter(|&&b| b == b'\n').count() < 2 {
        match input.read(&mut buf[..PEEK - peeked.len()]) {
            Ok(0) => break,
            Ok(n) => peeked.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ExportError::Corrupt(e.to_string())),
        }
    }
    let text = String::from_utf8_lossy(&peeked);
    let factor = text
        .strip_prefix("age-encryption.org/v1\n-> scrypt ")
        .and_then(|rest| rest.split('\n').next())
        .and_then(|args| args.split(' ').nth(1))
        .and_then(|n| n.parse::<u8>().ok());
    match factor {
        Some(n) if n > MAX_SCRYPT_WORK_FACTOR => Err(ExportError::Refused(format!(
            "its passphrase needs scrypt work factor {n} (2^{n}); at most \
             {MAX_SCRYPT_WORK_FACTOR} is accepted"
        ))),
        _ => Ok((peeked, input)),
    }
}

/// The backup id and label go into hook environments and file names on the
/// server: they must be Coffer's own kinds of value, the label the id's.
fn check_manifest_names(m: &Manifest) -> Result<(), ExportError> {
    let bad = |m: String| ExportError::Corrupt(format!("manifest: {m}"));
    let id =
        coffer_model::BackupId::parse(&m.backup_id).map_err(|e| bad(format!("backup_id: {e}")))?;
    let label = coffer_model::Label::new(&m.label).map_err(|e| bad(format!("label: {e}")))?;
    if id.label() != label {
        return Err(bad(format!(
            "label {:?} is not the label of backup_id {:?}",
            m.label, m.backup_id
        )));
    }
    Ok(())
}

/// The tar layer of [`unpack`]: also what the fuzz tests drive directly
/// (random bytes rarely get past age's authentication).
#[doc(hidden)]
pub fn unpack_tar(
    plain: impl Read,
    dest: &Path,
    limits: &Limits,
    compressed: Option<&std::rc::Rc<std::cell::Cell<u64>>>,
) -> Result<Unpacked, ExportError> {
    let decompressed = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let counted = Counting {
        inner: plain,
        count: std::rc::Rc::clone(&decompressed),
    };
    let ratio_ok = || -> Result<(), ExportError> {
        let (Some(c), d) = (compressed, decompressed.get()) else {
            return Ok(());
        };
        if d > limits.ratio_floor && d / c.get().max(1) > limits.max_ratio {
            return Err(ExportError::Refused(format!(
                "it expands more than {}× ({} bytes from {})",
                limits.max_ratio,
                d,
                c.get()
            )));
        }
        Ok(())
    };
    // A header bomb (an oversized PAX or long-name header, which the tar
    // crate reads wholly into memory) is refused, not reported as damage.
    let corrupt = |e: io::Error| match tar_guard::limit_exceeded(&e) {
        Some(limit) => ExportError::Refused(limit.to_string()),
        None => ExportError::Corrupt(e.to_string()),
    };
    let mut archive = tar::Archive::new(tar_guard::HeaderGuard::new(counted));
    let mut manifest: Option<Manifest> = None;
    let mut files: BTreeMap<String, (PathBuf, u64, String)> = BTreeMap::new();
    let (mut entries, mut total) = (0u64, 0u64);
    let mut buf = vec![0u8; 256 << 10];
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        entries += 1;
        if entries > limits.max_entries {
            return Err(ExportError::Refused(format!(
                "more than {} entries",
                limits.max_entries
            )));
        }
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let kind = entry.header().entry_type();
        if kind != tar::EntryType::Regular {
            return Err(ExportError::Refused(format!(
                "entry {shown:?} is a {kind:?}; an export holds regular files only"
            )));
        }
        let size = entry.header().size().map_err(corrupt)?;
        if shown == MANIFEST {
            if manifest.is_some() {
                return Err(ExportError::Refused("two manifests".into()));
            }
            if size > limits.max_manifest_bytes {
                return Err(ExportError::Refused(format!(
                    "the manifest declares {size} bytes (at most {})",
                    limits.max_manifest_bytes
                )));
            }
            let mut text = Vec::new();
            (&mut entry)
                .take(limits.max_manifest_bytes)
                .read_to_end(&mut text)
                .map_err(corrupt)?;
            let m: Manifest = serde_json::from_slice(&text)
                .map_err(|e| ExportError::Corrupt(format!("manifest: {e}")))?;
            if m.format != FORMAT {
                return Err(ExportError::NotAnExport(format!(
                    "manifest format {:?}; this Coffer reads {FORMAT}",
                    m.format
                )));
            }
            check_manifest_names(&m)?;
            manifest = Some(m);
            continue;
        }
        let (name, file_name) = safe_component_path(&shown).ok_or_else(|| {
            ExportError::Refused(format!(
                "unexpected entry {shown:?}: only {MANIFEST} and {COMPONENTS_DIR}/<component>/<file> are allowed"
            ))
        })?;
        if files.contains_key(&name) {
            return Err(ExportError::Refused(format!(
                "component {name:?} appears twice"
            )));
        }
        total = total.saturating_add(size);
        if total > limits.max_bytes {
            return Err(ExportError::Refused(format!(
                "its components declare more than the {} bytes allowed",
                limits.max_bytes
            )));
        }
        let dir = dest.join(&name);
        std::fs::create_dir(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let path = dir.join(&file_name);
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err(format!("creating {}", path.display())))?;
        let mut out = HashingWriter::new(io::BufWriter::new(file));
        loop {
            let n = entry.read(&mut buf).map_err(corrupt)?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n])
                .map_err(io_err(format!("writing {}", path.display())))?;
            ratio_ok()?;
        }
        if out.len != size {
            return Err(ExportError::Corrupt(format!(
                "component {name}: {} bytes instead of {size}",
                out.len
            )));
        }
        let (buffered, _, sha) = out.finish();
        let file = buffered.into_inner().map_err(|e| ExportError::Io {
            context: format!("writing {}", path.display()),
            source: e.into_error(),
        })?;
        file.sync_all()
            .map_err(io_err(format!("syncing {}", path.display())))?;
        files.insert(name, (path, size, sha));
    }
    // Read to the very end: the age stream's last chunk is what proves that
    // nothing was cut off after the tar's end marker.
    let mut rest = archive.into_inner();
    loop {
        match rest.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => ratio_ok()?,
            Err(e) => return Err(ExportError::Corrupt(e.to_string())),
        }
    }
    let manifest =
        manifest.ok_or_else(|| ExportError::Corrupt("the manifest is missing".into()))?;
    verify(&manifest, &files)?;
    Ok(Unpacked {
        manifest,
        files: files.into_iter().map(|(k, (p, _, _))| (k, p)).collect(),
    })
}

/// `components/<name>/<file>` with a valid component name and a plain file
/// name, else `None`.
fn safe_component_path(path: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix(COMPONENTS_DIR)?.strip_prefix('/')?;
    let (name, file) = rest.split_once('/')?;
    let canonical = component_path(name, file).ok()?;
    (canonical == path).then(|| (name.to_owned(), file.to_owned()))
}

/// Every manifest entry has its file with the right size and checksum, and
/// there is no file the manifest does not list.
fn verify(
    manifest: &Manifest,
    files: &BTreeMap<String, (PathBuf, u64, String)>,
) -> Result<(), ExportError> {
    for c in &manifest.components {
        let Some((_, size, sha)) = files.get(&c.name) else {
            return Err(ExportError::Corrupt(format!(
                "component {} is in the manifest but not in the archive",
                c.name
            )));
        };
        let expected = component_path(&c.name, c.file.rsplit('/').next().unwrap_or_default())
            .map_err(|e| ExportError::Corrupt(format!("manifest: component {}: {e}", c.name)))?;
        if expected != c.file {
            return Err(ExportError::Corrupt(format!(
                "manifest: component {} names file {:?}",
                c.name, c.file
            )));
        }
        if *size != c.size || !sha.eq_ignore_ascii_case(&c.sha256) {
            return Err(ExportError::Corrupt(format!(
                "component {}: {} bytes with SHA-256 {}, the manifest says {} bytes with {}",
                c.name, size, sha, c.size, c.sha256
            )));
        }
    }
    if let Some(extra) = files
        .keys()
        .find(|n| !manifest.components.iter().any(|c| &c.name == *n))
    {
        return Err(ExportError::Corrupt(format!(
            "component {extra} is in the archive but not in the manifest"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_paths_are_plain() {
        assert_eq!(
            component_path("db", "db.pgdump").unwrap(),
            "components/db/db.pgdump"
        );
        for (n, f) in [
            ("..", "x"),
            ("db", "../x"),
            ("db", "a/b"),
            ("db", ""),
            ("db", "/x"),
            ("db", "."),
        ] {
            assert!(component_path(n, f).is_err(), "{n} {f}");
        }
        assert!(safe_component_path("components/db/db.pgdump").is_some());
        for p in [
            "components/db/../x",
            "/components/db/x",
            "components/db/x/y",
            "components//x",
            "components/db/./x",
            "other/db/x",
            "components/db",
        ] {
            assert!(safe_component_path(p).is_none(), "{p}");
        }
    }
}
