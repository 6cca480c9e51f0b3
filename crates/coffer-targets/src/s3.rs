//! An S3-compatible object store (AWS S3, Garage, MinIO, Ceph RGW, …).
//!
//! Requests are signed with `rusty-s3` and sent with `ureq` (blocking, no
//! async runtime). Atomicity comes from the protocol: a single `PUT`, or a
//! multipart upload's `Complete`, makes the whole object appear at once;
//! an interrupted upload leaves nothing under the key (a failed multipart
//! upload is aborted). Transient failures (connection errors, timeouts,
//! HTTP 5xx, 429/SlowDown) are retried with backoff; permanent ones
//! (403, NoSuchBucket, …) fail at once with the server's answer.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use rusty_s3::actions::{CreateMultipartUpload, ListObjectsV2};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use crate::retry::RetryPolicy;
use crate::{ObjectInfo, Storage, StorageError, StorageErrorKind, StorageResult, check_key};

/// How long a signed URL stays valid (it is used at once).
const SIGNED_FOR: Duration = Duration::from_secs(900);

/// Connection settings of an S3 target, secrets already resolved.
#[derive(Clone)]
pub struct S3Settings {
    /// `https://s3.eu-west-1.amazonaws.com`, `http://127.0.0.1:3900`, …
    pub endpoint: String,
    /// Signing region.
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// Key prefix inside the bucket (e.g. `coffer/app1`); may be empty.
    pub prefix: String,
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
    /// Path-style URLs (most self-hosted servers) or virtual-host style.
    pub path_style: bool,
    /// `x-amz-storage-class` for new objects (`STANDARD_IA`, …).
    pub storage_class: Option<String>,
    /// Objects larger than this are sent as multipart uploads.
    pub multipart_threshold: usize,
    /// Size of each multipart part (at least 5 MiB for AWS).
    pub part_size: usize,
    /// Requests in flight at once, across all threads.
    pub max_in_flight: usize,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

impl S3Settings {
    /// Settings with Coffer's defaults: 64 MiB multipart threshold, 16 MiB
    /// parts, 8 requests in flight, 5 attempts.
    pub fn new(
        endpoint: &str,
        region: &str,
        bucket: &str,
        access_key: &str,
        secret_key: &str,
    ) -> Self {
        Self {
            endpoint: endpoint.to_owned(),
            region: region.to_owned(),
            bucket: bucket.to_owned(),
            prefix: String::new(),
            access_key: access_key.to_owned(),
            secret_key: secret_key.to_owned(),
            path_style: true,
            storage_class: None,
            multipart_threshold: 64 << 20,
            part_size: 16 << 20,
            max_in_flight: 8,
            retry: RetryPolicy::default(),
        }
    }
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

/// A storage in an S3 bucket, under an optional prefix.
pub struct S3Storage {
    bucket: Bucket,
    creds: Credentials,
    agent: ureq::Agent,
    settings: S3Settings,
    /// `prefix/` or empty.
    prefix: String,
    location: String,
    slots: Slots,
}

impl std::fmt::Debug for S3Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Storage")
            .field("location", &self.location)
            .finish()
    }
}

type Response = ureq::http::Response<ureq::Body>;

impl S3Storage {
    /// A storage for `settings`. Nothing is contacted yet: use
    /// [`crate::validate`] to probe the target.
    pub fn new(settings: S3Settings) -> StorageResult<Self> {
        let prefix = settings.prefix.trim_matches('/');
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        let location = format!(
            "s3:{}/{}/{}",
            settings.endpoint.trim_end_matches('/'),
            settings.bucket,
            prefix.trim_end_matches('/')
        )
        .trim_end_matches('/')
        .to_owned();
        let invalid =
            |m: String| StorageError::new(StorageErrorKind::Other, &location, "open", "", m);
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
        let creds = Credentials::new(settings.access_key.clone(), settings.secret_key.clone());
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .timeout_recv_body(Some(Duration::from_secs(300)))
            .timeout_send_body(Some(Duration::from_secs(300)))
            .max_idle_connections_per_host(settings.max_in_flight.max(1))
            .build();
        Ok(Self {
            bucket,
            creds,
            agent: ureq::Agent::new_with_config(config),
            prefix,
            location,
            slots: Slots {
                free: Mutex::new(settings.max_in_flight.max(1)),
                cv: Condvar::new(),
            },
            settings,
        })
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
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
            Ok(r) if r.status().is_success() || r.status() == 206 => Ok(r),
            Ok(r) => Err(self.http_error(op, key, r)),
            Err(e) => Err(StorageError::new(
                StorageErrorKind::Transient,
                &self.location,
                op,
                key,
                e.to_string(),
            )),
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
        let field = |tag: &str| {
            body.split(&format!("<{tag}>"))
                .nth(1)
                .and_then(|rest| rest.split(&format!("</{tag}>")).next())
                .map(str::to_owned)
        };
        let code = field("Code").unwrap_or_default();
        let message = match (code.as_str(), field("Message")) {
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
        StorageError::new(kind, &self.location, op, key, message)
    }

    fn read_body(&self, op: &'static str, key: &str, mut r: Response) -> StorageResult<Vec<u8>> {
        r.body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .map_err(|e| {
                StorageError::new(
                    StorageErrorKind::Transient,
                    &self.location,
                    op,
                    key,
                    e.to_string(),
                )
            })
    }

    fn put_once(&self, key: &str, data: &[u8]) -> StorageResult<()> {
        let full = self.full(key);
        let mut action = self.bucket.put_object(Some(&self.creds), &full);
        if let Some(class) = &self.settings.storage_class {
            action
                .headers_mut()
                .insert("x-amz-storage-class", class.clone());
        }
        let url = action.sign(SIGNED_FOR);
        self.send("put", key, |a| {
            let mut req = a.put(url.as_str());
            if let Some(class) = &self.settings.storage_class {
                req = req.header("x-amz-storage-class", class.as_str());
            }
            req.send(data)
        })?;
        Ok(())
    }

    /// A multipart upload: the object appears only at `Complete`; any
    /// failure aborts it, so no part is left behind.
    fn put_multipart(&self, key: &str, data: &[u8]) -> StorageResult<()> {
        let full = self.full(key);
        let upload_id = self.settings.retry.run(|| {
            let mut action = CreateMultipartUpload::new(&self.bucket, Some(&self.creds), &full);
            if let Some(class) = &self.settings.storage_class {
                action
                    .headers_mut()
                    .insert("x-amz-storage-class", class.clone());
            }
            let url = action.sign(SIGNED_FOR);
            let r = self.send("create-multipart-upload", key, |a| {
                let mut req = a.post(url.as_str());
                if let Some(class) = &self.settings.storage_class {
                    req = req.header("x-amz-storage-class", class.as_str());
                }
                req.send(())
            })?;
            let text =
                String::from_utf8_lossy(&self.read_body("create-multipart-upload", key, r)?)
                    .into_owned();
            CreateMultipartUpload::parse_response(&text)
                .map(|c| c.upload_id().to_owned())
                .map_err(|e| {
                    StorageError::new(
                        StorageErrorKind::Other,
                        &self.location,
                        "create-multipart-upload",
                        key,
                        e.to_string(),
                    )
                })
        })?;
        let result = self.upload_parts(key, &full, &upload_id, data);
        if result.is_err() {
            let url = self
                .bucket
                .abort_multipart_upload(Some(&self.creds), &full, &upload_id)
                .sign(SIGNED_FOR);
            if let Err(e) = self.send("abort-multipart-upload", key, |a| {
                a.delete(url.as_str()).call()
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
        data: &[u8],
    ) -> StorageResult<()> {
        let mut etags = Vec::new();
        for (i, chunk) in data
            .chunks(self.settings.part_size.max(5 << 20))
            .enumerate()
        {
            let number = u16::try_from(i + 1).map_err(|_| {
                StorageError::new(
                    StorageErrorKind::Other,
                    &self.location,
                    "upload-part",
                    key,
                    "too many parts",
                )
            })?;
            let etag = self.settings.retry.run(|| {
                let url = self
                    .bucket
                    .upload_part(Some(&self.creds), full, number, upload_id)
                    .sign(SIGNED_FOR);
                let r = self.send("upload-part", key, |a| a.put(url.as_str()).send(chunk))?;
                Ok(r.headers()
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned())
            })?;
            etags.push(etag);
        }
        self.settings.retry.run(|| {
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
            let text =
                String::from_utf8_lossy(&self.read_body("complete-multipart-upload", key, r)?)
                    .into_owned();
            if text.contains("<Error>") {
                return Err(StorageError::new(
                    StorageErrorKind::Transient,
                    &self.location,
                    "complete-multipart-upload",
                    key,
                    text,
                ));
            }
            Ok(())
        })
    }

    /// Whether the bucket exists and these credentials can reach it: the
    /// first thing a validation asks.
    pub fn head_bucket(&self) -> StorageResult<()> {
        let url = self.bucket.head_bucket(Some(&self.creds)).sign(SIGNED_FOR);
        self.send("head-bucket", "", |a| a.head(url.as_str()).call())
            .map(|_| ())
    }

    /// The server's clock (its `Date` header) minus ours, in seconds: signed
    /// requests fail when it exceeds 15 minutes.
    pub fn clock_skew_secs(&self) -> StorageResult<i64> {
        let url = self.bucket.head_bucket(Some(&self.creds)).sign(SIGNED_FOR);
        let r = self.send("head-bucket", "", |a| a.head(url.as_str()).call())?;
        let date = r
            .headers()
            .get("date")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                StorageError::new(
                    StorageErrorKind::Other,
                    &self.location,
                    "head-bucket",
                    "",
                    "no Date header",
                )
            })?;
        let server = httpdate_secs(date).ok_or_else(|| {
            StorageError::new(
                StorageErrorKind::Other,
                &self.location,
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

    /// Uploads `data` as a multipart upload even when small (validation).
    pub fn put_multipart_for_test(&self, key: &str, data: &[u8]) -> StorageResult<()> {
        check_key(&self.location, "put", key)?;
        self.put_multipart(key, data)
    }
}

/// Seconds since the epoch of an RFC 7231 date (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn httpdate_secs(s: &str) -> Option<i64> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as i64
        + 1;
    let (day, year): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let hms: Vec<i64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, sec] = hms.as_slice() else {
        return None;
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + sec)
}

impl Storage for S3Storage {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn put_parts(&self, key: &str, parts: &[&[u8]]) -> StorageResult<()> {
        check_key(&self.location, "put", key)?;
        let data = parts.concat();
        if data.len() > self.settings.multipart_threshold {
            self.put_multipart(key, &data)
        } else {
            self.settings.retry.run(|| self.put_once(key, &data))
        }
    }

    fn get(&self, key: &str) -> StorageResult<Vec<u8>> {
        check_key(&self.location, "get", key)?;
        self.settings.retry.run(|| {
            let url = self
                .bucket
                .get_object(Some(&self.creds), &self.full(key))
                .sign(SIGNED_FOR);
            let r = self.send("get", key, |a| a.get(url.as_str()).call())?;
            self.read_body("get", key, r)
        })
    }

    fn get_range(&self, key: &str, offset: u64, length: u64) -> StorageResult<Vec<u8>> {
        check_key(&self.location, "get-range", key)?;
        if length == 0 {
            return Ok(Vec::new());
        }
        let data = self.settings.retry.run(|| {
            let url = self
                .bucket
                .get_object(Some(&self.creds), &self.full(key))
                .sign(SIGNED_FOR);
            let range = format!("bytes={offset}-{}", offset + length - 1);
            let r = self.send("get-range", key, |a| {
                a.get(url.as_str()).header("range", range.as_str()).call()
            })?;
            self.read_body("get-range", key, r)
        })?;
        crate::exact_range(&self.location, key, offset, length, data)
    }

    fn list(&self, prefix: &str) -> StorageResult<Vec<ObjectInfo>> {
        let full_prefix = self.full(prefix);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self.settings.retry.run(|| {
                let mut action = ListObjectsV2::new(&self.bucket, Some(&self.creds));
                if !full_prefix.is_empty() {
                    action.with_prefix(full_prefix.as_str());
                }
                if let Some(t) = &token {
                    action.with_continuation_token(t.as_str());
                }
                let url = action.sign(SIGNED_FOR);
                let r = self.send("list", prefix, |a| a.get(url.as_str()).call())?;
                let text =
                    String::from_utf8_lossy(&self.read_body("list", prefix, r)?).into_owned();
                ListObjectsV2::parse_response(&text).map_err(|e| {
                    StorageError::new(
                        StorageErrorKind::Transient,
                        &self.location,
                        "list",
                        prefix,
                        format!("unreadable listing: {e}"),
                    )
                })
            })?;
            for o in page.contents {
                if let Some(key) = o.key.strip_prefix(&self.prefix) {
                    out.push(ObjectInfo {
                        key: key.to_owned(),
                        size: o.size.unwrap_or(0),
                    });
                }
            }
            match page.next_continuation_token {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    fn delete(&self, key: &str) -> StorageResult<()> {
        check_key(&self.location, "delete", key)?;
        self.settings.retry.run(|| {
            let url = self
                .bucket
                .delete_object(Some(&self.creds), &self.full(key))
                .sign(SIGNED_FOR);
            match self.send("delete", key, |a| a.delete(url.as_str()).call()) {
                Ok(_) => Ok(()),
                Err(e) if e.kind == StorageErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::httpdate_secs;

    #[test]
    fn http_dates() {
        assert_eq!(httpdate_secs("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            httpdate_secs("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            httpdate_secs("Mon, 23 Nov 2026 14:10:00 GMT"),
            Some(1_795_443_000)
        );
        assert_eq!(httpdate_secs("yesterday"), None);
    }
}
