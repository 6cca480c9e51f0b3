//! A notification destination as operators write it — `[[notifications]]`
//! in coffer.toml or the body of `POST /api/v1/notifications` — checked
//! with the field named.
//!
//! ```toml
//! [[notifications]]
//! name = "ops"
//! kind = "webhook"
//! url = "https://hooks.example.net/coffer"
//! secret = { env = "COFFER_WEBHOOK_SECRET" }    # HMAC-SHA256 key of the signature header
//! events = ["backup_failed", "backup_stale"]    # default: every failure kind
//! ```

use coffer_model::secret::Secret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::notify::handle::EventKind;
use crate::schedules::spec::check_name;

/// A destination.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationSpec {
    /// 1–64 characters of `[A-Za-z0-9_.-]`, not starting with `.`.
    pub name: String,
    /// `webhook`: a JSON POST signed with HMAC-SHA256; `email`: a message
    /// through an SMTP server.
    pub kind: DestinationKind,
    /// Webhook: the `http://` or `https://` URL the JSON is posted to; its
    /// host must pass `server.target_allow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Webhook: the key of the `X-Coffer-Signature-256` header
    /// (`sha256=<hex HMAC of the body>`). In coffer.toml also `{ env = … }`
    /// or `{ file = … }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub secret: Option<Secret>,
    /// Email: the SMTP server (its host must pass `server.target_allow`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_host: Option<String>,
    /// Email: its port (default 587 with `starttls`, 465 with `tls`, 25 with `none`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_port: Option<u16>,
    /// Email: `starttls` (default), `tls` (implicit TLS), or `none` — only
    /// for a server on this machine (loopback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<SmtpTls>,
    /// Email: the SMTP user, when the server wants a login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Email: that user's password (in coffer.toml also `{ env = … }` or
    /// `{ file = … }`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub password: Option<Secret>,
    /// Email: the sender address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Email: the recipients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<String>>,
    /// The events sent (default: every failure kind; `backup_succeeded` only
    /// when listed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<EventKind>>,
    /// `false` silences it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// How a destination is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DestinationKind {
    /// An HTTP(S) endpoint.
    Webhook,
    /// Email through an SMTP server.
    Email,
}

/// How Coffer talks to an SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required).
    Starttls,
    /// TLS from the first byte (SMTPS).
    Tls,
    /// No encryption: only to a server on this machine.
    None,
}

/// Whether `host` is this machine.
pub fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl NotificationSpec {
    /// Checks what does not depend on the server's state; the error names
    /// the field.
    pub fn check(&self) -> Result<(), String> {
        check_name(&self.name).map_err(|e| e.to_string())?;
        let refuse = |fields: &[(&str, bool)], kind: &str| -> Result<(), String> {
            match fields.iter().find(|(_, given)| *given) {
                Some((f, _)) => Err(format!("{f}: not for kind = \"{kind}\"")),
                None => Ok(()),
            }
        };
        match self.kind {
            DestinationKind::Webhook => {
                refuse(
                    &[
                        ("smtp_host", self.smtp_host.is_some()),
                        ("smtp_port", self.smtp_port.is_some()),
                        ("tls", self.tls.is_some()),
                        ("user", self.user.is_some()),
                        ("password", self.password.is_some()),
                        ("from", self.from.is_some()),
                        ("to", self.to.is_some()),
                    ],
                    "webhook",
                )?;
                let url = self.url.as_deref().ok_or("url: required for a webhook")?;
                let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
                if !scheme_ok || crate::targets::policy::url_host(url).is_none() {
                    return Err(format!(
                        "url: {url:?} is not an http:// or https:// URL with a host"
                    ));
                }
            }
            DestinationKind::Email => {
                refuse(
                    &[
                        ("url", self.url.is_some()),
                        ("secret", self.secret.is_some()),
                    ],
                    "email",
                )?;
                let host = self
                    .smtp_host
                    .as_deref()
                    .filter(|h| !h.trim().is_empty())
                    .ok_or("smtp_host: required for email")?;
                if self.tls == Some(SmtpTls::None) && !is_loopback(host) {
                    return Err(format!(
                        "tls: \"none\" only for an SMTP server on this machine, not {host:?}: \
                         use starttls or tls"
                    ));
                }
                if self.password.is_some() && self.user.is_none() {
                    return Err("user: required with password".into());
                }
                let from = self.from.as_deref().ok_or("from: required for email")?;
                from.parse::<lettre::message::Mailbox>()
                    .map_err(|e| format!("from: {from:?}: {e}"))?;
                let to = self.to.as_deref().unwrap_or_default();
                if to.is_empty() {
                    return Err("to: at least one recipient".into());
                }
                for t in to {
                    t.parse::<lettre::message::Mailbox>()
                        .map_err(|e| format!("to: {t:?}: {e}"))?;
                }
            }
        }
        if let Some(e) = &self.events {
            if e.is_empty() {
                return Err("events: empty: leave it out for every failure kind".into());
            }
            if e.contains(&EventKind::Test) {
                return Err("events: \"test\" is sent by the test call only".into());
            }
        }
        Ok(())
    }

    /// Whether it receives `kind`.
    pub fn wants(&self, kind: EventKind) -> bool {
        if !self.enabled.unwrap_or(true) {
            return false;
        }
        kind == EventKind::Test
            || match &self.events {
                Some(e) => e.contains(&kind),
                None => EventKind::DEFAULT.contains(&kind),
            }
    }
}

/// The `[[notifications]]` of a coffer.toml, each checked.
pub fn parse_notifications(value: Option<&toml::Value>) -> Result<Vec<NotificationSpec>, String> {
    let Some(v) = value else {
        return Ok(Vec::new());
    };
    let toml::Value::Array(entries) = v else {
        return Err("notifications: write each as [[notifications]]".into());
    };
    let mut out: Vec<NotificationSpec> = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let name = entry
            .get("name")
            .and_then(toml::Value::as_str)
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        let spec: NotificationSpec = entry.clone().try_into().map_err(|e: toml::de::Error| {
            format!("notifications[{i}]{name}: {}", e.message().trim())
        })?;
        spec.check()
            .map_err(|e| format!("notifications[{i}]{name}: {e}"))?;
        if out.iter().any(|o| o.name == spec.name) {
            return Err(format!(
                "notifications[{i}]{name}: another notification has this name"
            ));
        }
        out.push(spec);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<NotificationSpec>, String> {
        let v: toml::Table = toml::from_str(text).unwrap();
        parse_notifications(v.get("notifications"))
    }

    #[test]
    fn webhooks_parse_and_mistakes_name_the_field() {
        let n = parse(
            "[[notifications]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"https://h.example/x\"\n\
             secret = { env = \"S\" }\nevents = [\"backup_failed\", \"backup_succeeded\"]\n",
        )
        .unwrap();
        assert!(n[0].wants(EventKind::BackupSucceeded) && !n[0].wants(EventKind::BackupStale));
        for (text, field) in [
            ("kind = \"webhook\"\nurl = \"ftp://h/x\"", "url"),
            ("kind = \"pager\"\nurl = \"https://h/x\"", "pager"),
            (
                "kind = \"webhook\"\nurl = \"https://h/x\"\nevents = [\"nope\"]",
                "nope",
            ),
            (
                "kind = \"webhook\"\nurl = \"https://h/x\"\nevents = []",
                "events",
            ),
            (
                "kind = \"webhook\"\nurl = \"https://h/x\"\nretries = 3",
                "retries",
            ),
        ] {
            let e = parse(&format!("[[notifications]]\nname = \"ops\"\n{text}\n")).unwrap_err();
            assert!(e.contains(field), "{text}: {e}");
        }
    }
}
