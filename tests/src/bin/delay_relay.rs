//! A TCP relay that delays each direction by a fixed time (see
//! `e2e::delay`): the latency of a link between two test hosts.
//!
//! `delay_relay --listen ADDR:PORT --upstream ADDR:PORT --delay-ms N`
//!
//! Prints `listening on ADDR:PORT` once it accepts connections, then relays
//! until killed.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use e2e::arg;

fn die(msg: &str) -> ! {
    eprintln!("delay_relay: {msg}\nusage: delay_relay --listen ADDR:PORT --upstream ADDR:PORT --delay-ms N");
    std::process::exit(2)
}

fn main() {
    let addr = |name: &str| -> SocketAddr {
        arg(name)
            .unwrap_or_else(|| die(&format!("{name} is required")))
            .parse()
            .unwrap_or_else(|e| die(&format!("{name}: {e}")))
    };
    let (listen, upstream) = (addr("--listen"), addr("--upstream"));
    let delay_ms: u64 = arg("--delay-ms")
        .unwrap_or_else(|| die("--delay-ms is required"))
        .parse()
        .unwrap_or_else(|e| die(&format!("--delay-ms: {e}")));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| die(&format!("runtime: {e}")));
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let mut out = std::io::stdout();
        writeln!(out, "listening on {}", listener.local_addr()?)?;
        out.flush()?;
        e2e::delay::serve(listener, upstream, Duration::from_millis(delay_ms)).await
    });
    if let Err(e) = result {
        die(&e.to_string());
    }
}
