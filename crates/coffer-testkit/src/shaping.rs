//! A link-shaping TCP proxy: what a remote target looks like from a real
//! deployment — a delay each way (half the round trip) and, optionally, a
//! bandwidth cap shared by all connections in a direction — in front of a
//! real server on 127.0.0.1. Delays are applied per chunk as it passes, so
//! requests in flight overlap as they would on a long link.
//!
//! For plain FTP (`ftp: true`) the passive data connections are carried too:
//! `227` (PASV) and `229` (EPSV) answers are rewritten to a data proxy with
//! the same shape. FTPS cannot be rewritten (its control channel is
//! encrypted): its data connections bypass the shaping.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the link behaves.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shape {
    /// Added to every chunk in each direction (a round trip gains twice this).
    pub delay_each_way: Duration,
    /// Bytes per second in each direction, shared by all connections (none:
    /// uncapped).
    pub rate: Option<u64>,
    /// Rewrite plain FTP's passive-mode answers so data connections are
    /// shaped as well.
    pub ftp: bool,
}

/// A running proxy; stops accepting and cuts its connections when dropped.
pub struct ShapingProxy {
    addr: SocketAddr,
    link: Arc<Link>,
}

/// What all connections of one proxy share.
struct Link {
    shape: Shape,
    /// When each direction's cap lets the next byte through (up, down).
    next_free: [Mutex<Instant>; 2],
    open: Mutex<Vec<TcpStream>>,
    closed: AtomicBool,
}

impl ShapingProxy {
    /// Starts a proxy on 127.0.0.1 (a free port) to `upstream`.
    pub fn start(upstream: SocketAddr, shape: Shape) -> Self {
        let now = Instant::now();
        let link = Arc::new(Link {
            shape,
            next_free: [Mutex::new(now), Mutex::new(now)],
            open: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        });
        let addr = listen(Arc::clone(&link), upstream, shape.ftp);
        Self { addr, link }
    }

    /// The address clients should use.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Cuts every open connection (a reset mid-transfer); new ones are
    /// accepted as before.
    pub fn reset_connections(&self) {
        self.link.cut_all();
    }
}

impl Drop for ShapingProxy {
    fn drop(&mut self) {
        self.link.closed.store(true, Ordering::SeqCst);
        self.link.cut_all();
        // Wake the accept loop so it sees `closed`.
        let _ = TcpStream::connect(self.addr);
    }
}

impl Link {
    fn cut_all(&self) {
        for s in self
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn track(&self, s: &TcpStream) {
        if let Ok(c) = s.try_clone() {
            self.open.lock().unwrap_or_else(|p| p.into_inner()).push(c);
        }
    }

    /// Waits until the cap of `direction` lets `n` more bytes through.
    fn pace(&self, direction: usize, n: usize) {
        let Some(rate) = self.shape.rate.filter(|r| *r > 0) else {
            return;
        };
        let cost = Duration::from_secs_f64(n as f64 / rate as f64);
        let until = {
            let mut next = self.next_free[direction]
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let start = (*next).max(Instant::now());
            *next = start + cost;
            *next
        };
        sleep_until(until);
    }
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// Accepts on a new 127.0.0.1 port, each connection relayed to `upstream`;
/// returns the port's address.
fn listen(link: Arc<Link>, upstream: SocketAddr, ftp_control: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind shaping proxy");
    let addr = listener.local_addr().expect("proxy address");
    std::thread::spawn(move || {
        for client in listener.incoming() {
            if link.closed.load(Ordering::SeqCst) {
                break;
            }
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(upstream) else {
                let _ = client.shutdown(Shutdown::Both);
                continue;
            };
            // The proxy forwards what it reads at once: Nagle's algorithm
            // on its sockets would add stalls (a delayed ACK, 40 ms) that
            // the link it models does not have.
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            link.track(&client);
            link.track(&server);
            relay(&link, client, server, ftp_control);
        }
    });
    addr
}

/// Relays both directions of one connection, each through a delay line.
fn relay(link: &Arc<Link>, client: TcpStream, server: TcpStream, ftp_control: bool) {
    let (Ok(c_read), Ok(s_read)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    pipe(Arc::clone(link), 0, c_read, server, None);
    let rewrite = ftp_control.then(|| Arc::clone(link));
    pipe(Arc::clone(link), 1, s_read, client, rewrite);
}

/// Chunks a direction holds in its delay line (64 KiB each): room for a
/// round trip's worth of a fast link, while a reader that stops reading
/// still stops the sender, as on a real link.
const DELAY_LINE_CHUNKS: usize = 256;

/// One direction: a reader stamps each chunk, a writer delivers it
/// `delay_each_way` later (paced by the cap). With `rewrite`, passive-mode
/// answers are redirected to shaped data proxies. When the receiving side
/// is gone, what the sender still sends is read and dropped: a real peer
/// would answer with a reset, but Linux keeps accepting data on a socket
/// shut down for reading, so a server sending a file the client stopped
/// reading would otherwise block until its timeout.
fn pipe(
    link: Arc<Link>,
    direction: usize,
    mut from: TcpStream,
    mut to: TcpStream,
    rewrite: Option<Arc<Link>>,
) {
    let (tx, rx) = mpsc::sync_channel::<(Instant, Vec<u8>)>(DELAY_LINE_CHUNKS);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let mut pending = Vec::new();
        let mut receiver_gone = false;
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if receiver_gone {
                continue;
            }
            let chunk = match &rewrite {
                None => buf[..n].to_vec(),
                Some(link) => {
                    // Whole lines only: a reply may arrive in pieces.
                    pending.extend_from_slice(&buf[..n]);
                    let Some(end) = pending.iter().rposition(|b| *b == b'\n') else {
                        continue;
                    };
                    let lines: Vec<u8> = pending.drain(..=end).collect();
                    rewrite_passive(link, &lines)
                }
            };
            receiver_gone = tx.send((Instant::now(), chunk)).is_err();
        }
        let _ = from.shutdown(Shutdown::Read);
    });
    std::thread::spawn(move || {
        for (at, chunk) in rx {
            sleep_until(at + link.shape.delay_each_way);
            link.pace(direction, chunk.len());
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// `text` with every `227`/`229` answer pointing at a new shaped proxy of
/// the data address it names.
fn rewrite_passive(link: &Arc<Link>, text: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(text);
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        match passive_target(line) {
            Some((kind, target)) => {
                let proxy = listen(Arc::clone(link), target, false);
                out.push_str(&passive_answer(kind, proxy));
            }
            None => out.push_str(line),
        }
    }
    out.into_bytes()
}

/// A passive-mode answer's kind (227 or 229) and the data address it names
/// (EPSV names a port only: the control connection's host, 127.0.0.1 here).
fn passive_target(line: &str) -> Option<(u16, SocketAddr)> {
    let inside = |l: &str| Some(l[l.find('(')? + 1..l.rfind(')')?].to_owned());
    if line.starts_with("227 ") {
        let nums: Vec<u16> = inside(line)?
            .split(',')
            .map(|n| n.trim().parse().ok())
            .collect::<Option<_>>()?;
        let [a, b, c, d, p1, p2] = nums[..] else {
            return None;
        };
        let addr = format!("{a}.{b}.{c}.{d}:{}", p1 * 256 + p2).parse().ok()?;
        Some((227, addr))
    } else if line.starts_with("229 ") {
        let port: u16 = inside(line)?.trim_matches('|').parse().ok()?;
        Some((229, SocketAddr::from(([127, 0, 0, 1], port))))
    } else {
        None
    }
}

/// The answer of `kind` naming `addr`.
fn passive_answer(kind: u16, addr: SocketAddr) -> String {
    let port = addr.port();
    if kind == 227 {
        let ip = match addr.ip() {
            std::net::IpAddr::V4(v4) => v4.octets(),
            std::net::IpAddr::V6(_) => [127, 0, 0, 1],
        };
        format!(
            "227 Entering Passive Mode ({},{},{},{},{},{}).\r\n",
            ip[0],
            ip[1],
            ip[2],
            ip[3],
            port / 256,
            port % 256
        )
    } else {
        format!("229 Entering Extended Passive Mode (|||{port}|)\r\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passive_answers_are_read_and_rewritten() {
        let (kind, addr) =
            passive_target("227 Entering Passive Mode (127,0,0,1,195,80).\r\n").unwrap();
        assert_eq!((kind, addr), (227, "127.0.0.1:50000".parse().unwrap()));
        let (kind, addr) =
            passive_target("229 Entering Extended Passive Mode (|||40123|)\r\n").unwrap();
        assert_eq!((kind, addr), (229, "127.0.0.1:40123".parse().unwrap()));
        assert_eq!(passive_target("226 Transfer complete.\r\n"), None);
        assert_eq!(passive_target("227 garbage\r\n"), None);
        let proxy: SocketAddr = "127.0.0.1:50001".parse().unwrap();
        assert_eq!(
            passive_answer(227, proxy),
            "227 Entering Passive Mode (127,0,0,1,195,81).\r\n"
        );
        assert_eq!(
            passive_answer(229, proxy),
            "229 Entering Extended Passive Mode (|||50001|)\r\n"
        );
    }

    /// An echo server behind the proxy: bytes come back whole, and a round
    /// trip takes at least the two delays (a lower bound, not a speed).
    #[test]
    fn bytes_pass_whole_and_each_way_is_delayed() {
        let echo = TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream = echo.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in echo.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut r = s.try_clone().unwrap();
                    let mut w = s;
                    let _ = std::io::copy(&mut r, &mut w);
                });
            }
        });
        let shape = Shape {
            delay_each_way: Duration::from_millis(40),
            rate: Some(4 << 20),
            ftp: false,
        };
        let proxy = ShapingProxy::start(upstream, shape);
        let mut c = TcpStream::connect(proxy.addr()).unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let started = Instant::now();
        let mut w = c.try_clone().unwrap();
        let sent = data.clone();
        let writer = std::thread::spawn(move || w.write_all(&sent).unwrap());
        let mut back = vec![0u8; data.len()];
        c.read_exact(&mut back).unwrap();
        writer.join().unwrap();
        assert_eq!(back, data);
        assert!(started.elapsed() >= Duration::from_millis(80));
    }
}
