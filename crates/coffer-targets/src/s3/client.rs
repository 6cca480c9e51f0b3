//! One S3 client, for the S3 target and the S3 component alike.
//!
//! Requests are signed with `rusty-s3` and sent with `ureq` (blocking, no
//! async runtime). Everything that can go wrong is decided here, once:
//!
//! * **errors** name the location, the operation and the key, with the
//!   server's `Code: Message`, classified into [`StorageErrorKind`]s;
//! * **retries**: every request that fails transiently (connection errors,
//!   timeouts, HTTP 5xx, 429/SlowDown) is retried with backoff by
//!   [`RetryPolicy`]; permanent failures (403, NoSuchBucket, …) fail at once;
//! * **bounded reads**: a body is never read past the length that was
//!   asked for or declared, and a body shorter or longer than that is an
//!   error, never a silently different object;
//! * **keys**: a key that URL normalisation would change (`.`/`..`
//!   segments, a backslash, a leading `/`) is refused before any request
//!   (see [`coffer_model::s3`]), and so is an invalid bucket name;
//! * **atomic uploads**: one PUT, or a multipart upload whose `Complete`
//!   makes the object appear at once (aborted on failure);
//! * at most `max_in_flight` requests at once, across threads.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use rusty_s3::actions::{CreateMultipartUpload, ListObjectsV2};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use super::{ObjectBody, S3Settings};
use crate::retry::RetryPolicy;

mod resume;
use crate::{StorageError, StorageErrorKind, StorageResult};

/// How long a signed URL stays valid (it is used at once).
const SIGNED_FOR: Duration = Duration::from_secs(900);
/// The most parts a multipart upload may have (AWS's limit).
const MAX_PARTS: u64 = 10_000;
/// The smallest part AWS accepts (but the last).
const MIN_PART: usize = 5 << 20;
/// Error answers and listings are read up to this much.
const MAX_ANSWER: u64 = 64 << 20;

type Response = ureq::http::Response<ureq::Body>;

/// One object as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Object {
    /// The key, relative to the client's prefix.
    pub key: String,
    /// Bytes.
    pub size: u64,
    /// The ETag, quotes included (empty when the server sent none).
    pub etag: String,
}

/// An object's content type and user metadata (`x-amz-meta-*`): what a GET
/// reports and an upload sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectMeta {
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// User metadata, names without the `x-amz-meta-` prefix.
    pub user: BTreeMap<String, String>,
}

/// What a GET says about an object besides its bytes.
#[derive(Debug, Clone, Default)]
pub struct ObjectHead {
    /// Content type and user metadata.
    pub meta: ObjectMeta,
    /// The ETag of what is being read.
    pub etag: String,
}

/// A counting semaphore bounding requests in flight.
#[derive(Debug)]
struct Slots {
    free: Mutex<usize>,
    cv: Condvar,
}

impl Slots {
    fn acquire(&self) -> SlotGuard<'_> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            free = self.cv.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
        SlotGuard(self)
    }
}

struct SlotGuard<'a>(&'a Slots);

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.0.cv.notify_one();
    }
}

/// A client for one bucket, under an optional key prefix. Clones share
/// the bound on requests in flight.
#[derive(Debug, Clone)]
pub struct S3Client {
    bucket: Bucket,
    creds: Credentials,
    agent: ureq::Agent,
    /// `prefix/` or empty.
    prefix: String,
    location: String,
    slots: Arc<Slots>,
    /// `max_in_flight`, as the slots were made.
    in_flight: usize,
    retry: RetryPolicy,
    storage_class: Option<String>,
    multipart_threshold: u64,
    part_size: usize,
}

impl S3Client {
    /// A client for `settings`; nothing is contacted yet. Refuses an
    /// invalid bucket name, and a prefix with `.`/`..` segments or a
    /// backslash.
    pub fn new(settings: &S3Settings) -> StorageResult<Self> {
        let prefix = settings.prefix.trim_matches('/');
        let location = format!(
            "s3:{}/{}/{prefix}",
            settings.endpoint.trim_end_matches('/'),
            settings.bucket,
        )
        .trim_end_matches('/')
        .to_owned();
        let invalid =
            |m: String| StorageError::new(StorageErrorKind::Other, &location, "open", "", m);
        coffer_model::s3::check_bucket_name(&settings.bucket).map_err(invalid)?;
        coffer_model::s3::check_object_key(prefix)
            .map_err(|e| invalid(format!("prefix {prefix:?}: {e}")))?;
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        let endpoint = settings
            .endpoint
            .parse()
            .map_err(|e| invalid(format!("invalid endpoint {:?}: {e}", settings.endpoint)))?;
        let style = if settings.path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let bucket = Bucket::new(
            endpoint,
            style,
            settings.bucket.clone(),
            settings.region.clone(),
        )
        .map_err(|e| invalid(format!("invalid bucket {:?}: {e}", settings.bucket)))?;
        let t = &settings.timeouts;
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(t.connect))
            .timeout_recv_response(Some(t.response))
            .timeout_recv_body(Some(t.body))
            .timeout_send_body(Some(t.body))
            .max_idle_connections_per_host(settings.max_in_flight.max(1))
            .build();
        Ok(Self {
            bucket,
            creds: Credentials::new(settings.access_key.clone(), settings.secret_key.clone()),
            agent: ureq::Agent::new_with_config(config),
            prefix,
            location,
            slots: Arc::new(Slots {
                free: Mutex::new(settings.max_in_flight.max(1)),
                cv: Condvar::new(),
            }),
            in_flight: settings.max_in_flight.max(1),
            retry: settings.retry,
            storage_class: settings.storage_class.clone(),
            multipart_threshold: settings.multipart_threshold as u64,
            part_size: settings.part_size.max(MIN_PART),
        })
    }

    /// The bucket.
    pub fn bucket_name(&self) -> &str {
        self.bucket.name()
    }

    /// The key prefix (`prefix/`, or empty).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Requests this client runs at once.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// `s3:<endpoint>/<bucket>[/<prefix>]`, as errors name it.
    pub fn location(&self) -> &str {
        &self.location
    }

    fn error(
        &self,
        kind: StorageErrorKind,
        op: &'static str,
        key: &str,
        m: String,
    ) -> StorageError {
        StorageError::new(kind, &self.location, op, key, m)
    }

    /// `key` below the prefix, after checking it can be addressed.
    fn full(&self, op: &'static str, key: &str) -> StorageResult<String> {
        let full = format!("{}{key}", self.prefix);
        coffer_model::s3::check_object_key(&full)
            .map_err(|m| self.error(StorageErrorKind::InvalidKey, op, key, m))?;
        Ok(full)
    }

    /// Sends one request (inside a slot), classifying failures.
    fn send(
        &self,
        op: &'static str,
        key: &str,
        request: impl FnOnce(&ureq::Agent) -> Result<Response, ureq::Error>,
    ) -> StorageResult<Response> {
        let _slot = self.slots.acquire();
        match request(&self.agent) {
            Ok(r) if r.status().is_success() => Ok(r),
            Ok(r) => Err(self.http_error(op, key, r)),
            Err(e) => Err(self.error(StorageErrorKind::Transient, op, key, e.to_string())),
        }
    }

    /// An HTTP error answer as a classified error with S3's `Code: Message`.
    fn http_error(&self, op: &'static str, key: &str, mut r: Response) -> StorageError {
        let status = r.status().as_u16();
        let body = r
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .unwrap_or_default();
        let code = xml_field(&body, "Code").unwrap_or_default();
        let message = match (code.as_str(), xml_field(&body, "Message")) {
            ("", _) => format!("HTTP {status}"),
            (c, Some(m)) => format!("HTTP {status} {c}: {m}"),
            (c, None) => format!("HTTP {status} {c}"),
        };
        let kind = match (status, code.as_str()) {
            (404, "NoSuchBucket") => StorageErrorKind::Other,
            (404, _) => StorageErrorKind::NotFound,
            (401 | 403, _) => StorageErrorKind::PermissionDenied,
            (_, "SlowDown" | "RequestTimeout" | "InternalError" | "ServiceUnavailable") => {
                StorageErrorKind::Transient
            }
            (429 | 500..=599, _) => StorageErrorKind::Transient,
            _ => StorageErrorKind::Other,
        };
        self.error(kind, op, key, message)
    }

    /// A small answer (listing, multipart replies), read up to [`MAX_ANSWER`].
    fn read_answer(&self, op: &'static str, key: &str, mut r: Response) -> StorageResult<String> {
        r.body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_string()
            .map_err(|e| self.error(StorageErrorKind::Transient, op, key, e.to_string()))
    }

    /// Reads exactly `expected` bytes of `r`'s body: never more (a longer
    /// body is cut off at the first byte too many), and a shorter one is an
    /// error.
    fn read_exact_body(
        &self,
        op: &'static str,
        key: &str,
        mut r: Response,
        expected: u64,
    ) -> StorageResult<Vec<u8>> {
        let data = r
            .body_mut()
            .with_config()
            .limit(expected)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => self.error(
                    StorageErrorKind::Corrupt,
                    op,
                    key,
                    format!("the server sent more than the {expected} bytes expected"),
                ),
                other => self.error(
                    StorageErrorKind::Transient,
                    op,
                    key,
                    format!("reading {expected} bytes: {other}"),
                ),
            })?;
        if data.len() as u64 != expected {
            return Err(self.error(
                StorageErrorKind::Transient,
                op,
                key,
                format!("the body ended after {} of {expected} bytes", data.len()),
            ));
        }
        Ok(data)
    }

    /// Whether the bucket exists (and these credentials may see it).
    pub fn bucket_exists(&self) -> StorageResult<bool> {
        match self.head_bucket() {
            Ok(()) => Ok(true),
            Err(e) if e.kind == StorageErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// HEAD on the bucket: reachable, authenticated, and there.
    pub fn head_bucket(&self) -> StorageResult<()> {
        self.retry.run(|| {
            let url = self.bucket.head_bucket(Some(&self.creds)).sign(SIGNED_FOR);
            self.send("head-bucket", "", |a| a.head(url.as_str()).call())
                .map(|_| ())
        })
    }

    /// Creates the bucket.
    pub fn create_bucket(&self) -> StorageResult<()> {
        self.retry.run(|| {
            let action = self.bucket.create_bucket(&self.creds);
            let url = action.sign(SIGNED_FOR);
            let body = action.body();
            self.send("create-bucket", "", |a| a.put(url.as_str()).send(body))
                .map(|_| ())
        })
    }

    /// The server's clock (its `Date` header) minus ours, in seconds: signed
    /// requests fail when it exceeds 15 minutes.
    pub fn clock_skew_secs(&self) -> StorageResult<i64> {
        let r = self.retry.run(|| {
            let url = self.bucket.head_bucket(Some(&self.creds)).sign(SIGNED_FOR);
            self.send("head-bucket", "", |a| a.head(url.as_str()).call())
        })?;
        let date = r
            .headers()
            .get("date")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                self.error(
                    StorageErrorKind::Other,
                    "head-bucket",
                    "",
                    "no Date header".into(),
                )
            })?;
        let server = super::httpdate_secs(date).ok_or_else(|| {
            self.error(
                StorageErrorKind::Other,
                "head-bucket",
                "",
                format!("unreadable Date {date:?}"),
            )
        })?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Ok(server - now)
    }

    /// Every object whose key starts with `prefix` (below the client's
    /// prefix), with keys relative to the client's prefix.
    pub fn list(&self, prefix: &str) -> StorageResult<Vec<S3Object>> {
        let full_prefix = format!("{}{prefix}", self.prefix);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self.retry.run(|| {
                let mut action = ListObjectsV2::new(&self.bucket, Some(&self.creds));
                if !full_prefix.is_empty() {
                    action.with_prefix(full_prefix.as_str());
                }
                if let Some(t) = &token {
                    action.with_continuation_token(t.as_str());
                }
                let url = action.sign(SIGNED_FOR);
                let r = self.send("list", prefix, |a| a.get(url.as_str()).call())?;
                let text = self.read_answer("list", prefix, r)?;
                ListObjectsV2::parse_response(&text).map_err(|e| {
                    self.error(
                        StorageErrorKind::Transient,
                        "list",
                        prefix,
                        format!("unreadable listing: {e}"),
                    )
                })
            })?;
            for o in page.contents {
                if let Some(key) = o.key.strip_prefix(&self.prefix) {
                    out.push(S3Object {
                        key: key.to_owned(),
                        size: o.size.unwrap_or(0),
                        etag: o.etag.unwrap_or_default(),
                    });
                }
            }
            match page.next_continuation_token {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    /// A signed GET of `full`, with an optional `Range`.
    fn get_request(
        &self,
        op: &'static str,
        key: &str,
        full: &str,
        range: Option<&str>,
    ) -> StorageResult<Response> {
        let url = self
            .bucket
            .get_object(Some(&self.creds), full)
            .sign(SIGNED_FOR);
        self.send(op, key, |a| {
            let mut req = a.get(url.as_str());
            if let Some(range) = range {
                req = req.header("range", range);
            }
            req.call()
        })
    }

    /// Reads a whole object: exactly the `Content-Length` the server
    /// declares (an answer without one is refused unread).
    pub fn get(&self, key: &str) -> StorageResult<Vec<u8>> {
        let full = self.full("get", key)?;
        self.retry.run(|| {
            let r = self.get_request("get", key, &full, None)?;
            let len = declared_length(&r).ok_or_else(|| {
                self.error(
                    StorageErrorKind::Corrupt,
                    "get",
                    key,
                    "the server sent no Content-Length: refusing a body of unknown size".into(),
                )
            })?;
            self.read_exact_body("get", key, r, len)
        })
    }

    /// Reads exactly `length` bytes at `offset`. An answer that declares
    /// another length, or ignores the range (a `200` with more than the
    /// range), is refused before its body is read.
    pub fn get_range(&self, key: &str, offset: u64, length: u64) -> StorageResult<Vec<u8>> {
        let full = self.full("get-range", key)?;
        if length == 0 {
            return Ok(Vec::new());
        }
        let range = format!("bytes={offset}-{}", offset + length - 1);
        self.retry.run(|| {
            let r = self.get_request("get-range", key, &full, Some(&range))?;
            let declared = declared_length(&r);
            // A 200 is the whole object: acceptable only when that is the range.
            let whole_is_range = offset == 0 && declared == Some(length);
            if r.status() != 206 && !whole_is_range {
                return Err(self.error(
                    StorageErrorKind::Corrupt,
                    "get-range",
                    key,
                    format!(
                        "asked for {length} bytes at {offset}, the server answered {} with {} \
                         bytes (the range was ignored)",
                        r.status().as_u16(),
                        declared.map_or("unknown".into(), |d| d.to_string())
                    ),
                ));
            }
            if let Some(d) = declared
                && d != length
            {
                return Err(self.error(
                    StorageErrorKind::Corrupt,
                    "get-range",
                    key,
                    format!("asked for {length} bytes at {offset}, the server declares {d}"),
                ));
            }
            self.read_exact_body("get-range", key, r, length)
        })
    }

    /// Opens an object for streaming: its head, and a body that yields
    /// exactly the `Content-Length` the server declares (or, without one,
    /// `fallback_len`, e.g. the listed size) and fails on a body shorter or
    /// longer than that. Opening is retried; a body that breaks off goes on
    /// from where it stopped (a ranged GET of the same ETag, 3 times at most).
    pub fn open(&self, key: &str, fallback_len: u64) -> StorageResult<(ObjectHead, ObjectBody)> {
        let full = self.full("get", key)?;
        let r = self
            .retry
            .run(|| self.get_request("get", key, &full, None))?;
        let mut head = ObjectHead::default();
        for (name, value) in r.headers() {
            let Ok(value) = value.to_str() else { continue };
            match name.as_str() {
                "content-type" => head.meta.content_type = Some(value.to_owned()),
                "etag" => head.etag = value.to_owned(),
                n => {
                    if let Some(m) = n.strip_prefix("x-amz-meta-") {
                        head.meta.user.insert(m.to_owned(), value.to_owned());
                    }
                }
            }
        }
        let len = declared_length(&r).unwrap_or(fallback_len);
        let reader = r.into_body().into_with_config().limit(len).reader();
        let body = ObjectBody::new(
            Box::new(reader),
            len,
            format!("{}: get {key:?}", self.location),
        )
        .resumable(self.resume(key, &full, &head.etag, len));
        Ok((head, body))
    }

    /// Signed headers of an upload: storage class, content type, metadata.
    fn upload_headers(&self, meta: &ObjectMeta) -> Vec<(String, String)> {
        let mut h: Vec<(String, String)> = meta
            .user
            .iter()
            .map(|(k, v)| (format!("x-amz-meta-{k}"), v.clone()))
            .collect();
        if let Some(ct) = &meta.content_type {
            h.push(("content-type".into(), ct.clone()));
        }
        if let Some(class) = &self.storage_class {
            h.push(("x-amz-storage-class".into(), class.clone()));
        }
        h
    }

    /// Stores `data` as `key`: one PUT up to the multipart threshold, a
    /// multipart upload above it.
    pub fn put(&self, key: &str, meta: &ObjectMeta, data: &[u8]) -> StorageResult<()> {
        let full = self.full("put", key)?;
        if data.len() as u64 > self.multipart_threshold {
            return self.multipart(key, &full, meta, data.len() as u64, &mut &data[..]);
        }
        self.put_once(key, &full, meta, data)
    }

    /// Stores `data` as a multipart upload, whatever its size (Validate
    /// probes the protocol with it).
    pub fn put_multipart(&self, key: &str, meta: &ObjectMeta, data: &[u8]) -> StorageResult<()> {
        let full = self.full("put", key)?;
        self.multipart(key, &full, meta, data.len() as u64, &mut &data[..])
    }

    /// Uploads `len` bytes read from `data` as `key`: one PUT up to the
    /// multipart threshold, else a multipart upload whose parts are read
    /// one at a time (aborted on failure: nothing partial appears under the
    /// key). Each request is retried; `data` is read once.
    pub fn upload(
        &self,
        key: &str,
        meta: &ObjectMeta,
        len: u64,
        data: &mut dyn Read,
    ) -> StorageResult<()> {
        let full = self.full("put", key)?;
        if len > self.multipart_threshold {
            return self.multipart(key, &full, meta, len, data);
        }
        let buf = self.read_part(key, data, len)?;
        self.put_once(key, &full, meta, &buf)
    }

    /// One PUT of `data`, retried.
    fn put_once(&self, key: &str, full: &str, meta: &ObjectMeta, data: &[u8]) -> StorageResult<()> {
        let headers = self.upload_headers(meta);
        self.retry.run(|| {
            let mut action = self.bucket.put_object(Some(&self.creds), full);
            for (k, v) in &headers {
                action.headers_mut().insert(k.clone(), v.clone());
            }
            let url = action.sign(SIGNED_FOR);
            self.send("put", key, |a| {
                let mut req = a.put(url.as_str());
                for (k, v) in &headers {
                    req = req.header(k.as_str(), v.as_str());
                }
                req.send(data)
            })
            .map(|_| ())
        })
    }

    /// Exactly `n` bytes of `data`; a failure here is the data's, not the
    /// server's (kind `Other`, never retried).
    fn read_part(&self, key: &str, data: &mut dyn Read, n: u64) -> StorageResult<Vec<u8>> {
        let mut buf = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
        let read = data.take(n).read_to_end(&mut buf);
        match read {
            Ok(_) if buf.len() as u64 == n => Ok(buf),
            Ok(_) => Err(self.error(
                StorageErrorKind::Other,
                "put",
                key,
                format!("the data to upload ended after {} of {n} bytes", buf.len()),
            )),
            Err(e) => Err(self.error(
                StorageErrorKind::Other,
                "put",
                key,
                format!("reading the data to upload: {e}"),
            )),
        }
    }

    fn multipart(
        &self,
        key: &str,
        full: &str,
        meta: &ObjectMeta,
        len: u64,
        data: &mut dyn Read,
    ) -> StorageResult<()> {
        let headers = self.upload_headers(meta);
        let upload_id = self.retry.run(|| {
            let mut action = CreateMultipartUpload::new(&self.bucket, Some(&self.creds), full);
            for (k, v) in &headers {
                action.headers_mut().insert(k.clone(), v.clone());
            }
            let url = action.sign(SIGNED_FOR);
            let r = self.send("create-multipart-upload", key, |a| {
                let mut req = a.post(url.as_str());
                for (k, v) in &headers {
                    req = req.header(k.as_str(), v.as_str());
                }
                req.send(())
            })?;
            let text = self.read_answer("create-multipart-upload", key, r)?;
            CreateMultipartUpload::parse_response(&text)
                .map(|c| c.upload_id().to_owned())
                .map_err(|e| {
                    self.error(
                        StorageErrorKind::Other,
                        "create-multipart-upload",
                        key,
                        e.to_string(),
                    )
                })
        })?;
        let result = self.upload_parts(key, full, &upload_id, len, data);
        if result.is_err() {
            let url = self
                .bucket
                .abort_multipart_upload(Some(&self.creds), full, &upload_id)
                .sign(SIGNED_FOR);
            if let Err(e) = self.retry.run(|| {
                self.send("abort-multipart-upload", key, |a| {
                    a.delete(url.as_str()).call()
                })
            }) {
                log::warn!("could not abort the multipart upload of {key}: {e}");
            }
        }
        result
    }

    fn upload_parts(
        &self,
        key: &str,
        full: &str,
        upload_id: &str,
        len: u64,
        data: &mut dyn Read,
    ) -> StorageResult<()> {
        // Parts grow for very large objects so there are at most MAX_PARTS.
        let part_size = (self.part_size as u64).max(len.div_ceil(MAX_PARTS));
        let mut etags = Vec::new();
        let mut left = len;
        for number in 1u16.. {
            let n = left.min(part_size);
            let part = self.read_part(key, data, n)?;
            left -= n;
            let etag = self.retry.run(|| {
                let url = self
                    .bucket
                    .upload_part(Some(&self.creds), full, number, upload_id)
                    .sign(SIGNED_FOR);
                let r = self.send("upload-part", key, |a| a.put(url.as_str()).send(&part[..]))?;
                Ok(r.headers()
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned())
            })?;
            etags.push(etag);
            if left == 0 {
                break;
            }
        }
        self.retry.run(|| {
            let action = self.bucket.complete_multipart_upload(
                Some(&self.creds),
                full,
                upload_id,
                etags.iter().map(String::as_str),
            );
            let url = action.sign(SIGNED_FOR);
            let body = action.body();
            let r = self.send("complete-multipart-upload", key, |a| {
                a.post(url.as_str()).send(body)
            })?;
            // S3 may answer 200 and put the error in the body.
            let text = self.read_answer("complete-multipart-upload", key, r)?;
            if text.contains("<Error>") {
                return Err(self.error(
                    StorageErrorKind::Transient,
                    "complete-multipart-upload",
                    key,
                    text,
                ));
            }
            Ok(())
        })
    }

    /// Deletes an object; a missing one is not an error.
    pub fn delete(&self, key: &str) -> StorageResult<()> {
        let full = self.full("delete", key)?;
        self.retry.run(|| {
            let url = self
                .bucket
                .delete_object(Some(&self.creds), &full)
                .sign(SIGNED_FOR);
            match self.send("delete", key, |a| a.delete(url.as_str()).call()) {
                Ok(_) => Ok(()),
                Err(e) if e.kind == StorageErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            }
        })
    }
}

/// The text of the first `<tag>…</tag>` in an XML answer.
fn xml_field(body: &str, tag: &str) -> Option<String> {
    body.split(&format!("<{tag}>"))
        .nth(1)
        .and_then(|rest| rest.split(&format!("</{tag}>")).next())
        .map(str::to_owned)
}

/// The body length the server declares. ureq reports no length for a body
/// it knows is empty (`Content-Length: 0`), so the header itself is the
/// fallback: an empty object is declared, not of unknown size.
fn declared_length(r: &Response) -> Option<u64> {
    r.body().content_length().or_else(|| {
        r.headers()
            .get("content-length")?
            .to_str()
            .ok()?
            .trim()
            .parse()
            .ok()
    })
}
