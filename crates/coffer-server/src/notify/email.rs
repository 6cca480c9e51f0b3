//! Delivering one message by email: SMTP with STARTTLS (default) or
//! implicit TLS (plain only to a server on this machine), a login when the
//! destination has a user, retried with backoff on transient failures
//! (connection, 4xx) — never on a permanent answer such as a refused login
//! (535), which comes back as the server said it. The SMTP host is checked
//! against `server.target_allow` before every delivery.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Message, SmtpTransport, Transport};
use serde_json::Value;

use crate::notify::spec::{NotificationSpec, SmtpTls};
use crate::notify::webhook::{ATTEMPTS, Delivery};
use crate::targets::policy::check_host;

/// The wait before the second try; doubled for each later one.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Each try's time limit.
const TIMEOUT: Duration = Duration::from_secs(15);

/// The subject and text of the message whose JSON is `body`.
fn render(body: &[u8]) -> (String, String) {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let text = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
    let summary = text("summary");
    let short: String = summary.chars().take(120).collect();
    let subject = format!("[coffer] {} {}: {short}", text("event"), text("state"));
    let pretty = serde_json::to_string_pretty(&v).unwrap_or_default();
    let text = format!(
        "{summary}\n\nEvent: {}\nState: {}\nAt: {}\n\n{pretty}\n",
        text("event"),
        text("state"),
        text("at")
    );
    (subject, text)
}

/// Sends the message `body` (the JSON every destination gets) to the
/// destination's recipients.
pub fn deliver(
    spec: &NotificationSpec,
    password: Option<&str>,
    body: &[u8],
    allow: &[String],
) -> Delivery {
    let mut out = Delivery {
        attempts: 0,
        status: None,
        answer: None,
        error: None,
    };
    let host = spec.smtp_host.as_deref().unwrap_or_default();
    if let Err(e) = check_host("smtp_host", host, allow) {
        out.error = Some(e.message());
        return out;
    }
    let message = match build(spec, body) {
        Ok(m) => m,
        Err(e) => {
            out.error = Some(e);
            return out;
        }
    };
    let tls = spec.tls.unwrap_or(SmtpTls::Starttls);
    let builder = match tls {
        SmtpTls::Starttls => SmtpTransport::starttls_relay(host),
        SmtpTls::Tls => SmtpTransport::relay(host),
        SmtpTls::None => Ok(SmtpTransport::builder_dangerous(host)),
    };
    let builder = match builder {
        Ok(b) => b,
        Err(e) => {
            out.error = Some(format!("smtp_host {host:?}: {e}"));
            return out;
        }
    };
    let port = spec.smtp_port.unwrap_or(match tls {
        SmtpTls::Starttls => 587,
        SmtpTls::Tls => 465,
        SmtpTls::None => 25,
    });
    let mut builder = builder.port(port).timeout(Some(TIMEOUT));
    if let (Some(user), Some(pw)) = (&spec.user, password) {
        builder = builder.credentials(Credentials::new(user.clone(), pw.to_owned()));
    }
    let mailer = builder.build();
    let mut backoff = FIRST_BACKOFF;
    while out.attempts < ATTEMPTS {
        if out.attempts > 0 {
            std::thread::sleep(backoff);
            backoff *= 2;
        }
        out.attempts += 1;
        match mailer.send(&message) {
            Ok(r) => {
                out.status = Some(code(&r.code().to_string()));
                out.answer = Some(r.message().collect::<Vec<_>>().join(" "));
                out.error = None;
                return out;
            }
            Err(e) => {
                out.status = e.status().map(|c| code(&c.to_string()));
                out.error = Some(format!("{host}:{port}: {e}"));
                if e.is_permanent() {
                    return out;
                }
            }
        }
    }
    out
}

/// An SMTP reply code as a number (`535`).
fn code(text: &str) -> u16 {
    text.parse().unwrap_or(0)
}

fn build(spec: &NotificationSpec, body: &[u8]) -> Result<Message, String> {
    let (subject, text) = render(body);
    let from: Mailbox = spec
        .from
        .as_deref()
        .unwrap_or_default()
        .parse()
        .map_err(|e| format!("from: {e}"))?;
    let mut m = Message::builder().from(from).subject(subject);
    for t in spec.to.iter().flatten() {
        m = m.to(t.parse().map_err(|e| format!("to: {t:?}: {e}"))?);
    }
    m.header(ContentType::TEXT_PLAIN)
        .body(text)
        .map_err(|e| format!("building the message: {e}"))
}
