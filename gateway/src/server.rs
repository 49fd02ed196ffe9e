//! The entry point: [`run`] serves one listener until `shutdown` resolves.
//! It builds one [`Relay`] (everything a gateway owns), starts the tasks
//! beside the connections (publisher, LISTEN, pool reaping), accepts sockets
//! and shuts everything down in order.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::activity;
use crate::config::Config;
use crate::connection;
use crate::db::replicas::{self, Replicas};
use crate::db::{Db, DbError};
use crate::fanout::{listener, Fanout};
use crate::http;
use crate::limits::ConnectionSlot;
use crate::metrics::Metrics;
use crate::nip86;
use crate::proxy::{self, ProxyHeader};
use crate::publisher::Publisher;
use crate::relay::Relay;
use crate::shutdown::stopped;
use crate::web;

/// How long connections get to flush their pending OKs and close on shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long a client may take to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a new connection waits for `nostr.ip_blocked`.
const IP_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How often idle and old pooled connections are closed.
const REAP_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum ServerError {
    #[error("{0}")]
    Db(#[from] DbError),
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
}

/// The `ws://` URL a listener serves, as printed on startup.
pub fn ws_url(addr: SocketAddr) -> String {
    format!("ws://{addr}")
}

/// Serves `listener` until `shutdown` resolves, then stops accepting, lets
/// connections flush pending OKs and close with a close frame, and returns.
/// The database need not be up: the gateway answers `error:` until it is.
pub async fn run(config: Config, listener: TcpListener, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
    let db = Db::new(&config.database_url, config.database.clone())?;
    let replicas = Arc::new(Replicas::new(
        &config.read_database_urls,
        &config.database,
        config.replicas.clone(),
    )?);
    let metrics = Arc::new(Metrics::new());
    let fanout = Arc::new(Fanout::new(Arc::clone(&metrics)));
    let (publisher, publisher_task) = Publisher::start(
        db.clone(),
        Arc::clone(&fanout),
        Arc::clone(&metrics),
        config.publish.clone(),
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let listener_task = tokio::spawn(listener::run(
        db.clone(),
        Arc::clone(&fanout),
        Arc::clone(&metrics),
        stop_rx.clone(),
    ));
    let reaper_task = tokio::spawn(reap(db.clone(), Arc::clone(&replicas), stop_rx.clone()));
    let replicas_task = tokio::spawn(replicas::watch(Arc::clone(&replicas), db.clone(), stop_rx.clone()));
    let startup = Duration::from_millis(config.database.connect_timeout_ms);
    let relay = Arc::new(Relay::new(
        config,
        db,
        replicas,
        metrics,
        Arc::clone(&fanout),
        publisher,
    ));
    let sampler_task = tokio::spawn(sample_rates(Arc::clone(&relay), stop_rx.clone()));
    // Connections wait (in the listen backlog) until live delivery is ready,
    // so the first clients are served in full; if the database cannot be
    // reached in time, the gateway serves anyway and refuses REQs until it is.
    tokio::pin!(shutdown);
    let stopped_early = tokio::select! {
        ready = tokio::time::timeout(startup, fanout.wait_ready()) => {
            if ready.is_err() {
                tracing::warn!("live delivery not ready after {startup:?}; serving anyway (REQs are refused until it is)");
            }
            false
        }
        _ = &mut shutdown => true,
    };

    let mut tasks = JoinSet::new();
    if !stopped_early {
        accept_until(&listener, &mut shutdown, &relay, &mut tasks, &stop_rx).await;
    }
    tracing::info!("shutting down: {} connections to close", tasks.len());
    drop(listener);
    let _ = stop_tx.send(true);
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        tracing::warn!("connections still open after {SHUTDOWN_GRACE:?}; aborting them");
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    // Dropping the last publisher handle lets the batcher finish and stop.
    drop(relay);
    if let Err(e) = tokio::time::timeout(SHUTDOWN_GRACE, publisher_task).await {
        tracing::warn!("publisher did not stop in time: {e}");
    }
    listener_task.abort();
    reaper_task.abort();
    sampler_task.abort();
    replicas_task.abort();
    Ok(())
}

/// Accepts sockets until `shutdown` resolves; each is served by a task in `tasks`.
async fn accept_until(
    listener: &TcpListener,
    shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    relay: &Arc<Relay>,
    tasks: &mut JoinSet<()>,
    stop_rx: &watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = shutdown.as_mut() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tasks.spawn(serve_socket(Arc::clone(relay), stream, peer, stop_rx.clone()));
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            // Reap finished connection tasks so the set stays small.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
}

/// Closes idle and old pooled connections now and then (the replicas' too).
async fn reap(db: Db, replicas: Arc<Replicas>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(REAP_EVERY) => {
                let n = db.reap() + replicas.reap();
                if n > 0 {
                    tracing::debug!("closed {n} idle or old pooled connections");
                }
            }
            _ = stopped(&mut stop) => return,
        }
    }
}

/// Samples the accepted-events counter for the home page's chart.
async fn sample_rates(relay: Arc<Relay>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(activity::SAMPLE_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let accepted = relay.metrics.events_accepted.load(Relaxed);
                relay.rates.record(std::time::Instant::now(), accepted);
            }
            _ = stopped(&mut stop) => return,
        }
    }
}

/// Whether `nostr.ip_blocked` refuses `ip`. Asked once per connection, so
/// a block (by NIP-86 or in SQL) holds on every gateway from the next
/// connection on; a connection already open stays open. Without an answer
/// (the database is down or slow, or predates the function) the connection
/// is served: it can then do nothing that needs the database anyway.
async fn ip_blocked(relay: &Relay, ip: std::net::IpAddr) -> bool {
    match tokio::time::timeout(IP_CHECK_TIMEOUT, relay.db.ip_blocked(ip)).await {
        Ok(Ok(blocked)) => blocked,
        Ok(Err(e)) => {
            tracing::debug!("could not ask whether {ip} is blocked: {e}");
            false
        }
        Err(_) => {
            tracing::debug!("could not ask whether {ip} is blocked: no answer in {IP_CHECK_TIMEOUT:?}");
            false
        }
    }
}

/// One accepted socket: plain HTTP or a WebSocket session.
///
/// The task's future stays allocated for as long as the connection is open,
/// sized for the largest state it can be in. Admission (the request head,
/// the blocked-address check, plain HTTP answers) runs in a box of its own,
/// freed before the session starts, so an idle WebSocket does not keep room
/// for a NIP-86 body read it will never do (`-Zprint-type-sizes`: 4,976
/// bytes per connection before, 2,040 after, with the handshake and an
/// EVENT's path boxed in `connection`).
async fn serve_socket(relay: Arc<Relay>, stream: TcpStream, peer: SocketAddr, stop: watch::Receiver<bool>) {
    let Some(admitted) = Box::pin(admit(&relay, stream, peer)).await else {
        return;
    };
    connection::serve(
        relay,
        admitted.stream,
        admitted.client,
        admitted.head,
        admitted.slot,
        stop,
    )
    .await;
}

/// A socket that asked for a WebSocket and may have one.
struct Admitted {
    stream: http::Prefixed<TcpStream>,
    client: SocketAddr,
    head: http::RequestHead,
    slot: ConnectionSlot,
}

/// Reads the request head and answers everything but an admitted WebSocket
/// upgrade (plain HTTP, a blocked address, too many connections) itself.
async fn admit(relay: &Arc<Relay>, mut stream: TcpStream, peer: SocketAddr) -> Option<Admitted> {
    // Without it, small replies (OK, EOSE) wait ~40 ms for a delayed ACK.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!("TCP_NODELAY failed for {peer}: {e}");
    }
    // Behind a TCP load balancer, its PROXY header comes first and names
    // the client; it is believed only from a trusted balancer.
    let mut from = peer;
    let start = if relay.config.proxy.protocol {
        match proxy::read_proxy_header(&mut stream, HEAD_TIMEOUT).await {
            Ok((ProxyHeader::Client(client), rest)) if relay.proxies.contains(peer.ip()) => {
                from = client;
                rest
            }
            Ok((_, rest)) => rest,
            Err(e) => {
                tracing::debug!("closing {peer}: {e}");
                return None;
            }
        }
    } else {
        Vec::new()
    };
    let (head, bytes) = match http::read_head(&mut stream, start, HEAD_TIMEOUT).await {
        Ok(pair) => pair,
        Err(http::HttpError::Eof | http::HttpError::Timeout | http::HttpError::Io(_)) => return None,
        Err(e) => {
            if let Err(io) = http::write_response(&mut stream, &http::error_response(&e), false).await {
                tracing::debug!("error response to {peer} failed: {io}");
            }
            return None;
        }
    };
    // A trusted reverse proxy names the client in Forwarded/X-Forwarded-For.
    let headers = head.headers.iter().map(|(n, v)| (n.as_str(), v.as_str()));
    let client = SocketAddr::new(relay.proxies.client_addr(from.ip(), headers), from.port());
    if ip_blocked(relay, client.ip()).await {
        relay.metrics.connections_blocked.fetch_add(1, Relaxed);
        let response = http::Response::new(403, "text/plain", "this address is blocked by the relay\n");
        if let Err(e) = http::write_response(&mut stream, &response, head.method == "HEAD").await {
            tracing::debug!("refusal to {client} failed: {e}");
        }
        return None;
    }
    if !head.is_websocket_upgrade() {
        let body = if head.is_nip86() && head.method == "POST" {
            match http::read_body(&mut stream, &head, &bytes, nip86::MAX_BODY, HEAD_TIMEOUT).await {
                Ok(body) => body,
                Err(http::HttpError::Eof | http::HttpError::Io(_)) => return None,
                Err(e) => {
                    if let Err(io) = http::write_response(&mut stream, &http::error_response(&e), false).await {
                        tracing::debug!("error response to {client} failed: {io}");
                    }
                    return None;
                }
            }
        } else {
            Vec::new()
        };
        let response = web::respond(&head, &body, from.ip(), relay).await;
        if let Err(e) = http::write_response(&mut stream, &response, head.method == "HEAD").await {
            tracing::debug!("HTTP response to {client} failed: {e}");
        }
        return None;
    }
    let slot = match relay.connections.acquire(client.ip()) {
        Ok(slot) => slot,
        Err(why) => {
            relay.metrics.connections_refused.fetch_add(1, Relaxed);
            let response = http::Response::new(503, "text/plain", format!("too many connections ({why:?})\n"));
            if let Err(e) = http::write_response(&mut stream, &response, false).await {
                tracing::debug!("refusal to {client} failed: {e}");
            }
            return None;
        }
    };
    Some(Admitted {
        stream: http::Prefixed::new(bytes, stream),
        client,
        head,
        slot,
    })
}
