//! `s3`: every object of a bucket (or of a prefix), with its content type
//! and user metadata, as one tar stream.
//!
//! Object keys are not paths (`a` and `a/b` can both exist, `//` is a
//! valid part of a key), so each object is a tar entry named
//! `objects/<n>` whose PAX extended header carries the key and metadata
//! (`COFFER.s3.key`, `COFFER.s3.content-type`, `COFFER.s3.meta.<name>`,
//! `COFFER.s3.etag`). Without bucket versioning a bucket has no point in
//! time: the objects listed at the start are copied, then listed again, and
//! an object that changed or disappeared meanwhile fails the component (or
//! is reported, with `on_change = "warn"`).
//!
//! Requests go through [`coffer_targets::S3Client`], the S3 target's own
//! client: signing, retries, bounded reads and key rules are the same. A
//! key that URL normalisation would turn into another one (`.`/`..`
//! segments, a backslash, a leading `/`) is refused both ways: `../x` in a
//! restored tar would otherwise land in another bucket.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::time::Duration;

use coffer_model::component::{OnChange, S3Spec};
use coffer_model::s3::check_object_key;
use coffer_targets::pipe::{PipeWriter, pipe};
use coffer_targets::{
    ObjectMeta, S3Client, S3Object, S3Settings, S3Timeouts, StorageError, StorageErrorKind,
};

use crate::error::{ComponentError, Ctx};
use crate::secret::resolve;
use crate::sink::Sink;
use crate::{RestoreContext, RestoreReport};

/// Objects larger than this are uploaded in parts of this size.
const PART_SIZE: usize = 16 << 20;
/// The context of errors reading the restore stream.
const STREAM_READ: &str = "reading the S3 backup stream";
/// PAX record names.
const PAX_KEY: &str = "COFFER.s3.key";
const PAX_CONTENT_TYPE: &str = "COFFER.s3.content-type";
const PAX_ETAG: &str = "COFFER.s3.etag";
const PAX_META: &str = "COFFER.s3.meta.";

/// The spec's bucket through the shared S3 client (no client prefix: the
/// component's prefix is a plain key prefix, `img` matches `img1/x`).
fn open_client(c: &Ctx, spec: &S3Spec) -> Result<S3Client, ComponentError> {
    let mut settings = S3Settings::new(
        &spec.endpoint,
        &spec.region,
        &spec.bucket,
        &resolve(c, &spec.access_key)?,
        &resolve(c, &spec.secret_key)?,
    );
    settings.path_style = spec.path_style;
    settings.multipart_threshold = PART_SIZE;
    settings.part_size = PART_SIZE;
    // Whole objects stream through one GET: allow them time.
    settings.timeouts = S3Timeouts {
        connect: Duration::from_secs(15),
        response: Duration::from_secs(120),
        body: Duration::from_secs(600),
    };
    S3Client::new(&settings).map_err(|e| c.invalid(e.to_string()))
}

/// A storage error as the component's: a refused key is the input's fault.
fn s3_error(c: &Ctx, e: StorageError) -> ComponentError {
    match e.kind {
        StorageErrorKind::InvalidKey => c.invalid(e.to_string()),
        _ => c.tool(e.to_string()),
    }
}

pub(crate) fn backup<T>(
    c: &Ctx,
    spec: &S3Spec,
    name: &str,
    _staging_dir: &std::path::Path,
    sink: impl Sink<Out = T>,
) -> Result<T, ComponentError> {
    let client = open_client(c, spec)?;
    let listed = client.list(&spec.prefix).map_err(|e| s3_error(c, e))?;
    // Such a key cannot be read faithfully (its URL names another object),
    // nor restored: say so now rather than store something else.
    let unaddressable: Vec<&str> = listed
        .iter()
        .filter(|o| check_object_key(&o.key).is_err())
        .map(|o| o.key.as_str())
        .collect();
    if !unaddressable.is_empty() {
        return Err(c.invalid(format!(
            "{} objects have keys with '.' or '..' segments, a backslash or a leading '/', \
             which cannot be addressed through S3 URLs: {:?}",
            unaddressable.len(),
            &unaddressable[..unaddressable.len().min(10)]
        )));
    }
    let (writer, reader) = pipe();
    let (result, produced) = std::thread::scope(|s| {
        let producer =
            s.spawn(|| write_tar(c, &client, &spec.prefix, &listed, spec.on_change, writer));
        let result = sink.stream(Box::new(reader), name);
        let produced = producer
            .join()
            .unwrap_or_else(|_| Err(c.tool("the S3 reader thread panicked")));
        (result, produced)
    });
    match (result, produced) {
        (Ok(out), Ok(warnings)) => {
            for w in warnings {
                log::warn!("component {:?}: {w}", c.0);
            }
            Ok(out)
        }
        // The engine saw the producer's failure as a read error (and
        // recorded nothing): the producer's own error names the object.
        (Err(coffer_engine::EngineError::Incomplete { .. }) | Ok(_), Err(e)) => Err(e),
        // Anything else (a lock, the storage) stopped the engine first; the
        // producer only saw its reader go away.
        (Err(e), _) => Err(c.engine(e)),
    }
}

/// Writes the tar stream of `listed` into `out`, then re-lists the bucket to
/// find objects that changed meanwhile. Returns warnings (with `warn`).
fn write_tar(
    c: &Ctx,
    client: &S3Client,
    prefix: &str,
    listed: &[S3Object],
    on_change: OnChange,
    out: PipeWriter,
) -> Result<Vec<String>, ComponentError> {
    let mut tar = tar::Builder::new(out);
    let mut changed = Vec::new();
    let written: Result<(), ComponentError> = (|| {
        for (i, obj) in listed.iter().enumerate() {
            // The body yields exactly what this GET declares (the listed
            // size without a Content-Length), or fails.
            let (head, body) = client
                .open(&obj.key, obj.size)
                .map_err(|e| s3_error(c, e))?;
            if head.etag != obj.etag {
                changed.push(format!("{} (changed between listing and copy)", obj.key));
            }
            let rel = obj.key.strip_prefix(prefix).unwrap_or(&obj.key);
            let mut pax: Vec<(String, Vec<u8>)> = vec![
                (PAX_KEY.to_owned(), rel.as_bytes().to_vec()),
                (PAX_ETAG.to_owned(), head.etag.as_bytes().to_vec()),
            ];
            if let Some(ct) = &head.meta.content_type {
                pax.push((PAX_CONTENT_TYPE.to_owned(), ct.as_bytes().to_vec()));
            }
            for (k, v) in &head.meta.user {
                pax.push((format!("{PAX_META}{k}"), v.as_bytes().to_vec()));
            }
            tar.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(|e| c.io("writing the tar stream", e))?;
            let mut header = tar::Header::new_ustar();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(body.len());
            header.set_mode(0o600);
            header.set_mtime(0);
            tar.append_data(&mut header, format!("objects/{i:08}"), body)
                .map_err(|e| c.tool(format!("copying object {:?}: {e}", obj.key)))?;
        }
        // The point-in-time check: every copied object must still be as it was.
        let now: BTreeMap<String, String> = client
            .list(prefix)
            .map_err(|e| s3_error(c, e))?
            .into_iter()
            .map(|o| (o.key, o.etag))
            .collect();
        for obj in listed {
            match now.get(&obj.key) {
                None => changed.push(format!("{} (deleted during the backup)", obj.key)),
                Some(etag) if *etag != obj.etag => {
                    changed.push(format!("{} (modified during the backup)", obj.key))
                }
                Some(_) => {}
            }
        }
        if !changed.is_empty() && on_change == OnChange::Fail {
            return Err(c.tool(format!(
                "{} objects changed while the bucket was copied, so the copy is not a point in \
                 time (retry, enable versioning, or set on_change = \"warn\"): {}",
                changed.len(),
                changed
                    .iter()
                    .take(10)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(())
    })();
    match written {
        Ok(()) => {
            let out = tar
                .into_inner()
                .map_err(|e| c.io("finishing the tar stream", e))?;
            out.finish()
                .map_err(|e| c.io("finishing the tar stream", e))?;
            Ok(changed)
        }
        Err(e) => {
            if let Ok(out) = tar.into_inner() {
                out.fail(io::Error::other(e.to_string()));
            }
            Err(e)
        }
    }
}

pub(crate) fn restore(
    c: &Ctx,
    spec: &S3Spec,
    ctx: &RestoreContext,
) -> Result<RestoreReport, ComponentError> {
    restore_recorded(c, spec, ctx).map(|(report, _)| report)
}

/// An object as the backup stream gave it to the restore.
struct Written {
    size: u64,
    sha256: Vec<u8>,
    meta: ObjectMeta,
}

/// Restores like [`restore`]; also returns what each restored object was.
fn restore_recorded(
    c: &Ctx,
    spec: &S3Spec,
    ctx: &RestoreContext,
) -> Result<(RestoreReport, BTreeMap<String, Written>), ComponentError> {
    let client = open_client(c, spec)?;
    let mut notes = Vec::new();
    if !client.bucket_exists().map_err(|e| s3_error(c, e))? {
        if !ctx.options.create_database {
            return Err(c.invalid(format!(
                "bucket {} does not exist (allow creating it, or create it first)",
                client.location()
            )));
        }
        client.create_bucket().map_err(|e| s3_error(c, e))?;
        notes.push(format!("created bucket {}", client.location()));
    }
    let (writer, reader) = pipe();
    // Set when the stream itself failed: then the feeder's error is the
    // cause, and the upload's only its echo.
    let stream_failed = Cell::new(false);
    let restored: Result<BTreeMap<String, Written>, ComponentError> = std::thread::scope(|s| {
        let feeder = s.spawn(move || {
            let mut writer = writer;
            match ctx.stream_into(c, &mut writer) {
                Ok(()) => writer.finish().map_err(|e| c.io("reading the backup", e)),
                Err(e) => {
                    writer.fail(io::Error::other(e.to_string()));
                    Err(e)
                }
            }
        });
        let watched = Watched {
            inner: reader,
            failed: &stream_failed,
        };
        let uploaded = upload_all(c, &client, &spec.prefix, watched);
        let fed = feeder
            .join()
            .unwrap_or_else(|_| Err(c.tool("the restore reader thread panicked")));
        match (uploaded, fed) {
            (Ok(keys), Ok(())) => Ok(keys),
            (Err(_), Err(e)) if stream_failed.get() => Err(e),
            // The upload failed first; the feeder only saw its reader go away.
            (Err(e), _) => Err(e),
            (Ok(_), Err(e)) => Err(e),
        }
    });
    let restored = restored?;
    notes.push(format!(
        "{} objects restored into {}",
        restored.len(),
        client.location()
    ));
    if ctx.options.clean {
        let mut removed = 0;
        for obj in client.list(&spec.prefix).map_err(|e| s3_error(c, e))? {
            if !restored.contains_key(&obj.key) {
                client.delete(&obj.key).map_err(|e| s3_error(c, e))?;
                removed += 1;
            }
        }
        notes.push(format!("{removed} objects not in the backup deleted"));
    }
    Ok((RestoreReport { notes }, restored))
}

/// A restore drill into `scratch` (a prefix of its own; see
/// [`crate::drill::scratch_spec`]): the backup is restored there, the
/// prefix listed, and every object read back and compared — key, size,
/// SHA-256, content type and metadata — with what the backup stream held.
pub(crate) fn drill(
    c: &Ctx,
    scratch: &S3Spec,
    ctx: &RestoreContext,
) -> Result<String, ComponentError> {
    let client = open_client(c, scratch)?;
    if client.bucket_exists().map_err(|e| s3_error(c, e))?
        && !client
            .list(&scratch.prefix)
            .map_err(|e| s3_error(c, e))?
            .is_empty()
    {
        return Err(c.invalid(format!(
            "the drill's scratch prefix {:?} in {} is not empty",
            scratch.prefix,
            client.location()
        )));
    }
    let (_, written) = restore_recorded(c, scratch, ctx)?;
    let listed: BTreeMap<String, u64> = client
        .list(&scratch.prefix)
        .map_err(|e| s3_error(c, e))?
        .into_iter()
        .map(|o| (o.key, o.size))
        .collect();
    let shown = |keys: Vec<&String>| {
        keys.iter()
            .take(10)
            .map(|k| format!("{k:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let missing: Vec<&String> = written
        .keys()
        .filter(|k| !listed.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        return Err(c.verification(format!(
            "{} restored objects are not listed: {}",
            missing.len(),
            shown(missing)
        )));
    }
    let extra: Vec<&String> = listed
        .keys()
        .filter(|k| !written.contains_key(*k))
        .collect();
    if !extra.is_empty() {
        return Err(c.verification(format!(
            "{} listed objects were not in the backup: {}",
            extra.len(),
            shown(extra)
        )));
    }
    let mut bytes = 0u64;
    for (key, w) in &written {
        let (head, body) = client.open(key, w.size).map_err(|e| s3_error(c, e))?;
        let mut hashing = Hashing::new(body);
        io::copy(&mut hashing, &mut io::sink())
            .map_err(|e| c.verification(format!("reading {key:?} back: {e}")))?;
        let (size, sha256) = hashing.finish();
        if size != w.size || sha256 != w.sha256 {
            return Err(c.verification(format!(
                "{key:?} reads back as {size} bytes with SHA-256 {}; the backup held {} bytes \
                 with SHA-256 {}",
                hex::encode(&sha256),
                w.size,
                hex::encode(&w.sha256)
            )));
        }
        // Without a content type in the backup, the server picks its own.
        let type_differs =
            w.meta.content_type.is_some() && head.meta.content_type != w.meta.content_type;
        if type_differs || head.meta.user != w.meta.user {
            return Err(c.verification(format!(
                "{key:?} reads back with metadata {:?}; the backup held {:?}",
                head.meta, w.meta
            )));
        }
        bytes += size;
    }
    Ok(format!(
        "{} objects, {bytes} bytes listed and read back: every size, SHA-256 and metadata as \
         the backup held",
        written.len()
    ))
}

/// Removes every object under a drill's scratch prefix.
pub(crate) fn remove_scratch(c: &Ctx, scratch: &S3Spec) -> Result<(), ComponentError> {
    let client = open_client(c, scratch)?;
    if !client.bucket_exists().map_err(|e| s3_error(c, e))? {
        return Ok(());
    }
    for obj in client.list(&scratch.prefix).map_err(|e| s3_error(c, e))? {
        client.delete(&obj.key).map_err(|e| s3_error(c, e))?;
    }
    Ok(())
}

/// A reader that counts and hashes (SHA-256) what passes through it.
struct Hashing<R> {
    inner: R,
    digest: ring::digest::Context,
    len: u64,
}

impl<R> Hashing<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            digest: ring::digest::Context::new(&ring::digest::SHA256),
            len: 0,
        }
    }

    /// Bytes read and their SHA-256.
    fn finish(self) -> (u64, Vec<u8>) {
        (self.len, self.digest.finish().as_ref().to_vec())
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digest.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

/// Notes whether reading its inner stream ever failed.
struct Watched<'a, R> {
    inner: R,
    failed: &'a Cell<bool>,
}

impl<R: Read> Read for Watched<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|_| self.failed.set(true))
    }
}

/// Uploads every object of the tar stream under `prefix`; returns what
/// each key was given.
fn upload_all(
    c: &Ctx,
    client: &S3Client,
    prefix: &str,
    reader: impl Read,
) -> Result<BTreeMap<String, Written>, ComponentError> {
    let bad = |e: io::Error| c.io(STREAM_READ, e);
    let mut archive = tar::Archive::new(reader);
    let mut keys = BTreeMap::new();
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let shown = entry
            .path()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let mut key = None;
        let mut meta = ObjectMeta::default();
        if let Some(exts) = entry.pax_extensions().map_err(bad)? {
            for ext in exts {
                let ext = ext.map_err(bad)?;
                let (Ok(k), Ok(v)) = (ext.key(), ext.value()) else {
                    continue;
                };
                match k {
                    PAX_KEY => key = Some(v.to_owned()),
                    PAX_CONTENT_TYPE => meta.content_type = Some(v.to_owned()),
                    // The source's ETag: informational, S3 computes its own.
                    PAX_ETAG => {}
                    _ => {
                        if let Some(m) = k.strip_prefix(PAX_META) {
                            meta.user.insert(m.to_owned(), v.to_owned());
                        }
                    }
                }
            }
        }
        let Some(rel) = key else {
            return Err(c.invalid(format!(
                "tar entry {shown:?} carries no {PAX_KEY}: not a Coffer S3 backup"
            )));
        };
        let full = format!("{prefix}{rel}");
        check_object_key(&full).map_err(|e| {
            c.invalid(format!(
                "tar entry {shown:?}: {e}; the restore stopped there ({} objects were restored \
                 before it)",
                keys.len()
            ))
        })?;
        let size = entry.size();
        let mut hashing = Hashing::new(&mut entry);
        client
            .upload(&full, &meta, size, &mut hashing)
            .map_err(|e| s3_error(c, e))?;
        let (_, sha256) = hashing.finish();
        keys.insert(full, Written { size, sha256, meta });
        coffer_model::crash::crash_point("restore.s3.uploading");
    }
    Ok(keys)
}
