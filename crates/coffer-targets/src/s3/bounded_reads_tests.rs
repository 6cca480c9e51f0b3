//! Reads against a tiny local HTTP server that lies about bodies: what a
//! real S3 server never does, so a fake is the only way to test it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::*;
use crate::{Storage, StorageErrorKind};

/// What the fake answers to every request.
#[derive(Clone, Copy)]
enum Answer {
    /// This status and `Content-Length`, then `send` bytes (then close).
    Declared { status: u16, length: u64, send: u64 },
    /// This status, a chunked body of `send` bytes, no `Content-Length`.
    Chunked { status: u16, send: u64 },
    /// A `length`-byte object whose first GET breaks off after `cut`
    /// bytes; a ranged GET gets the rest (206), with ETag `"e1"`, or
    /// `"e2"` when `changed` (another object by now).
    Cut {
        length: u64,
        cut: u64,
        changed: bool,
    },
}

/// The byte at `at` of the `Cut` object.
fn byte_at(at: u64) -> u8 {
    (at % 251) as u8
}

/// A one-answer HTTP server on 127.0.0.1; counts the body bytes the client
/// accepted (written without error).
struct Fake {
    addr: SocketAddr,
    written: Arc<AtomicU64>,
}

impl Fake {
    fn start(answer: Answer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let written = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&written);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let count = Arc::clone(&count);
                std::thread::spawn(move || serve(conn, answer, &count));
            }
        });
        Self { addr, written }
    }

    fn written(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }

    fn storage(&self) -> S3Storage {
        S3Storage::new(self.settings()).unwrap()
    }

    fn settings(&self) -> S3Settings {
        let mut s = S3Settings::new(
            &format!("http://{}", self.addr),
            "garage",
            "bucket",
            "key",
            "secret",
        );
        // One attempt: the failures here are about what was read.
        s.retry = RetryPolicy {
            attempts: 1,
            ..RetryPolicy::default()
        };
        s
    }
}

fn serve(mut conn: TcpStream, answer: Answer, written: &AtomicU64) {
    let _ = conn.set_write_timeout(Some(Duration::from_secs(10)));
    // Read the request head; the client sends no body with a GET.
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut range = None;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line == "\r\n" => break,
            Ok(_) => {
                if let Some(r) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    range = r
                        .trim()
                        .split('-')
                        .next()
                        .and_then(|a| a.parse::<u64>().ok());
                }
            }
        }
    }
    let chunk = vec![b'x'; 64 << 10];
    let body = |conn: &mut TcpStream, total: u64, chunked: bool| {
        let mut left = total;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            let ok = if chunked {
                write!(conn, "{n:x}\r\n")
                    .and_then(|()| conn.write_all(&chunk[..n]))
                    .and_then(|()| conn.write_all(b"\r\n"))
            } else {
                conn.write_all(&chunk[..n])
            };
            if ok.is_err() {
                return false;
            }
            written.fetch_add(n as u64, Ordering::SeqCst);
            left -= n as u64;
        }
        true
    };
    match answer {
        Answer::Declared {
            status,
            length,
            send,
        } => {
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
            );
            if conn.write_all(head.as_bytes()).is_ok() {
                body(&mut conn, send, false);
            }
        }
        Answer::Cut {
            length,
            cut,
            changed,
        } => {
            let (from, to, head) = match range {
                None => (
                    0,
                    cut,
                    format!("HTTP/1.1 200 X\r\nContent-Length: {length}\r\nETag: \"e1\"\r\n"),
                ),
                Some(a) => (
                    a,
                    length,
                    format!(
                        "HTTP/1.1 206 X\r\nContent-Length: {}\r\nContent-Range: bytes {a}-{}/{length}\r\nETag: \"{}\"\r\n",
                        length - a,
                        length - 1,
                        if changed { "e2" } else { "e1" }
                    ),
                ),
            };
            let bytes: Vec<u8> = (from..to).map(byte_at).collect();
            let sent = conn
                .write_all(format!("{head}Connection: close\r\n\r\n").as_bytes())
                .and_then(|()| conn.write_all(&bytes));
            if sent.is_ok() {
                written.fetch_add(bytes.len() as u64, Ordering::SeqCst);
            }
        }
        Answer::Chunked { status, send } => {
            let head = format!(
                "HTTP/1.1 {status} X\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            );
            if conn.write_all(head.as_bytes()).is_ok() && body(&mut conn, send, true) {
                let _ = conn.write_all(b"0\r\n\r\n");
            }
        }
    }
    let _ = conn.flush();
}

/// Far more than socket buffers hold: a client that stops reading early
/// makes the fake's writes fail long before this.
const HUGE: u64 = 256 << 20;
/// What a client that stopped at the headers may still have accepted into
/// its socket buffers.
const BUFFERS: u64 = 32 << 20;

#[test]
fn a_range_answer_declaring_more_than_asked_is_refused_unread() {
    let fake = Fake::start(Answer::Declared {
        status: 206,
        length: HUGE,
        send: HUGE,
    });
    let e = fake.storage().get_range("data/pack", 0, 10).unwrap_err();
    assert_eq!(e.kind, StorageErrorKind::Corrupt, "{e}");
    assert!(e.message.contains("10 bytes"), "{e}");
    assert!(
        fake.written() < BUFFERS,
        "the client read {} bytes of a 10-byte range",
        fake.written()
    );
}

#[test]
fn a_range_answer_ignoring_the_range_is_refused_unread() {
    // 200 OK with the whole object instead of 206 with the range.
    let fake = Fake::start(Answer::Declared {
        status: 200,
        length: HUGE,
        send: HUGE,
    });
    let e = fake.storage().get_range("data/pack", 100, 10).unwrap_err();
    assert_eq!(e.kind, StorageErrorKind::Corrupt, "{e}");
    assert!(fake.written() < BUFFERS, "read {} bytes", fake.written());
}

#[test]
fn a_chunked_range_answer_sending_more_than_asked_is_cut_off() {
    let fake = Fake::start(Answer::Chunked {
        status: 206,
        send: HUGE,
    });
    let e = fake.storage().get_range("data/pack", 0, 10).unwrap_err();
    assert_eq!(e.kind, StorageErrorKind::Corrupt, "{e}");
    assert!(e.message.contains("more than"), "{e}");
    assert!(fake.written() < BUFFERS, "read {} bytes", fake.written());
}

#[test]
fn a_whole_object_without_content_length_is_refused_unread() {
    let fake = Fake::start(Answer::Chunked {
        status: 200,
        send: HUGE,
    });
    let e = fake.storage().get("config").unwrap_err();
    assert!(e.message.contains("Content-Length"), "{e}");
    assert!(fake.written() < BUFFERS, "read {} bytes", fake.written());
}

#[test]
fn a_body_shorter_than_declared_fails_clearly() {
    let fake = Fake::start(Answer::Declared {
        status: 200,
        length: 1000,
        send: 400,
    });
    let e = fake.storage().get("config").unwrap_err();
    assert!(e.message.contains("1000"), "{e}");
    let fake = Fake::start(Answer::Declared {
        status: 206,
        length: 10,
        send: 4,
    });
    let e = fake.storage().get_range("data/pack", 0, 10).unwrap_err();
    assert!(e.message.contains("10"), "{e}");
}

#[test]
fn an_honest_answer_is_read() {
    let fake = Fake::start(Answer::Declared {
        status: 206,
        length: 10,
        send: 10,
    });
    assert_eq!(
        fake.storage().get_range("data/pack", 5, 10).unwrap(),
        b"xxxxxxxxxx"
    );
    let fake = Fake::start(Answer::Declared {
        status: 200,
        length: 3,
        send: 3,
    });
    assert_eq!(fake.storage().get("config").unwrap(), b"xxx");
    // An empty object declares `Content-Length: 0` (ureq reports no length
    // for it): read as empty, not refused as of unknown size.
    let fake = Fake::start(Answer::Declared {
        status: 200,
        length: 0,
        send: 0,
    });
    assert_eq!(fake.storage().get("config").unwrap(), b"");
}

/// Reads an opened object to its end.
fn read_opened(fake: &Fake, fallback: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let storage = fake.storage();
    let (_, mut body) = storage
        .client()
        .open("objects/x", fallback)
        .expect("open succeeds: the headers are fine");
    let mut out = Vec::new();
    body.read_to_end(&mut out).map(|_| out)
}

#[test]
fn a_streamed_object_is_exactly_its_declared_or_listed_length() {
    // Without a Content-Length the listed size bounds the body.
    let fake = Fake::start(Answer::Chunked {
        status: 200,
        send: HUGE,
    });
    let e = read_opened(&fake, 10).unwrap_err();
    assert!(e.to_string().contains("more than the 10 bytes"), "{e}");
    assert!(fake.written() < BUFFERS, "read {} bytes", fake.written());

    let fake = Fake::start(Answer::Declared {
        status: 200,
        length: 100,
        send: 40,
    });
    let e = read_opened(&fake, 100).unwrap_err();
    assert!(e.to_string().contains("100"), "{e}");

    let fake = Fake::start(Answer::Chunked {
        status: 200,
        send: 4,
    });
    let e = read_opened(&fake, 10).unwrap_err();
    assert!(e.to_string().contains("6 bytes early"), "{e}");

    // The declared length wins over the listed one (the object may have
    // changed since the listing; the ETag check reports that).
    let fake = Fake::start(Answer::Declared {
        status: 200,
        length: 7,
        send: 7,
    });
    assert_eq!(read_opened(&fake, 3).unwrap(), b"xxxxxxx");
}

#[test]
fn a_body_that_breaks_off_goes_on_from_where_it_stopped_of_the_same_object_only() {
    let length = 3 << 20;
    let fake = Fake::start(Answer::Cut {
        length,
        cut: 1 << 20,
        changed: false,
    });
    let client = S3Client::new(&fake.settings()).unwrap();
    let (head, mut body) = client.open("obj", length).unwrap();
    assert_eq!(head.etag, "\"e1\"");
    let mut got = Vec::new();
    body.read_to_end(&mut got).unwrap();
    assert_eq!(got.len() as u64, length);
    assert!(
        got.iter().enumerate().all(|(i, b)| *b == byte_at(i as u64)),
        "resumed at the right byte"
    );

    // The object changed in between: the rest of another object is refused.
    let fake = Fake::start(Answer::Cut {
        length,
        cut: 1 << 20,
        changed: true,
    });
    let client = S3Client::new(&fake.settings()).unwrap();
    let (_, mut body) = client.open("obj", length).unwrap();
    let e = body.read_to_end(&mut Vec::new()).unwrap_err();
    assert!(e.to_string().contains("the rest of the same object"), "{e}");
}
