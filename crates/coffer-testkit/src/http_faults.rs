//! An HTTP/1.1 proxy in front of a real S3 server (Garage) that answers
//! chosen requests itself with an S3 error (`503 SlowDown`, `500
//! InternalError`, …) or cuts a response midway — the faults an object
//! store gives under load that Garage will not give on demand. Everything
//! else goes to the server untouched.
//!
//! It reads each request's head and body (by `Content-Length`; a chunked
//! request passes the rest of its connection through untouched), so it can
//! answer requests on kept-alive connections one by one. Responses are not
//! parsed: clients send a connection's next request only after reading the
//! whole previous response, so an injected answer never interleaves with
//! one being relayed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What the proxy does to requests.
#[derive(Debug, Clone, Default)]
struct Plan {
    /// Answer every n-th request with `status` (0: none).
    every: u64,
    /// Answer this many of the next requests with `status`.
    next: u64,
    /// Answer every request with `status` until healed.
    all: bool,
    /// ... once more than this many requests were seen (0: not armed).
    all_after: u64,
    status: u16,
    code: String,
    /// Cut this many of the next GET responses after `cut_after` bytes.
    cut_gets: u64,
    cut_after: u64,
}

struct State {
    upstream: SocketAddr,
    plan: Mutex<Plan>,
    seen: AtomicU64,
    injected: AtomicU64,
    closed: AtomicBool,
}

/// A running proxy; stops accepting when dropped.
pub struct HttpFaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
}

/// What to do with one request.
enum Action {
    Forward,
    Answer(u16, String),
    Cut(u64),
}

impl HttpFaultProxy {
    /// Starts a proxy on 127.0.0.1 (a free port) to `upstream`.
    pub fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let state = Arc::new(State {
            upstream,
            plan: Mutex::new(Plan::default()),
            seen: AtomicU64::new(0),
            injected: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        });
        let st = Arc::clone(&state);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if st.closed.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let st = Arc::clone(&st);
                std::thread::spawn(move || serve(&st, client));
            }
        });
        Self { addr, state }
    }

    /// The address clients should use.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn plan(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.state.plan.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Answers every `n`-th request with `status` and the S3 error `code`.
    pub fn fail_every(&self, n: u64, status: u16, code: &str) {
        let mut p = self.plan();
        (p.every, p.status, p.code) = (n, status, code.to_owned());
    }

    /// Answers the next `n` requests with `status` and `code`.
    pub fn fail_next(&self, n: u64, status: u16, code: &str) {
        let mut p = self.plan();
        (p.next, p.status, p.code) = (n, status, code.to_owned());
    }

    /// Answers every request with `status` and `code` until [`Self::heal`].
    pub fn fail_all(&self, status: u16, code: &str) {
        let mut p = self.plan();
        (p.all, p.status, p.code) = (true, status, code.to_owned());
    }

    /// Answers every request after the next `n` with `status` and `code`
    /// until [`Self::heal`].
    pub fn fail_all_after(&self, n: u64, status: u16, code: &str) {
        let seen = self.state.seen.load(Ordering::SeqCst);
        let mut p = self.plan();
        (p.all_after, p.status, p.code) = (seen + n, status, code.to_owned());
    }

    /// Cuts the next `n` GET responses after `bytes` bytes (the connection
    /// closes with the body short of its `Content-Length`).
    pub fn cut_next_gets(&self, n: u64, bytes: u64) {
        let mut p = self.plan();
        (p.cut_gets, p.cut_after) = (n, bytes);
    }

    /// Forwards everything again.
    pub fn heal(&self) {
        *self.plan() = Plan::default();
    }

    /// How many requests were answered or cut by the proxy.
    pub fn injected(&self) -> u64 {
        self.state.injected.load(Ordering::SeqCst)
    }
}

impl Drop for HttpFaultProxy {
    fn drop(&mut self) {
        self.state.closed.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees `closed`.
        let _ = TcpStream::connect(self.addr);
    }
}

impl State {
    fn decide(&self, method: &str) -> Action {
        let n = self.seen.fetch_add(1, Ordering::SeqCst) + 1;
        let mut p = self.plan.lock().unwrap_or_else(|e| e.into_inner());
        let fail = p.all
            || (p.all_after > 0 && n > p.all_after)
            || p.next > 0
            || (p.every > 0 && n.is_multiple_of(p.every));
        if fail {
            p.next = p.next.saturating_sub(1);
            self.injected.fetch_add(1, Ordering::SeqCst);
            return Action::Answer(p.status, p.code.clone());
        }
        if method == "GET" && p.cut_gets > 0 {
            p.cut_gets -= 1;
            self.injected.fetch_add(1, Ordering::SeqCst);
            return Action::Cut(p.cut_after);
        }
        Action::Forward
    }
}

/// A request's head as read, and what the proxy needs of it.
struct Head {
    raw: Vec<u8>,
    method: String,
    length: u64,
    chunked: bool,
}

fn read_head(r: &mut impl BufRead) -> Option<Head> {
    let mut raw = Vec::new();
    loop {
        let before = raw.len();
        let n = r.read_until(b'\n', &mut raw).ok()?;
        if n == 0 {
            return None;
        }
        if &raw[before..] == b"\r\n" {
            break;
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let method = text.split(' ').next().unwrap_or_default().to_owned();
    let mut length = 0;
    let mut chunked = false;
    for line in text.lines().skip(1) {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        match k.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = v.trim().parse().unwrap_or(0),
            "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
            _ => {}
        }
    }
    Some(Head {
        raw,
        method,
        length,
        chunked,
    })
}

fn s3_error(status: u16, code: &str) -> Vec<u8> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
         <Message>injected by the test proxy</Message><RequestId>fault</RequestId></Error>"
    );
    format!(
        "HTTP/1.1 {status} Injected\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
         x-amz-request-id: fault\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn serve(st: &State, client: TcpStream) {
    let Ok(mut to_client) = client.try_clone() else {
        return;
    };
    let mut from_client = BufReader::new(client);
    let mut upstream: Option<TcpStream> = None;
    while let Some(head) = read_head(&mut from_client) {
        let mut body = vec![0u8; usize::try_from(head.length).unwrap_or(0)];
        if !head.chunked && from_client.read_exact(&mut body).is_err() {
            break;
        }
        match if head.chunked {
            Action::Forward
        } else {
            st.decide(&head.method)
        } {
            Action::Answer(status, code) => {
                if to_client.write_all(&s3_error(status, &code)).is_err() {
                    break;
                }
            }
            Action::Cut(after) => {
                cut_response(st, &head, &body, &mut to_client, after);
                break;
            }
            Action::Forward => {
                if upstream.is_none() {
                    let Ok(up) = TcpStream::connect(st.upstream) else {
                        break;
                    };
                    let (Ok(mut up_read), Ok(mut back)) = (up.try_clone(), to_client.try_clone())
                    else {
                        break;
                    };
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut up_read, &mut back);
                        let _ = back.shutdown(Shutdown::Write);
                    });
                    upstream = Some(up);
                }
                let Some(up) = upstream.as_mut() else { break };
                if up.write_all(&head.raw).is_err() || up.write_all(&body).is_err() {
                    break;
                }
                if head.chunked {
                    // The rest of the connection goes through untouched.
                    let _ = std::io::copy(&mut from_client, up);
                    break;
                }
            }
        }
    }
    if let Some(up) = upstream {
        let _ = up.shutdown(Shutdown::Write);
    }
}

/// Sends one request upstream on its own connection and relays only the
/// first `after` bytes of the answer, then closes the client's connection.
fn cut_response(st: &State, head: &Head, body: &[u8], to_client: &mut TcpStream, after: u64) {
    let Ok(mut up) = TcpStream::connect(st.upstream) else {
        return;
    };
    // The server closes after this one answer, so an answer shorter than
    // `after` ends instead of waiting on a kept-alive connection.
    let _ = up.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    let text = String::from_utf8_lossy(&head.raw);
    let mut raw: String = text
        .split_inclusive("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    raw.truncate(raw.len().saturating_sub(2));
    raw.push_str("Connection: close\r\n\r\n");
    if up.write_all(raw.as_bytes()).is_ok() && up.write_all(body).is_ok() {
        let _ = std::io::copy(&mut (&mut up).take(after), to_client);
    }
    let _ = to_client.shutdown(Shutdown::Both);
    let _ = up.shutdown(Shutdown::Both);
}
