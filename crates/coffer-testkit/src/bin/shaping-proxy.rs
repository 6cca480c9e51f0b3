//! The link-shaping proxy as a program, for benchmarks against tools other
//! than Coffer (restic, curl) through the same link:
//!
//!     shaping-proxy --upstream 127.0.0.1:3900 --delay-ms 15 [--rate-mib 50] [--ftp]
//!
//! Prints the address it listens on (127.0.0.1, a free port), then runs
//! until killed.

use std::net::SocketAddr;
use std::time::Duration;

use coffer_testkit::shaping::{Shape, ShapingProxy};

fn main() {
    let mut upstream: Option<SocketAddr> = None;
    let mut shape = Shape::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| fail(&format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--upstream" => {
                upstream = Some(
                    value("--upstream")
                        .parse()
                        .unwrap_or_else(|e| fail(&format!("--upstream: {e}"))),
                );
            }
            "--delay-ms" => {
                let ms: u64 = value("--delay-ms")
                    .parse()
                    .unwrap_or_else(|e| fail(&format!("--delay-ms: {e}")));
                shape.delay_each_way = Duration::from_millis(ms);
            }
            "--rate-mib" => {
                let mib: u64 = value("--rate-mib")
                    .parse()
                    .unwrap_or_else(|e| fail(&format!("--rate-mib: {e}")));
                shape.rate = Some(mib * 1024 * 1024);
            }
            "--ftp" => shape.ftp = true,
            other => fail(&format!("unknown argument {other}")),
        }
    }
    let upstream = upstream.unwrap_or_else(|| fail("--upstream is required"));
    let proxy = ShapingProxy::start(upstream, shape);
    println!("{}", proxy.addr());
    loop {
        std::thread::park();
    }
}

fn fail(message: &str) -> ! {
    eprintln!(
        "shaping-proxy: {message}\nusage: shaping-proxy --upstream ADDR [--delay-ms MS] [--rate-mib MIB] [--ftp]"
    );
    std::process::exit(2)
}
