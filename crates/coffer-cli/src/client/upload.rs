//! Multipart uploads (an export into a new installation, a component's
//! native file): streamed from disk, never read into memory, with the
//! whole length announced so the server can refuse an oversized upload
//! before it is sent.

use std::fs::File;
use std::io::{Cursor, Read};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Answer, Client, unreachable, with_auth};
use crate::error::{CliError, CliResult};

/// One part of a `multipart/form-data` body.
pub enum Part<'a> {
    /// A text field (JSON options).
    Text {
        /// The field's name.
        name: &'a str,
        /// Its value.
        value: String,
    },
    /// A file, sent under its own name.
    File {
        /// The field's name.
        name: &'a str,
        /// The file.
        path: &'a Path,
    },
}

/// `POST path` with `parts` as `multipart/form-data`.
pub fn post(client: &Client, path: &str, parts: &[Part]) -> CliResult<Answer> {
    let boundary = boundary();
    let mut body = Body::default();
    for part in parts {
        match part {
            Part::Text { name, value } => body.text(format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )),
            Part::File { name, path } => {
                let opened = File::open(path).and_then(|f| f.metadata().map(|m| (f, m.len())));
                let (file, size) =
                    opened.map_err(|e| CliError::usage(format!("{}: {e}", path.display())))?;
                let filename = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("upload")
                    .replace(['"', '\r', '\n', '\\'], "_");
                body.text(format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                ));
                // `take`: a file that grows while it is sent cannot overrun the announced length.
                body.pieces.push(Box::new(file.take(size)));
                body.length += size;
                body.text("\r\n".to_owned());
            }
        }
    }
    body.text(format!("--{boundary}--\r\n"));
    let length = body.length;
    let body = body.pieces.into_iter().fold(
        Box::new(std::io::empty()) as Box<dyn Read + Send>,
        |a, b| Box::new(a.chain(b)),
    );
    let url = format!("{}{path}", client.url);
    let auth = client.token.as_ref().map(|t| format!("Bearer {t}"));
    let mut response = with_auth(client.agent.post(&url), auth.as_deref())
        .config()
        .timeout_global(None)
        .build()
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .header("Content-Length", length.to_string())
        .send(ureq::SendBody::from_owned_reader(body))
        .map_err(|e| unreachable(&client.url, &e))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(|e| unreachable(&client.url, &e))?;
    if status >= 400 {
        return Err(client.refused(status, &text));
    }
    let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    Ok(Answer { value, text })
}

/// The body's pieces, in order, and their total length.
#[derive(Default)]
struct Body {
    pieces: Vec<Box<dyn Read + Send>>,
    length: u64,
}

impl Body {
    fn text(&mut self, text: String) {
        self.length += text.len() as u64;
        self.pieces.push(Box::new(Cursor::new(text.into_bytes())));
    }
}

/// A boundary no file's bytes will hold by chance.
fn boundary() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("coffer-{nanos:032x}-{:08x}", std::process::id())
}
