//! Reading an export as hostile input: decrypt, decompress, unpack under
//! limits, verify against the manifest.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use crate::{
    COMPONENTS_DIR, ExportError, FORMAT, HashingWriter, MANIFEST, MAX_SCRYPT_WORK_FACTOR, Manifest,
    Secret, ZSTD_WINDOW_LOG_MAX, component_path, io_err, safe_component_path, tar_guard,
};

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
            return Err(ExportError::TooLarge {
                allowed: limits.max_bytes,
            });
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
    use std::io::{self, Read};

    use super::{Limits, unpack_tar};
    use crate::ExportError;

    /// A PAX header declaring 8 GiB, then zeros without end — failing once
    /// 64 MiB of zeros were read, so a reader that buffers the declared size
    /// fails the test instead of the machine.
    struct HeaderBomb {
        head: Vec<u8>,
        pos: usize,
        zeros: u64,
    }

    const ZERO_LIMIT: u64 = 64 << 20;

    impl Read for HeaderBomb {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.pos < self.head.len() {
                let n = buf.len().min(self.head.len() - self.pos);
                buf[..n].copy_from_slice(&self.head[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.zeros >= ZERO_LIMIT {
                return Err(io::Error::other("read past the guard"));
            }
            let n = buf.len().min((ZERO_LIMIT - self.zeros) as usize);
            buf[..n].fill(0);
            self.zeros += n as u64;
            Ok(n)
        }
    }

    #[test]
    fn the_export_reader_refuses_a_header_bomb() {
        let mut h = tar::Header::new_gnu();
        let name = b"PaxHeaders/m";
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_mode(0o644);
        h.set_size(8 << 30);
        h.set_cksum();
        let mut src = HeaderBomb {
            head: h.as_bytes().to_vec(),
            pos: 0,
            zeros: 0,
        };
        let dest = tempfile::tempdir().unwrap();
        let e = unpack_tar(&mut src, dest.path(), &Limits::default(), None).unwrap_err();
        assert!(
            matches!(&e, ExportError::Refused(m) if m.contains("8589934592")),
            "{e}"
        );
        assert_eq!(src.zeros, 0);
    }
}
