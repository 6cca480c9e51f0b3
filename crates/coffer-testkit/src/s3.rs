//! A minimal S3 client for tests: set up and compare buckets on the real S3
//! server (Garage) that scripts/services.sh starts.

use std::collections::BTreeMap;
use std::time::Duration;

use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use crate::service_setting;

const SIGN: Duration = Duration::from_secs(600);

/// A minimal S3 client for setting up and checking buckets.
pub struct S3 {
    /// The endpoint URL.
    pub endpoint: String,
    /// The region.
    pub region: String,
    creds: Credentials,
    agent: ureq::Agent,
}

/// An object as the test compares it.
#[derive(Debug, PartialEq, Eq)]
pub struct Object {
    /// The bytes.
    pub body: Vec<u8>,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// User metadata (`x-amz-meta-*`).
    pub meta: BTreeMap<String, String>,
}

impl S3 {
    /// From the COFFER_TEST_S3_* settings of scripts/services.sh.
    pub fn from_env() -> Option<Self> {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build();
        Some(Self {
            endpoint: service_setting("COFFER_TEST_S3_ENDPOINT")?,
            region: service_setting("COFFER_TEST_S3_REGION")?,
            creds: Credentials::new(
                service_setting("COFFER_TEST_S3_ACCESS_KEY")?,
                service_setting("COFFER_TEST_S3_SECRET_KEY")?,
            ),
            agent: ureq::Agent::new_with_config(config),
        })
    }

    /// A bucket handle (path style).
    pub fn bucket(&self, name: &str) -> Bucket {
        Bucket::new(
            self.endpoint.parse().unwrap(),
            UrlStyle::Path,
            name.to_owned(),
            self.region.clone(),
        )
        .unwrap()
    }

    /// Puts an object with an optional content type and user metadata.
    pub fn put(
        &self,
        bucket: &str,
        key: &str,
        body: &[u8],
        ct: Option<&str>,
        meta: &[(&str, &str)],
    ) {
        let b = self.bucket(bucket);
        let mut action = b.put_object(Some(&self.creds), key);
        let mut headers: Vec<(String, String)> = meta
            .iter()
            .map(|(k, v)| (format!("x-amz-meta-{k}"), (*v).to_owned()))
            .collect();
        if let Some(ct) = ct {
            headers.push(("content-type".into(), ct.into()));
        }
        for (k, v) in &headers {
            action.headers_mut().insert(k.clone(), v.clone());
        }
        let mut req = self.agent.put(action.sign(SIGN).as_str());
        for (k, v) in &headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let r = req.send(body).unwrap();
        assert!(r.status().is_success(), "put {key}: {}", r.status());
    }

    /// Deletes an object.
    pub fn delete(&self, bucket: &str, key: &str) {
        let b = self.bucket(bucket);
        let url = b.delete_object(Some(&self.creds), key).sign(SIGN);
        self.agent.delete(url.as_str()).call().unwrap();
    }

    /// Every key under `prefix` (one page).
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let b = self.bucket(bucket);
        let mut action = b.list_objects_v2(Some(&self.creds));
        action.with_prefix(prefix);
        let mut r = self.agent.get(action.sign(SIGN).as_str()).call().unwrap();
        let text = r.body_mut().read_to_string().unwrap();
        let page = rusty_s3::actions::ListObjectsV2::parse_response(&text).unwrap();
        assert!(page.next_continuation_token.is_none());
        page.contents.into_iter().map(|o| o.key).collect()
    }

    /// Every object under `prefix`, keyed without the prefix.
    pub fn objects(&self, bucket: &str, prefix: &str) -> BTreeMap<String, Object> {
        let b = self.bucket(bucket);
        let mut out = BTreeMap::new();
        for key in self.keys(bucket, prefix) {
            let url = b.get_object(Some(&self.creds), &key).sign(SIGN);
            let mut r = self.agent.get(url.as_str()).call().unwrap();
            assert!(r.status().is_success());
            let content_type = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned());
            let meta = r
                .headers()
                .iter()
                .filter_map(|(k, v)| {
                    Some((
                        k.as_str().strip_prefix("x-amz-meta-")?.to_owned(),
                        v.to_str().ok()?.to_owned(),
                    ))
                })
                .collect();
            let body = r
                .body_mut()
                .with_config()
                .limit(1 << 30)
                .read_to_vec()
                .unwrap();
            out.insert(
                key[prefix.len()..].to_owned(),
                Object {
                    body,
                    content_type,
                    meta,
                },
            );
        }
        out
    }
}
