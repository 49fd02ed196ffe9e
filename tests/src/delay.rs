//! A TCP relay that holds every chunk for a fixed time in each direction,
//! order kept: the latency of a network link, in userspace. (Kernels without
//! `sch_netem` cannot add it with `tc`; this one can be put on any path.)
//!
//! Each accepted connection gets its own connection upstream. Per direction,
//! a reader stamps each chunk with the time it may leave and a writer sends
//! it then, so a steady stream keeps flowing (the delay is not paid once per
//! round trip of the relay's own reads). End of stream is passed on after
//! the data before it; an error on either side closes both.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Chunks in flight per direction before the reader waits (back-pressure).
const IN_FLIGHT: usize = 1024;

/// Accepts connections on `listener` forever, relaying each to `upstream`
/// with `delay` each way.
pub async fn serve(listener: TcpListener, upstream: SocketAddr, delay: Duration) -> std::io::Result<()> {
    loop {
        let (client, _) = listener.accept().await?;
        tokio::spawn(async move {
            if let Err(e) = relay(client, upstream, delay).await {
                eprintln!("delay relay to {upstream}: {e}");
            }
        });
    }
}

async fn relay(client: TcpStream, upstream: SocketAddr, delay: Duration) -> std::io::Result<()> {
    let server = TcpStream::connect(upstream).await?;
    // Small protocol messages must not wait for Nagle on top of the delay.
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = tokio::spawn(one_way(cr, sw, delay));
    let down = tokio::spawn(one_way(sr, cw, delay));
    let (up_abort, down_abort) = (up.abort_handle(), down.abort_handle());
    // A direction that failed takes the other with it (dropping its halves
    // closes the sockets); one that ended cleanly leaves the other running.
    tokio::select! {
        r = up => if !matches!(r, Ok(Ok(()))) { down_abort.abort() },
        r = down => if !matches!(r, Ok(Ok(()))) { up_abort.abort() },
    }
    Ok(())
}

async fn one_way(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Duration) -> std::io::Result<()> {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(IN_FLIGHT);
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            to.write_all(&chunk).await?;
        }
        to.shutdown().await
    };
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = from.read(&mut buf).await?;
            if n == 0 {
                return Ok::<(), std::io::Error>(());
            }
            let chunk = buf.get(..n).map(<[u8]>::to_vec).unwrap_or_default();
            if tx.send((Instant::now() + delay, chunk)).await.is_err() {
                return Ok(());
            }
        }
    };
    // The first error ends both (a reader blocked on an idle socket must
    // not keep a failed writer's connection open).
    tokio::try_join!(reader, writer).map(|_| ())
}
