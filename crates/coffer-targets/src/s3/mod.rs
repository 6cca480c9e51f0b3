//! An S3-compatible object store (AWS S3, Garage, MinIO, Ceph RGW, …) as a
//! [`Storage`]: the bucket (under an optional prefix) through the one
//! [`S3Client`] that the S3 component uses too.
//!
//! Atomicity comes from the protocol: a single `PUT`, or a multipart
//! upload's `Complete`, makes the whole object appear at once; an
//! interrupted upload leaves nothing under the key (a failed multipart
//! upload is aborted). Transient failures (connection errors, timeouts,
//! HTTP 5xx, 429/SlowDown) are retried with backoff; permanent ones
//! (403, NoSuchBucket, …) fail at once with the server's answer. Reads
//! never take more than the bytes asked for.

mod body;
mod client;

use std::time::Duration;

pub use body::ObjectBody;
pub use client::{ObjectHead, ObjectMeta, S3Client, S3Object};

use crate::retry::RetryPolicy;
use crate::{ObjectInfo, Storage, StorageResult, check_key, check_list_prefix};

/// Connection settings of an S3 target (or of the S3 component's bucket),
/// secrets already resolved.
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
    /// Size of each multipart part (at least 5 MiB; larger when an object
    /// would otherwise need more than 10 000 parts).
    pub part_size: usize,
    /// Requests in flight at once, across all threads.
    pub max_in_flight: usize,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// Network timeouts.
    pub timeouts: S3Timeouts,
}

/// How long S3 requests may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct S3Timeouts {
    /// Opening the connection.
    pub connect: Duration,
    /// From the request sent to the response's headers.
    pub response: Duration,
    /// Sending a request body, and receiving a response body, each whole.
    pub body: Duration,
}

impl Default for S3Timeouts {
    /// 10 s to connect, 60 s for an answer, 300 s per body.
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            response: Duration::from_secs(60),
            body: Duration::from_secs(300),
        }
    }
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
    /// parts, 8 requests in flight, 5 attempts, [`S3Timeouts::default`].
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
            timeouts: S3Timeouts::default(),
        }
    }
}

/// A storage in an S3 bucket, under an optional prefix.
pub struct S3Storage {
    client: S3Client,
}

impl std::fmt::Debug for S3Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Storage")
            .field("location", &self.client.location())
            .finish()
    }
}

impl S3Storage {
    /// A storage for `settings`. Nothing is contacted yet: use
    /// [`crate::validate`] to probe the target. Refuses an invalid bucket
    /// name and a prefix with `.`/`..` segments or a backslash.
    pub fn new(settings: S3Settings) -> StorageResult<Self> {
        Ok(Self {
            client: S3Client::new(&settings)?,
        })
    }

    /// The client underneath (keys relative to the target's prefix).
    pub fn client(&self) -> &S3Client {
        &self.client
    }

    /// Whether the bucket exists and these credentials can reach it: the
    /// first thing a validation asks.
    pub fn head_bucket(&self) -> StorageResult<()> {
        self.client.head_bucket()
    }

    /// The server's clock (its `Date` header) minus ours, in seconds: signed
    /// requests fail when it exceeds 15 minutes.
    pub fn clock_skew_secs(&self) -> StorageResult<i64> {
        self.client.clock_skew_secs()
    }

    /// Uploads `data` as a multipart upload even when small (validation).
    pub fn put_multipart_for_test(&self, key: &str, data: &[u8]) -> StorageResult<()> {
        check_key(self.client.location(), "put", key)?;
        self.client.put_multipart(key, &ObjectMeta::default(), data)
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
    fn parallel_reads(&self) -> usize {
        self.client.in_flight()
    }

    fn parallel_writes(&self) -> usize {
        // Each pack is already sent in parts in parallel (multipart); a
        // few packs at once also overlap their initiate/complete round trips.
        2
    }

    fn location(&self) -> String {
        self.client.location().to_owned()
    }

    fn put_parts(&self, key: &str, parts: &[&[u8]]) -> StorageResult<()> {
        check_key(self.client.location(), "put", key)?;
        // Read through the parts rather than concatenated: a pack above the
        // multipart threshold is then copied one part at a time, not whole
        // (a 2 GiB backup to S3 peaked at 426 MiB with two packs in flight).
        let len = parts.iter().map(|p| p.len() as u64).sum();
        let mut data = parts.iter().fold(
            Box::new(std::io::empty()) as Box<dyn std::io::Read>,
            |all, part| Box::new(std::io::Read::chain(all, *part)),
        );
        self.client
            .upload(key, &ObjectMeta::default(), len, &mut data)
    }

    fn get(&self, key: &str) -> StorageResult<Vec<u8>> {
        check_key(self.client.location(), "get", key)?;
        self.client.get(key)
    }

    fn get_range(&self, key: &str, offset: u64, length: u64) -> StorageResult<Vec<u8>> {
        check_key(self.client.location(), "get-range", key)?;
        self.client.get_range(key, offset, length)
    }

    fn list(&self, prefix: &str) -> StorageResult<Vec<ObjectInfo>> {
        check_list_prefix(self.client.location(), prefix)?;
        Ok(self
            .client
            .list(prefix)?
            .into_iter()
            .map(|o| ObjectInfo {
                key: o.key,
                size: o.size,
            })
            .collect())
    }

    fn delete(&self, key: &str) -> StorageResult<()> {
        check_key(self.client.location(), "delete", key)?;
        self.client.delete(key)
    }

    /// Nothing to create on an object store; the prefix is still checked
    /// like every key, so a bad one fails here as on the other backends.
    fn ensure_prefix(&self, prefix: &str) -> StorageResult<()> {
        check_key(self.client.location(), "mkdir", prefix)
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

#[cfg(test)]
mod bounded_reads_tests;
