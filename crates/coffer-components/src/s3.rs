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

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};
use std::time::Duration;

use coffer_model::component::{OnChange, S3Spec};
use rusty_s3::actions::{CreateMultipartUpload, ListObjectsV2};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use crate::error::{ComponentError, Ctx};
use crate::pipe::{PipeWriter, pipe};
use crate::secret::resolve;
use crate::sink::Sink;
use crate::{RestoreContext, RestoreReport};

/// How long a signed request URL stays valid.
const SIGNED_FOR: Duration = Duration::from_secs(3600);
/// Objects larger than this are uploaded in parts of this size.
const PART_SIZE: usize = 16 << 20;
/// The context of errors reading the restore stream.
const STREAM_READ: &str = "reading the S3 backup stream";
/// PAX record names.
const PAX_KEY: &str = "COFFER.s3.key";
const PAX_CONTENT_TYPE: &str = "COFFER.s3.content-type";
const PAX_ETAG: &str = "COFFER.s3.etag";
const PAX_META: &str = "COFFER.s3.meta.";

/// One listed object.
#[derive(Debug, Clone)]
struct Listed {
    key: String,
    etag: String,
    size: u64,
}

/// What a GET says about an object besides its bytes.
#[derive(Debug, Default)]
struct Head {
    content_type: Option<String>,
    meta: BTreeMap<String, String>,
    etag: String,
    /// `Content-Length` of the GET: the object may have changed since listing.
    len: Option<u64>,
}

/// A signed-request S3 client for one bucket.
#[derive(Clone)]
struct Client {
    bucket: Bucket,
    creds: Credentials,
    agent: ureq::Agent,
    /// `endpoint/bucket`, for messages.
    name: String,
    c: Ctx,
}

impl Client {
    fn new(c: &Ctx, spec: &S3Spec) -> Result<Self, ComponentError> {
        let endpoint = spec
            .endpoint
            .parse()
            .map_err(|e| c.invalid(format!("endpoint {:?}: {e}", spec.endpoint)))?;
        let style = if spec.path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let bucket = Bucket::new(endpoint, style, spec.bucket.clone(), spec.region.clone())
            .map_err(|e| {
                c.invalid(format!(
                    "bucket {:?} at {}: {e}",
                    spec.bucket, spec.endpoint
                ))
            })?;
        let creds = Credentials::new(resolve(c, &spec.access_key)?, resolve(c, &spec.secret_key)?);
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            .timeout_recv_body(Some(Duration::from_secs(600)))
            .timeout_send_body(Some(Duration::from_secs(600)))
            .build();
        Ok(Self {
            bucket,
            creds,
            agent: ureq::Agent::new_with_config(config),
            name: format!("{}/{}", spec.endpoint.trim_end_matches('/'), spec.bucket),
            c: c.clone(),
        })
    }

    /// A failed request as an error naming the operation, the object and
    /// the server's answer (its XML `Code` and `Message`).
    fn fail(
        &self,
        op: &str,
        key: &str,
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> ComponentError {
        let what = if key.is_empty() {
            format!("S3 {op} on {}", self.name)
        } else {
            format!("S3 {op} {key:?} on {}", self.name)
        };
        match resp {
            Err(e) => self.c.tool(format!("{what}: {e}")),
            Ok(mut r) => {
                let status = r.status();
                let body = r.body_mut().read_to_string().unwrap_or_default();
                let field = |tag: &str| {
                    body.split(&format!("<{tag}>"))
                        .nth(1)
                        .and_then(|rest| rest.split(&format!("</{tag}>")).next())
                        .map(str::to_owned)
                };
                let detail = match (field("Code"), field("Message")) {
                    (Some(code), Some(msg)) => format!("{code}: {msg}"),
                    (Some(code), None) => code,
                    _ => body.chars().take(300).collect(),
                };
                self.c.tool(format!("{what}: HTTP {status} {detail}"))
            }
        }
    }

    fn ok(
        &self,
        op: &str,
        key: &str,
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<ureq::http::Response<ureq::Body>, ComponentError> {
        match resp {
            Ok(r) if r.status().is_success() => Ok(r),
            other => Err(self.fail(op, key, other)),
        }
    }

    /// Every object under `prefix`.
    fn list(&self, prefix: &str) -> Result<Vec<Listed>, ComponentError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = ListObjectsV2::new(&self.bucket, Some(&self.creds));
            if !prefix.is_empty() {
                action.with_prefix(prefix);
            }
            if let Some(t) = &token {
                action.with_continuation_token(t.as_str());
            }
            let url = action.sign(SIGNED_FOR);
            let mut resp = self.ok("list", prefix, self.agent.get(url.as_str()).call())?;
            let text = resp
                .body_mut()
                .with_config()
                .limit(64 << 20)
                .read_to_string()
                .map_err(|e| self.c.tool(format!("S3 list on {}: {e}", self.name)))?;
            let page = ListObjectsV2::parse_response(&text).map_err(|e| {
                self.c
                    .tool(format!("S3 list on {}: unreadable answer: {e}", self.name))
            })?;
            for o in page.contents {
                out.push(Listed {
                    etag: o.etag.unwrap_or_default(),
                    size: o.size.unwrap_or(0),
                    key: o.key,
                });
            }
            match page.next_continuation_token {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    /// Opens an object for reading.
    fn get(&self, key: &str) -> Result<(Head, ureq::Body), ComponentError> {
        let url = self
            .bucket
            .get_object(Some(&self.creds), key)
            .sign(SIGNED_FOR);
        let resp = self.ok("get", key, self.agent.get(url.as_str()).call())?;
        let mut head = Head::default();
        for (name, value) in resp.headers() {
            let Ok(value) = value.to_str() else { continue };
            let name = name.as_str();
            if name == "content-type" {
                head.content_type = Some(value.to_owned());
            } else if name == "etag" {
                head.etag = value.to_owned();
            } else if name == "content-length" {
                head.len = value.parse().ok();
            } else if let Some(meta) = name.strip_prefix("x-amz-meta-") {
                head.meta.insert(meta.to_owned(), value.to_owned());
            }
        }
        Ok((head, resp.into_body()))
    }

    /// Whether the bucket exists (and the credentials may see it).
    fn bucket_exists(&self) -> Result<bool, ComponentError> {
        let url = self.bucket.head_bucket(Some(&self.creds)).sign(SIGNED_FOR);
        match self.agent.head(url.as_str()).call() {
            Ok(r) if r.status().is_success() => Ok(true),
            Ok(r) if r.status() == 404 => Ok(false),
            other => Err(self.fail("head-bucket", "", other)),
        }
    }

    fn create_bucket(&self) -> Result<(), ComponentError> {
        let action = self.bucket.create_bucket(&self.creds);
        let url = action.sign(SIGNED_FOR);
        self.ok(
            "create-bucket",
            "",
            self.agent.put(url.as_str()).send(action.body()),
        )?;
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<(), ComponentError> {
        let url = self
            .bucket
            .delete_object(Some(&self.creds), key)
            .sign(SIGNED_FOR);
        self.ok("delete", key, self.agent.delete(url.as_str()).call())?;
        Ok(())
    }

    /// Signed headers for an upload: content type and user metadata.
    fn headers(head: &Head) -> Vec<(String, &str)> {
        let mut h: Vec<(String, &str)> = head
            .meta
            .iter()
            .map(|(k, v)| (format!("x-amz-meta-{k}"), v.as_str()))
            .collect();
        if let Some(ct) = &head.content_type {
            h.push(("content-type".to_owned(), ct.as_str()));
        }
        h
    }

    /// Uploads `len` bytes from `data` as `key`: one PUT when small,
    /// a multipart upload otherwise (aborted on failure, so nothing partial
    /// appears under the key).
    fn upload(
        &self,
        key: &str,
        head: &Head,
        len: u64,
        data: &mut dyn Read,
    ) -> Result<(), ComponentError> {
        let headers = Self::headers(head);
        if len <= PART_SIZE as u64 {
            let mut buf = Vec::with_capacity(len as usize);
            data.read_to_end(&mut buf).map_err(|e| {
                self.c
                    .io(format!("reading object {key:?} from the backup"), e)
            })?;
            let mut action = self.bucket.put_object(Some(&self.creds), key);
            for (k, v) in &headers {
                action.headers_mut().insert(k.clone(), *v);
            }
            let url = action.sign(SIGNED_FOR);
            let mut req = self.agent.put(url.as_str());
            for (k, v) in &headers {
                req = req.header(k.as_str(), *v);
            }
            self.ok("put", key, req.send(&buf[..]))?;
            return Ok(());
        }
        let mut action = CreateMultipartUpload::new(&self.bucket, Some(&self.creds), key);
        for (k, v) in &headers {
            action.headers_mut().insert(k.clone(), *v);
        }
        let url = action.sign(SIGNED_FOR);
        let mut req = self.agent.post(url.as_str());
        for (k, v) in &headers {
            req = req.header(k.as_str(), *v);
        }
        let mut resp = self.ok("create-multipart-upload", key, req.send(()))?;
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        let created = CreateMultipartUpload::parse_response(&text).map_err(|e| {
            self.c
                .tool(format!("S3 create-multipart-upload {key:?}: {e}"))
        })?;
        let upload_id = created.upload_id().to_owned();
        let result = self.upload_parts(key, &upload_id, data);
        if result.is_err() {
            let url = self
                .bucket
                .abort_multipart_upload(Some(&self.creds), key, &upload_id)
                .sign(SIGNED_FOR);
            let _ = self.agent.delete(url.as_str()).call();
        }
        result
    }

    fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        data: &mut dyn Read,
    ) -> Result<(), ComponentError> {
        let mut etags = Vec::new();
        let mut buf = vec![0u8; PART_SIZE];
        for part in 1u16.. {
            let n = read_full(data, &mut buf).map_err(|e| {
                self.c
                    .io(format!("reading object {key:?} from the backup"), e)
            })?;
            if n == 0 && part > 1 {
                break;
            }
            let url = self
                .bucket
                .upload_part(Some(&self.creds), key, part, upload_id)
                .sign(SIGNED_FOR);
            let resp = self.ok(
                "upload-part",
                key,
                self.agent.put(url.as_str()).send(&buf[..n]),
            )?;
            let etag = resp
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            etags.push(etag);
            if n < PART_SIZE {
                break;
            }
        }
        let action = self.bucket.complete_multipart_upload(
            Some(&self.creds),
            key,
            upload_id,
            etags.iter().map(String::as_str),
        );
        let url = action.sign(SIGNED_FOR);
        let mut resp = self.ok(
            "complete-multipart-upload",
            key,
            self.agent.post(url.as_str()).send(action.body()),
        )?;
        // S3 may answer 200 with an error document after a long completion.
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        if text.contains("<Error>") {
            return Err(self.c.tool(format!(
                "S3 complete-multipart-upload {key:?} on {}: {text}",
                self.name
            )));
        }
        Ok(())
    }
}

/// Reads until `buf` is full or the input ends.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Passes exactly `expected` bytes through, failing on a short or long body:
/// a tar entry must be exactly the size its header says.
struct Exact<R> {
    inner: R,
    left: u64,
    key: String,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::other(format!(
                    "object {:?} grew while it was copied",
                    self.key
                ))),
            };
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::other(format!(
                "object {:?} ended {} bytes early (changed or truncated while it was copied)",
                self.key, self.left
            )));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

pub(crate) fn backup<T>(
    c: &Ctx,
    spec: &S3Spec,
    name: &str,
    _staging_dir: &std::path::Path,
    sink: impl Sink<Out = T>,
) -> Result<T, ComponentError> {
    let client = Client::new(c, spec)?;
    let listed = client.list(&spec.prefix)?;
    let (writer, reader) = pipe();
    let producer = {
        let client = client.clone();
        let prefix = spec.prefix.clone();
        let on_change = spec.on_change;
        std::thread::spawn(move || write_tar(&client, &prefix, listed, on_change, writer))
    };
    let result = sink.stream(Box::new(reader), name);
    let produced = producer
        .join()
        .map_err(|_| c.tool("the S3 reader thread panicked"))?;
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
    client: &Client,
    prefix: &str,
    listed: Vec<Listed>,
    on_change: OnChange,
    out: PipeWriter,
) -> Result<Vec<String>, ComponentError> {
    let mut tar = tar::Builder::new(out);
    let mut changed = Vec::new();
    let written: Result<(), ComponentError> = (|| {
        for (i, obj) in listed.iter().enumerate() {
            let (head, body) = client.get(&obj.key)?;
            if head.etag != obj.etag {
                changed.push(format!("{} (changed between listing and copy)", obj.key));
            }
            let rel = obj.key.strip_prefix(prefix).unwrap_or(&obj.key);
            let mut pax: Vec<(String, Vec<u8>)> = vec![
                (PAX_KEY.to_owned(), rel.as_bytes().to_vec()),
                (PAX_ETAG.to_owned(), head.etag.as_bytes().to_vec()),
            ];
            if let Some(ct) = &head.content_type {
                pax.push((PAX_CONTENT_TYPE.to_owned(), ct.as_bytes().to_vec()));
            }
            for (k, v) in &head.meta {
                pax.push((format!("{PAX_META}{k}"), v.as_bytes().to_vec()));
            }
            tar.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(|e| client.c.io("writing the tar stream", e))?;
            let mut header = tar::Header::new_ustar();
            header.set_entry_type(tar::EntryType::Regular);
            // What this GET returns is what gets stored.
            let size = head.len.unwrap_or(obj.size);
            header.set_size(size);
            header.set_mode(0o600);
            header.set_mtime(0);
            let reader = Exact {
                inner: body.into_reader(),
                left: size,
                key: obj.key.clone(),
            };
            tar.append_data(&mut header, format!("objects/{i:08}"), reader)
                .map_err(|e| {
                    client
                        .c
                        .tool(format!("S3 get {:?} on {}: {e}", obj.key, client.name))
                })?;
        }
        // The point-in-time check: every copied object must still be as it was.
        let now: BTreeMap<String, String> = client
            .list(prefix)?
            .into_iter()
            .map(|o| (o.key, o.etag))
            .collect();
        for obj in &listed {
            match now.get(&obj.key) {
                None => changed.push(format!("{} (deleted during the backup)", obj.key)),
                Some(etag) if *etag != obj.etag => {
                    changed.push(format!("{} (modified during the backup)", obj.key))
                }
                Some(_) => {}
            }
        }
        if !changed.is_empty() && on_change == OnChange::Fail {
            return Err(client.c.tool(format!(
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
                .map_err(|e| client.c.io("finishing the tar stream", e))?;
            out.finish()
                .map_err(|e| client.c.io("finishing the tar stream", e))?;
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
    let client = Client::new(c, spec)?;
    let mut notes = Vec::new();
    if !client.bucket_exists()? {
        if !ctx.options.create_database {
            return Err(c.invalid(format!(
                "bucket {} does not exist (allow creating it, or create it first)",
                client.name
            )));
        }
        client.create_bucket()?;
        notes.push(format!("created bucket {}", client.name));
    }
    let (writer, reader) = pipe();
    let restored: Result<BTreeSet<String>, ComponentError> = std::thread::scope(|s| {
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
        let uploaded = upload_all(&client, &spec.prefix, reader);
        let fed = feeder
            .join()
            .map_err(|_| c.tool("the restore reader thread panicked"))?;
        match (uploaded, fed) {
            (Ok(keys), Ok(())) => Ok(keys),
            // The repository failed first; tar only saw the stream break.
            (Err(ComponentError::Io { context, .. }), Err(e)) if context == STREAM_READ => Err(e),
            // The upload failed first; the feeder only saw its reader go away.
            (Err(e), _) => Err(e),
            (Ok(_), Err(e)) => Err(e),
        }
    });
    let restored = restored?;
    notes.push(format!(
        "{} objects restored into {}",
        restored.len(),
        client.name
    ));
    if ctx.options.clean {
        let mut removed = 0;
        for obj in client.list(&spec.prefix)? {
            if !restored.contains(&obj.key) {
                client.delete(&obj.key)?;
                removed += 1;
            }
        }
        notes.push(format!("{removed} objects not in the backup deleted"));
    }
    Ok(RestoreReport { notes })
}

/// Uploads every object of the tar stream under `prefix`; returns the keys.
fn upload_all(
    client: &Client,
    prefix: &str,
    reader: impl Read,
) -> Result<BTreeSet<String>, ComponentError> {
    let c = &client.c;
    let bad = |e: io::Error| c.io(STREAM_READ, e);
    let mut archive = tar::Archive::new(reader);
    let mut keys = BTreeSet::new();
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let mut key = None;
        let mut head = Head::default();
        if let Some(exts) = entry.pax_extensions().map_err(bad)? {
            for ext in exts {
                let ext = ext.map_err(bad)?;
                let (Ok(k), Ok(v)) = (ext.key(), ext.value()) else {
                    continue;
                };
                match k {
                    PAX_KEY => key = Some(v.to_owned()),
                    PAX_CONTENT_TYPE => head.content_type = Some(v.to_owned()),
                    PAX_ETAG => head.etag = v.to_owned(),
                    _ => {
                        if let Some(m) = k.strip_prefix(PAX_META) {
                            head.meta.insert(m.to_owned(), v.to_owned());
                        }
                    }
                }
            }
        }
        let Some(rel) = key else {
            return Err(c.invalid(format!(
                "tar entry {:?} carries no {PAX_KEY}: not a Coffer S3 backup",
                entry
                    .path()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            )));
        };
        let full = format!("{prefix}{rel}");
        let len = entry.size();
        client.upload(&full, &head, len, &mut entry)?;
        keys.insert(full);
    }
    Ok(keys)
}
