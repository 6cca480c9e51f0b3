//! A TCP proxy for fault injection: it forwards to a real server and can cut
//! connections after a number of uploaded bytes, or stop answering entirely
//! (as if the server went down) and come back. A fake only for what a real
//! server cannot do on demand.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A running proxy; stops accepting when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
}

struct State {
    upstream: SocketAddr,
    down: AtomicBool,
    /// Cut a connection once it has sent this many bytes upstream (0 = never).
    cut_after: AtomicU64,
    /// Go down once this many bytes went upstream in all (0 = never).
    down_after_total: AtomicU64,
    total_up: AtomicU64,
    open: Mutex<Vec<TcpStream>>,
    closed: AtomicBool,
}

impl FaultProxy {
    /// Starts a proxy on 127.0.0.1 (a free port) to `upstream`.
    pub fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let state = Arc::new(State {
            upstream,
            down: AtomicBool::new(false),
            cut_after: AtomicU64::new(0),
            down_after_total: AtomicU64::new(0),
            total_up: AtomicU64::new(0),
            open: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        });
        let st = Arc::clone(&state);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if st.closed.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                if st.down.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(st.upstream) else {
                    continue;
                };
                if let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) {
                    let mut open = st.open.lock().unwrap_or_else(|p| p.into_inner());
                    open.push(c2);
                    open.push(s2);
                }
                spawn_pump(Arc::clone(&st), client, server);
            }
        });
        Self { addr, state }
    }

    /// The address clients should use.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Cut every connection once it has sent `bytes` upstream (0: never).
    pub fn cut_each_connection_after(&self, bytes: u64) {
        self.state.cut_after.store(bytes, Ordering::SeqCst);
    }

    /// Go down once `bytes` more have gone upstream in all connections.
    pub fn go_down_after(&self, bytes: u64) {
        let now = self.state.total_up.load(Ordering::SeqCst);
        self.state
            .down_after_total
            .store(now + bytes, Ordering::SeqCst);
    }

    /// Whether the proxy is down.
    pub fn is_down(&self) -> bool {
        self.state.down.load(Ordering::SeqCst)
    }

    /// Drop every connection and refuse new ones, as a crashed server would.
    pub fn go_down(&self) {
        self.state.go_down();
    }

    /// Answer again.
    pub fn come_back(&self) {
        self.state.down_after_total.store(0, Ordering::SeqCst);
        self.state.cut_after.store(0, Ordering::SeqCst);
        self.state.down.store(false, Ordering::SeqCst);
    }
}

impl State {
    fn go_down(&self) {
        self.down.store(true, Ordering::SeqCst);
        for s in self
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.state.closed.store(true, Ordering::SeqCst);
        self.state.go_down();
        // Wake the accept loop so it sees `closed`.
        let _ = TcpStream::connect(self.addr);
    }
}

fn spawn_pump(st: Arc<State>, client: TcpStream, server: TcpStream) {
    let (Ok(mut c_read), Ok(mut s_write)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let (mut s_read, mut c_write) = (server, client);
    // client → server, counted
    let up = Arc::clone(&st);
    std::thread::spawn(move || {
        let mut sent = 0u64;
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = match c_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if up.down.load(Ordering::SeqCst) {
                break;
            }
            let cut = up.cut_after.load(Ordering::SeqCst);
            let n = if cut > 0 && sent + n as u64 > cut {
                (cut - sent.min(cut)) as usize
            } else {
                n
            };
            if n > 0 && s_write.write_all(&buf[..n]).is_err() {
                break;
            }
            sent += n as u64;
            let total = up.total_up.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
            let limit = up.down_after_total.load(Ordering::SeqCst);
            if limit > 0 && total >= limit {
                up.go_down();
                break;
            }
            if cut > 0 && sent >= cut {
                // The server sees the request end early. Keep reading (and
                // dropping) what the client still sends, so it never blocks
                // on a full socket buffer, until it gives up.
                let _ = s_write.shutdown(Shutdown::Write);
                while matches!(c_read.read(&mut buf), Ok(n) if n > 0) {
                    if up.down.load(Ordering::SeqCst) {
                        break;
                    }
                }
                break;
            }
        }
        let _ = c_read.shutdown(Shutdown::Both);
        let _ = s_write.shutdown(Shutdown::Both);
    });
    // server → client
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut s_read, &mut c_write);
        // Half-close towards the client: it reads the end, while the other
        // pump can still drain what it sends.
        let _ = s_read.shutdown(Shutdown::Read);
        let _ = c_write.shutdown(Shutdown::Write);
    });
}
