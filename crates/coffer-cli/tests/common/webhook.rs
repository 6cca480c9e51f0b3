//! A webhook receiver for notification tests, and moving the fake clock
//! while the scheduler catches up.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Server;
use super::schedule::{FakeClock, settle, t};

/// One request the receiver got: its headers (lower-case names) and body.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A webhook receiver on 127.0.0.1: answers 500 to its first request (so a
/// retry delivers it), 200 to the others.
pub struct Receiver {
    pub url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    /// A receiver that fails its first request.
    pub fn start() -> Self {
        Self::start_with(true)
    }

    /// A receiver that answers 200 to every request.
    pub fn start_ok() -> Self {
        Self::start_with(false)
    }

    fn start_with(fail_first: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&got);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut headers = Vec::new();
                let mut line = String::new();
                reader.read_line(&mut line).unwrap_or_default();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = line.trim().split_once(':') {
                        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
                    }
                }
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k == "content-length")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap_or_default();
                let n = {
                    let mut g = seen.lock().unwrap();
                    g.push(Received { headers, body });
                    g.len()
                };
                let status = if n == 1 && fail_first {
                    "500 Internal Server Error"
                } else {
                    "200 OK"
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                );
            }
        });
        Self { url, got }
    }

    pub fn all(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `n` requests arrived; then makes sure no more come.
    pub fn exactly(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.all().len() < n {
            assert!(
                Instant::now() < deadline,
                "{n} requests expected: {:#?}",
                self.all()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        let all = self.all();
        assert_eq!(
            all.len(),
            n,
            "{:#?}",
            all.iter().map(Received::json).collect::<Vec<_>>()
        );
        all
    }
}

/// Sets the fake clock to `at` and waits until the scheduler has caught
/// up and no scheduled backup runs.
pub fn set_clock(srv: &Server, file: &Path, at: &str) {
    let clock = FakeClock {
        path: file.to_path_buf(),
    };
    clock.set(t(at));
    settle(srv, t(at));
}
