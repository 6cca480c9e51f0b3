//! Talking to a Coffer server over its HTTP API: the client commands
//! (`coffer login`, `coffer backup …`) do nothing else, so the server's
//! authorization decides everything they may do.
//!
//! Which server and which credentials: `COFFER_URL` / `COFFER_TOKEN` /
//! `COFFER_CA_FILE` where set, else the context saved by `coffer login`
//! (`--context`, else the current one). A saved token is only ever sent to
//! the URL it was saved for.

pub mod contexts;
pub mod download;
pub mod upload;
pub mod watch;

use std::time::Duration;

use serde_json::Value;
use ureq::tls::{PemItem, RootCerts, TlsConfig};

use crate::error::{CliError, CliResult};
use crate::exit::ExitCode;
use contexts::{Context, Contexts};

/// How long one request may take, connect included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A server's answer: its JSON, and the text it came as (`--json` prints
/// that, unchanged).
#[derive(Debug)]
pub struct Answer {
    /// The parsed body (`null` when empty).
    pub value: Value,
    /// The body as received.
    pub text: String,
}

/// A file coming from the server.
pub struct Stream {
    /// Which byte of the file the body starts at (unknown: a 206 without a
    /// readable `Content-Range`).
    pub starts_at: Option<u64>,
    /// The file's name as the server gives it (`Content-Disposition`),
    /// when it is a plain name.
    pub name: Option<String>,
    /// The bytes.
    pub body: ureq::BodyReader<'static>,
}

/// A connection to one server.
pub struct Client {
    url: String,
    token: Option<String>,
    agent: ureq::Agent,
    /// How to log in again, for the message of a 401.
    relogin: String,
}

/// The TLS settings of a connection.
#[derive(Debug, Clone, Default)]
pub struct Tls {
    /// Trust only this CA (PEM).
    pub ca_file: Option<std::path::PathBuf>,
    /// Check nothing (`--insecure`).
    pub insecure: bool,
}

impl Client {
    /// A client for `url` (checked: `http://` or `https://`, a host).
    pub fn new(url: &str, token: Option<String>, tls: &Tls) -> CliResult<Self> {
        let url = normalize_url(url)?;
        let mut config = TlsConfig::builder().disable_verification(tls.insecure);
        if let Some(ca) = &tls.ca_file {
            config = config.root_certs(read_ca(ca)?);
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .tls_config(config.build())
            .build()
            .into();
        let relogin = format!("coffer login {url}");
        Ok(Self {
            url,
            token,
            agent,
            relogin,
        })
    }

    /// The client of the command's context (see the module's comment).
    pub fn from_context(context: Option<&str>) -> CliResult<Self> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let saved = saved_context(context)?;
        let env_url = env("COFFER_URL").map(|u| normalize_url(&u)).transpose()?;
        // The saved credentials go only to the server they were saved for.
        let saved = match (&env_url, saved) {
            (Some(url), Some((name, ctx))) if *url != ctx.url => {
                if context.is_some() {
                    return Err(CliError::usage(format!(
                        "COFFER_URL ({url}) is not the server of context {name} ({}): unset one",
                        ctx.url
                    )));
                }
                None
            }
            (_, saved) => saved,
        };
        let Some(url) = env_url.or_else(|| saved.as_ref().map(|(_, c)| c.url.clone())) else {
            return Err(CliError::new(
                ExitCode::Unauthorized,
                "not_logged_in",
                "no server: log in with `coffer login URL`, or set COFFER_URL and COFFER_TOKEN",
            ));
        };
        let token =
            env("COFFER_TOKEN").or_else(|| saved.as_ref().and_then(|(_, c)| c.token.clone()));
        let tls = Tls {
            ca_file: env("COFFER_CA_FILE")
                .map(Into::into)
                .or_else(|| saved.as_ref().and_then(|(_, c)| c.ca_file.clone())),
            insecure: saved.as_ref().is_some_and(|(_, c)| c.insecure),
        };
        if tls.insecure {
            eprintln!(
                "coffer: warning: the server's TLS certificate is not checked (logged in with --insecure)"
            );
        }
        let mut client = Self::new(&url, token, &tls)?;
        if let Some((name, _)) = &saved
            && name != "default"
        {
            client.relogin = format!("coffer login {url} --context {name}");
        }
        Ok(client)
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> CliResult<Answer> {
        self.call("GET", path, None)
    }

    /// `POST path` with a JSON body (or none).
    pub fn post(&self, path: &str, body: Option<&Value>) -> CliResult<Answer> {
        self.call("POST", path, body)
    }

    /// `PUT path` with a JSON body.
    pub fn put(&self, path: &str, body: &Value) -> CliResult<Answer> {
        self.call("PUT", path, Some(body))
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> CliResult<Answer> {
        self.call("DELETE", path, None)
    }

    /// `GET path` of a file, from byte `from` on (a `Range` request when
    /// above 0), with no time limit on the body.
    pub fn download(&self, path: &str, from: u64) -> CliResult<Stream> {
        let url = format!("{}{path}", self.url);
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut request = with_auth(self.agent.get(&url), auth.as_deref())
            .config()
            .timeout_global(None)
            .build();
        if from > 0 {
            request = request.header("Range", format!("bytes={from}-"));
        }
        let mut response = request.call().map_err(|e| unreachable(&self.url, &e))?;
        let status = response.status().as_u16();
        if status >= 400 {
            let text = response.body_mut().read_to_string().unwrap_or_default();
            return Err(self.refused(status, &text));
        }
        // `Content-Range: bytes a-b/size`: where the bytes sent start.
        let starts_at = if status == 206 {
            response
                .headers()
                .get("content-range")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes "))
                .and_then(|v| v.split('-').next())
                .and_then(|v| v.parse().ok())
        } else {
            Some(0)
        };
        let name = response
            .headers()
            .get("content-disposition")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split("filename=\"").nth(1))
            .and_then(|v| v.split('"').next())
            .and_then(download::plain_name)
            .map(str::to_owned);
        Ok(Stream {
            starts_at,
            name,
            body: response.into_body().into_reader(),
        })
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> CliResult<Answer> {
        let (status, answer) = self.send(method, path, body)?;
        if status >= 400 {
            return Err(self.refused(status, &answer.text));
        }
        Ok(answer)
    }

    /// `POST path`, the answer whatever its status (only a failure to reach
    /// the server, or a success that is not JSON, is an error): for answers
    /// whose 4xx carries more than a message (a Validate report).
    pub fn post_any(&self, path: &str, body: &Value) -> CliResult<(u16, Answer)> {
        self.send("POST", path, Some(body))
    }

    fn send(&self, method: &str, path: &str, body: Option<&Value>) -> CliResult<(u16, Answer)> {
        let url = format!("{}{path}", self.url);
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let sent = match (method, body) {
            ("GET", _) => with_auth(self.agent.get(&url), auth.as_deref()).call(),
            ("DELETE", _) => with_auth(self.agent.delete(&url), auth.as_deref()).call(),
            ("PUT", body) => with_auth(self.agent.put(&url), auth.as_deref())
                .content_type("application/json")
                .send(body.map_or_else(|| "{}".to_owned(), Value::to_string)),
            (_, Some(body)) => with_auth(self.agent.post(&url), auth.as_deref())
                .content_type("application/json")
                .send(body.to_string()),
            (_, None) => with_auth(self.agent.post(&url), auth.as_deref()).send_empty(),
        };
        let mut response = sent.map_err(|e| unreachable(&self.url, &e))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| unreachable(&self.url, &e))?;
        let value = match serde_json::from_str(&text) {
            _ if text.trim().is_empty() => Value::Null,
            Ok(v) => v,
            // An error's text is shown as it is (see `refused`).
            Err(_) if status >= 400 => Value::Null,
            Err(e) => {
                return Err(CliError::failure(
                    "bad_answer",
                    format!(
                        "{url} answered {status} with something that is not JSON ({e}): is it a Coffer server?"
                    ),
                ));
            }
        };
        Ok((status, Answer { value, text }))
    }

    /// The error for a 4xx/5xx answer: the server's message, the exit code of its status.
    pub fn refused(&self, status: u16, text: &str) -> CliError {
        let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let message = body["message"].as_str().map_or_else(
            || {
                format!(
                    "the server answered {status}: {}",
                    text.chars().take(200).collect::<String>()
                )
            },
            str::to_owned,
        );
        match status {
            401 => {
                let hint = if self.token.is_some() {
                    format!("log in again: {}", self.relogin)
                } else {
                    format!("log in first: {}", self.relogin)
                };
                CliError::new(
                    ExitCode::Unauthorized,
                    "unauthorized",
                    format!("{message} ({hint})"),
                )
            }
            403 => CliError::new(ExitCode::Forbidden, "forbidden", message),
            404 => CliError::new(ExitCode::NotFound, "not_found", message),
            409 => CliError::new(ExitCode::Conflict, "conflict", message),
            422 => CliError::new(ExitCode::Usage, "invalid", message),
            _ => CliError::failure(server_code(body["error"].as_str()), message),
        }
    }
}

fn with_auth<B>(request: ureq::RequestBuilder<B>, auth: Option<&str>) -> ureq::RequestBuilder<B> {
    match auth {
        Some(value) => request.header("Authorization", value),
        None => request,
    }
}

/// The context named (or the current one), with its name.
fn saved_context(name: Option<&str>) -> CliResult<Option<(String, Context)>> {
    let path = contexts::path()?;
    let mut all = Contexts::load(&path)?;
    let Some(name) = name.map(str::to_owned).or_else(|| all.current.clone()) else {
        return Ok(None);
    };
    match all.contexts.remove(&name) {
        Some(ctx) => Ok(Some((name, ctx))),
        None => Err(CliError::usage(format!(
            "no context {name:?} in {}: log in with `coffer login URL --context {name}`",
            path.display()
        ))),
    }
}

/// `url` without a trailing `/`, refused unless `http(s)://host…`.
pub fn normalize_url(url: &str) -> CliResult<String> {
    let trimmed = url.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(['/', '?', '#', '@', ' ']) => {
            Ok(trimmed.to_owned())
        }
        _ => Err(CliError::usage(format!(
            "{url:?} is not a server URL: give http(s)://HOST[:PORT], e.g. https://backup.example.com:8420"
        ))),
    }
}

fn read_ca(path: &std::path::Path) -> CliResult<RootCerts> {
    let pem = std::fs::read(path)
        .map_err(|e| CliError::usage(format!("CA file {}: {e}", path.display())))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => {
                return Err(CliError::usage(format!("CA file {}: {e}", path.display())));
            }
        }
    }
    if certs.is_empty() {
        return Err(CliError::usage(format!(
            "CA file {} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(RootCerts::new_with_certs(&certs))
}

/// One line naming the server and why it could not be reached.
fn unreachable(url: &str, err: &ureq::Error) -> CliError {
    CliError::failure("unreachable", format!("cannot reach {url}: {err}"))
}

/// The code name of a server error without its own exit code.
fn server_code(error: Option<&str>) -> &'static str {
    match error {
        Some("request_timeout") => "request_timeout",
        Some("gone") => "gone",
        Some("payload_too_large") => "payload_too_large",
        Some("too_many_requests") => "too_many_requests",
        Some("upstream") => "upstream",
        Some("insufficient_storage") => "insufficient_storage",
        _ => "server",
    }
}

/// `part` made safe as one segment of a URL path (or a query value).
pub fn segment(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    for b in part.bytes() {
        // Dots too: a segment `..` must not climb.
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_trimmed() {
        assert_eq!(
            normalize_url("https://b.example:8420/").unwrap(),
            "https://b.example:8420"
        );
        assert_eq!(
            normalize_url("http://127.0.0.1:1").unwrap(),
            "http://127.0.0.1:1"
        );
        for bad in [
            "b.example",
            "ftp://b",
            "https://",
            "https://b/api",
            "https://u@b",
            "",
        ] {
            assert!(normalize_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn segments_cannot_climb_or_split() {
        assert_eq!(segment("nightly-3b1c"), "nightly-3b1c");
        assert_eq!(segment("../targets"), "%2E%2E%2Ftargets");
        assert_eq!(segment(".."), "%2E%2E");
        assert_eq!(segment("a?b#c d"), "a%3Fb%23c%20d");
    }
}
