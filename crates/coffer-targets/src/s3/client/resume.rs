//! Resuming an object's body that broke off: a ranged GET of the rest of
//! the same object.

use std::io::Read;

use rusty_s3::S3Action;

use super::{S3Client, SIGNED_FOR, declared_length};
use crate::s3::body::Resume;

impl S3Client {
    /// How a body that broke off goes on: a ranged GET of the rest, only
    /// of the same object (its ETag, sent as `If-Match` and checked in the
    /// answer), retried like any request.
    pub(super) fn resume(&self, key: &str, full: &str, etag: &str, len: u64) -> Resume {
        let (client, key, full, etag) = (
            self.clone(),
            key.to_owned(),
            full.to_owned(),
            etag.to_owned(),
        );
        Box::new(move |at| {
            let range = format!("bytes={at}-{}", len.saturating_sub(1));
            let r = client
                .retry
                .run(|| {
                    let url = client
                        .bucket
                        .get_object(Some(&client.creds), &full)
                        .sign(SIGNED_FOR);
                    client.send("get", &key, |a| {
                        a.get(url.as_str())
                            .header("range", &range)
                            .header("if-match", &etag)
                            .call()
                    })
                })
                .map_err(std::io::Error::other)?;
            let same = r.headers().get("etag").and_then(|v| v.to_str().ok()) == Some(etag.as_str());
            if r.status().as_u16() != 206 || !same || declared_length(&r) != Some(len - at) {
                return Err(std::io::Error::other(format!(
                    "the server did not answer with the rest of the same object ({} {:?})",
                    r.status(),
                    r.headers().get("etag")
                )));
            }
            let rest: Box<dyn Read + Send> =
                Box::new(r.into_body().into_with_config().limit(len - at).reader());
            Ok(rest)
        })
    }
}
