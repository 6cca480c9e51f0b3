//! Delivering one message to a webhook: a JSON POST, signed with
//! HMAC-SHA256 when the destination has a secret, retried with backoff on
//! connection failures, 429 and 5xx (at most [`ATTEMPTS`] tries). The
//! destination's host is checked against `server.target_allow` before
//! every delivery (a name may resolve elsewhere since it was added).

use std::time::Duration;

use ring::hmac;

use crate::targets::policy::{check_host, url_host};

/// Tries per message.
pub const ATTEMPTS: u32 = 4;
/// The wait before the second try; doubled for each later one.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Each try's time limit (connecting, sending, the answer).
const TIMEOUT: Duration = Duration::from_secs(10);
/// How much of the receiver's answer is kept (for the test call's answer).
const ANSWER_EXCERPT: u64 = 512;

/// What delivering one message gave.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Tries made.
    pub attempts: u32,
    /// The last HTTP status received.
    pub status: Option<u16>,
    /// The start of the last answer's body.
    pub answer: Option<String>,
    /// Why it was not delivered (none: a 2xx answer).
    pub error: Option<String>,
}

/// The signature header's value: `sha256=<hex HMAC-SHA256 of body>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    format!("sha256={}", hex::encode(hmac::sign(&key, body).as_ref()))
}

/// Posts `body` to `url`; see the module's notes.
pub fn deliver(
    url: &str,
    secret: Option<&str>,
    event: &str,
    delivery_id: &str,
    body: &[u8],
    allow: &[String],
) -> Delivery {
    let mut out = Delivery {
        attempts: 0,
        status: None,
        answer: None,
        error: None,
    };
    if let Err(e) = url_host(url)
        .ok_or_else(|| format!("url: no host in {url:?}"))
        .and_then(|h| check_host("url", h, allow).map_err(|e| e.message()))
    {
        out.error = Some(e);
        return out;
    }
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(TIMEOUT))
        .max_redirects(0)
        .build();
    let agent = ureq::Agent::new_with_config(config);
    let mut backoff = FIRST_BACKOFF;
    while out.attempts < ATTEMPTS {
        if out.attempts > 0 {
            std::thread::sleep(backoff);
            backoff *= 2;
        }
        out.attempts += 1;
        let mut req = agent
            .post(url)
            .header("Content-Type", "application/json")
            .header("User-Agent", concat!("coffer/", env!("CARGO_PKG_VERSION")))
            .header("X-Coffer-Event", event)
            .header("X-Coffer-Delivery", delivery_id);
        if let Some(s) = secret {
            req = req.header("X-Coffer-Signature-256", signature(s, body));
        }
        match req.send(body) {
            Err(e) => {
                out.status = None;
                out.error = Some(format!("{url}: {e}"));
            }
            Ok(mut r) => {
                let status = r.status().as_u16();
                out.status = Some(status);
                out.answer = r
                    .body_mut()
                    .with_config()
                    .limit(ANSWER_EXCERPT)
                    .read_to_vec()
                    .ok()
                    .map(|b| String::from_utf8_lossy(&b).into_owned());
                if (200..300).contains(&status) {
                    out.error = None;
                    return out;
                }
                out.error = Some(format!("{url} answered {status}"));
                if !(status == 429 || status >= 500) {
                    return out;
                }
            }
        }
    }
    out
}
