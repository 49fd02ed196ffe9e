//! The entry point: [`run`] serves one listener until `shutdown` resolves.
//! Everything a gateway owns (pool, publisher, fanout, metrics, limits) lives
//! in one [`Relay`] value, so several gateways can run in one process.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use nostr_pg_core::Verifier;
use thiserror::Error;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::Config;
use crate::connection;
use crate::db::{Db, DbError};
use crate::fanout::{self, SubIndex};
use crate::http;
use crate::limits::{ConnectionCounter, KeyedLimiter};
use crate::metrics::Metrics;
use crate::publisher::Publisher;

/// How long connections get to flush their pending OKs and close on shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long a client may take to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum ServerError {
    #[error("{0}")]
    Db(#[from] DbError),
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
}

/// State shared by every connection of one gateway.
pub struct Relay {
    pub config: Config,
    pub db: Db,
    pub metrics: Arc<Metrics>,
    pub index: Arc<SubIndex>,
    pub publisher: Publisher,
    pub verifier: Verifier,
    pub ip_limiter: KeyedLimiter<IpAddr>,
    pub pubkey_limiter: KeyedLimiter<[u8; 32]>,
    pub req_limiter: KeyedLimiter<IpAddr>,
    pub connections: Arc<ConnectionCounter>,
    /// The NIP-11 document, serialised once.
    pub info_json: String,
    /// The host NIP-42 `relay` tags must name, when `relay_url` is configured.
    pub relay_host: Option<String>,
    next_conn: AtomicU64,
}

impl Relay {
    pub fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Relaxed)
    }
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
    let metrics = Arc::new(Metrics::new());
    let index = Arc::new(SubIndex::new());
    let (publisher, publisher_task) = Publisher::start(db.clone(), Arc::clone(&metrics), config.publish.clone());
    let (stop_tx, stop_rx) = watch::channel(false);
    let listener_task = tokio::spawn(fanout::run_listener(
        db.clone(),
        Arc::clone(&index),
        Arc::clone(&metrics),
        stop_rx.clone(),
    ));
    let l = &config.limits;
    let relay = Arc::new(Relay {
        ip_limiter: KeyedLimiter::new(l.events_per_second_per_ip, l.event_burst_per_ip),
        pubkey_limiter: KeyedLimiter::new(l.events_per_second_per_pubkey, l.event_burst_per_pubkey),
        req_limiter: KeyedLimiter::new(l.reqs_per_second_per_ip, l.req_burst_per_ip),
        connections: Arc::new(ConnectionCounter::new(l.max_connections, l.max_connections_per_ip)),
        info_json: http::relay_info(&config).to_string(),
        relay_host: crate::auth::host_of(&config.relay_url),
        verifier: Verifier::new(),
        next_conn: AtomicU64::new(1),
        config,
        db,
        metrics,
        index,
        publisher,
    });

    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tasks.spawn(serve_socket(Arc::clone(&relay), stream, peer, stop_rx.clone()));
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
    Ok(())
}

/// Resolves once the shutdown flag is set (or its sender is gone).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which also means stop.
    let _ = stop.wait_for(|s| *s).await;
}

/// One accepted socket: plain HTTP or a WebSocket session.
async fn serve_socket(relay: Arc<Relay>, mut stream: TcpStream, peer: SocketAddr, stop: watch::Receiver<bool>) {
    // Without it, small replies (OK, EOSE) wait ~40 ms for a delayed ACK.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!("TCP_NODELAY failed for {peer}: {e}");
    }
    let (head, bytes) = match http::read_head(&mut stream, HEAD_TIMEOUT).await {
        Ok(pair) => pair,
        Err(http::HttpError::Eof | http::HttpError::Timeout | http::HttpError::Io(_)) => return,
        Err(e) => {
            if let Err(io) = http::write_response(&mut stream, &http::error_response(&e), false).await {
                tracing::debug!("error response to {peer} failed: {io}");
            }
            return;
        }
    };
    if !head.is_websocket_upgrade() {
        let response = http::respond(&head, &relay.info_json, &relay.db, &relay.metrics).await;
        if let Err(e) = http::write_response(&mut stream, &response, head.method == "HEAD").await {
            tracing::debug!("HTTP response to {peer} failed: {e}");
        }
        return;
    }
    let slot = match relay.connections.acquire(peer.ip()) {
        Ok(slot) => slot,
        Err(why) => {
            relay.metrics.connections_refused.fetch_add(1, Relaxed);
            let response = http::Response {
                status: 503,
                content_type: "text/plain",
                body: format!("too many connections ({why:?})\n"),
            };
            if let Err(e) = http::write_response(&mut stream, &response, false).await {
                tracing::debug!("refusal to {peer} failed: {e}");
            }
            return;
        }
    };
    let stream = http::Prefixed::new(bytes, stream);
    connection::serve(relay, stream, peer, head, slot, stop).await;
}
