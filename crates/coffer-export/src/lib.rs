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

mod digest;
mod manifest;
mod protection;
mod reader;
mod writer;

use std::io;

pub use coffer_archive::{AgeIdentity, AgeRecipients, tar_guard};
pub use digest::{DigestWriter, Digests};
pub use manifest::{BackupInfo, ComponentHeader, Manifest, ManifestComponent};
pub use protection::{Protection, Secret};
#[doc(hidden)]
pub use reader::unpack_tar;
pub use reader::{Limits, Unpacked, unpack};
pub use writer::ExportWriter;

use digest::HashingWriter;
use manifest::{component_path, safe_component_path};

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
    /// Its components declare more bytes than the reader may unpack
    /// ([`Limits::max_bytes`]).
    #[error("the export is refused: its components declare more than the {allowed} bytes allowed")]
    TooLarge {
        /// The limit.
        allowed: u64,
    },
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
