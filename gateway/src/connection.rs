//! One WebSocket connection: a single task that reads client frames, runs
//! each verb, and writes every reply, stored event and live event in order.
//!
//! Work that waits on the database runs elsewhere and comes back through
//! channels: `OK`s from the publisher (unbounded, but at most
//! `max_inflight_events` outstanding, because the task stops reading frames at
//! that point), query results from per-subscription tasks (bounded: a slow
//! client slows only its own queries), and live events from the fanout
//! (bounded: a full queue gets the client kicked). Bookkeeping that must
//! happen however the task ends lives in `Drop` guards.
//!
//! REQ and COUNT handling lives in `connection/req.rs`, NIP-77's in
//! `connection/neg.rs`, live events and gaps in `connection/live.rs`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use nostr_pg_core::hex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::auth;
use crate::http::RequestHead;
use crate::limits::{ConnectionSlot, Pacer};
use crate::live::ConnHandle;
use crate::protocol::{self, ClientMessage, FrameError, Refusal, Target};
use crate::query_task::QueryMsg;
use crate::relay::Relay;
use crate::reply::Prefix;
use crate::shutdown::stopped;
use crate::subscription::{GapOutcome, Sub};

mod live;
mod neg;
mod req;

/// A write that takes longer than this means the client stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(15);
/// Best-effort goodbyes (kick, shutdown) get this long.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(1);
/// Capacity of the channel query tasks stream results through.
const QUERY_QUEUE: usize = 256;
/// Frames written before one flush, when more are ready.
const WRITE_BATCH: usize = 64;
/// Stored queries of one connection that may hold or wait for a pooled
/// database connection at once. The pool is shared by every client: without
/// this, one client pipelining REQs takes all of it and everyone else waits.
/// Further REQs of that client queue behind its own permits.
const QUERIES_PER_CONNECTION: usize = 2;

/// Why the loop ended.
enum End {
    ClientGone,
    Kicked,
    Shutdown,
    Oversized,
    /// The client broke the WebSocket protocol: fail the connection with
    /// this close code (RFC 6455 section 7.4.1) rather than dropping it
    /// silently, so the client can tell why.
    Violation(CloseCode, &'static str),
}

/// Removes the connection's subscriptions from the live index and updates the
/// gauge, however the task ends (return, panic, abort).
struct Registration {
    relay: Arc<Relay>,
    conn: u64,
    _slot: ConnectionSlot,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.relay.fanout.index.remove_conn(self.conn);
        self.relay.metrics.connections_open.fetch_sub(1, Relaxed);
    }
}

struct Session {
    relay: Arc<Relay>,
    handle: Arc<ConnHandle>,
    ip: IpAddr,
    challenge: String,
    /// The host NIP-42 `relay` tags must name.
    auth_host: Option<String>,
    authed: Vec<[u8; 32]>,
    subs: HashMap<Arc<str>, Sub>,
    /// NIP-77 reconciliations, by subscription id (their own namespace).
    negs: HashMap<Arc<str>, neg::NegState>,
    generation: u64,
    inflight: usize,
    ok_tx: mpsc::UnboundedSender<String>,
    query_tx: mpsc::Sender<QueryMsg>,
    /// This connection's share of the database pool (see QUERIES_PER_CONNECTION).
    query_permits: Arc<Semaphore>,
    /// Frames to write after the current step.
    out: Vec<String>,
    /// The message of the last gap in live delivery, for subscriptions whose
    /// fate is decided at their EOSE.
    gap_message: Option<Arc<str>>,
    kick: bool,
}

/// Runs the WebSocket handshake and the session; returns when it is over.
pub async fn serve<S>(
    relay: Arc<Relay>,
    stream: S,
    peer: SocketAddr,
    head: RequestHead,
    slot: ConnectionSlot,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let limits = &relay.config.limits;
    // A small initial read buffer: tungstenite zero-fills it to capacity, so
    // the default 128 KiB would be resident for every idle connection. It
    // still grows for large frames.
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .max_message_size(Some(limits.max_message_length))
        .max_frame_size(Some(limits.max_message_length));
    // Boxed: the handshake's state is large and needed once, while this
    // future lives (at its largest state's size) as long as the connection.
    let mut ws = match Box::pin(tokio_tungstenite::accept_async_with_config(stream, Some(ws_config))).await {
        Ok(ws) => ws,
        Err(e) => {
            tracing::debug!("handshake with {peer} failed: {e}");
            return;
        }
    };
    relay.metrics.connections_total.fetch_add(1, Relaxed);
    relay.metrics.connections_open.fetch_add(1, Relaxed);
    let conn_id = relay.next_conn_id();
    let _registration = Registration {
        relay: Arc::clone(&relay),
        conn: conn_id,
        _slot: slot,
    };
    let (handle, mut live_rx) = ConnHandle::new(conn_id, relay.config.limits.live_queue);
    let (ok_tx, mut ok_rx) = mpsc::unbounded_channel();
    let (query_tx, mut query_rx) = mpsc::channel(QUERY_QUEUE);
    let auth_host = relay
        .relay_host
        .clone()
        .or_else(|| head.header("host").and_then(auth::host_of));
    let mut session = Session {
        relay: Arc::clone(&relay),
        handle: Arc::clone(&handle),
        ip: peer.ip(),
        challenge: auth::new_challenge(),
        auth_host,
        authed: Vec::new(),
        subs: HashMap::new(),
        negs: HashMap::new(),
        generation: 0,
        inflight: 0,
        ok_tx,
        query_tx,
        query_permits: Arc::new(Semaphore::new(QUERIES_PER_CONNECTION)),
        out: Vec::new(),
        gap_message: None,
        kick: false,
    };
    session.out.push(protocol::auth(&session.challenge));
    let max_inflight = relay.config.limits.max_inflight_events;
    let mut pacer = Pacer::new(
        limits.frames_per_second_per_connection,
        limits.frame_burst_per_connection,
        Instant::now(),
    );
    // Set while the pacer holds this socket's next read back.
    let mut paused: Option<tokio::time::Instant> = None;

    let end = loop {
        if flush(&mut ws, &mut session.out).await.is_err() {
            break End::ClientGone;
        }
        if session.kick {
            break End::Kicked;
        }
        tokio::select! {
            biased;
            _ = handle.kicked() => break End::Kicked,
            _ = stopped(&mut stop) => break End::Shutdown,
            Some(frame) = ok_rx.recv() => {
                session.ok_done(frame);
                while session.out.len() < WRITE_BATCH {
                    match ok_rx.try_recv() {
                        Ok(frame) => session.ok_done(frame),
                        Err(_) => break,
                    }
                }
            }
            Some(msg) = query_rx.recv() => {
                session.on_query(msg);
                while session.out.len() < WRITE_BATCH {
                    match query_rx.try_recv() {
                        Ok(msg) => session.on_query(msg),
                        Err(_) => break,
                    }
                }
            }
            Some(msg) = live_rx.recv() => {
                session.on_live(msg);
                while session.out.len() < WRITE_BATCH {
                    match live_rx.try_recv() {
                        Ok(d) => session.on_live(d),
                        Err(_) => break,
                    }
                }
            }
            // The pacer's pause: the next frame is read once it is over.
            _ = tokio::time::sleep_until(paused.unwrap_or_else(tokio::time::Instant::now)), if paused.is_some() => {
                paused = None;
            }
            incoming = ws.next(), if session.inflight < max_inflight && paused.is_none() => {
                paused = pacer.after_frame(Instant::now()).map(tokio::time::Instant::from_std);
                match incoming {
                    None | Some(Ok(Message::Close(_))) => break End::ClientGone,
                    Some(Ok(Message::Text(text))) => session.on_text(text.as_str()).await,
                    Some(Ok(Message::Binary(_))) => {
                        relay.metrics.message("other");
                        session.out.push(Refusal { error: FrameError::Binary, target: Target::Notice }.reply());
                    }
                    Some(Ok(_)) => {} // ping/pong are answered by tungstenite
                    Some(Err(tokio_tungstenite::tungstenite::Error::Capacity(e))) => {
                        tracing::debug!("{peer} sent an oversized message: {e}");
                        break End::Oversized;
                    }
                    Some(Err(e)) => {
                        tracing::debug!("read from {peer} failed: {e}");
                        break violation(&e).map_or(End::ClientGone, |(code, why)| End::Violation(code, why));
                    }
                }
            },
        }
    };

    match end {
        End::ClientGone => {}
        End::Kicked => {
            let mut bye = vec![protocol::notice(
                &Prefix::Error.with("connection too slow to keep up with live events; closing"),
            )];
            bye.extend(
                session
                    .subs
                    .keys()
                    .map(|s| protocol::closed(s, &Prefix::Error.with("connection too slow"))),
            );
            goodbye(&mut ws, bye, CloseCode::Policy, "too slow").await;
        }
        End::Oversized => {
            let limit = relay.config.limits.max_message_length;
            let bye = vec![protocol::notice(
                &Prefix::Invalid.with(format!("message larger than {limit} bytes")),
            )];
            goodbye(&mut ws, bye, CloseCode::Size, "message too large").await;
        }
        End::Violation(code, why) => {
            let bye = vec![protocol::notice(&Prefix::Invalid.with(why))];
            goodbye(&mut ws, bye, code, why).await;
        }
        End::Shutdown => {
            // Pending EVENTs are already in the publisher: wait for their OKs.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while session.inflight > 0 {
                match tokio::time::timeout_at(deadline, ok_rx.recv()).await {
                    Ok(Some(frame)) => session.ok_done(frame),
                    _ => break,
                }
            }
            let mut bye = std::mem::take(&mut session.out);
            bye.extend(
                session
                    .subs
                    .keys()
                    .map(|s| protocol::closed(s, &Prefix::Error.with("relay shutting down"))),
            );
            goodbye(&mut ws, bye, CloseCode::Away, "relay shutting down").await;
        }
    }
    // Dropping the subscriptions cancels their running queries.
    session.subs.clear();
    session.negs.clear();
}

/// The close code for a read error the client caused, if it did: invalid
/// UTF-8 in a text frame is 1007, any other protocol violation (reserved bits
/// such as a compressed frame when no extension was negotiated, unmasked
/// frames, bad opcodes) 1002. I/O errors and resets are not answered.
fn violation(e: &tokio_tungstenite::tungstenite::Error) -> Option<(CloseCode, &'static str)> {
    use tokio_tungstenite::tungstenite::Error;
    match e {
        Error::Utf8(_) => Some((CloseCode::Invalid, "text frame is not valid UTF-8")),
        Error::Protocol(_) => Some((CloseCode::Protocol, "WebSocket protocol violation")),
        _ => None,
    }
}

/// Writes every pending frame, then flushes once.
async fn flush<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    out: &mut Vec<String>,
) -> Result<(), ()> {
    if out.is_empty() {
        return Ok(());
    }
    let frames = std::mem::take(out);
    let write = async {
        for frame in frames {
            ws.feed(Message::text(frame)).await?;
        }
        ws.flush().await
    };
    match tokio::time::timeout(WRITE_TIMEOUT, write).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

/// Best effort: last frames, a close frame, and a short wait for the reply.
async fn goodbye<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    frames: Vec<String>,
    code: CloseCode,
    reason: &str,
) {
    let close = CloseFrame {
        code,
        reason: reason.to_owned().into(),
    };
    let bye = async {
        for frame in frames {
            ws.feed(Message::text(frame)).await?;
        }
        ws.close(Some(close)).await?;
        while let Some(Ok(_)) = ws.next().await {}
        Ok::<(), tokio_tungstenite::tungstenite::Error>(())
    };
    if let Ok(Err(e)) = tokio::time::timeout(GOODBYE_TIMEOUT, bye).await {
        tracing::debug!("closing handshake failed: {e}");
    }
}

impl Session {
    fn ok_done(&mut self, frame: String) {
        self.inflight = self.inflight.saturating_sub(1);
        self.out.push(frame);
    }

    async fn on_text(&mut self, text: &str) {
        let limits = &self.relay.config.limits;
        match protocol::parse_frame(text, limits) {
            Err(refusal) => {
                self.relay.metrics.message("other");
                self.out.push(refusal.reply());
            }
            Ok(ClientMessage::Event { raw }) => {
                self.relay.metrics.message("EVENT");
                // Boxed: an EVENT's path is the largest state of the
                // connection's future, which every idle connection would
                // otherwise keep room for. One allocation per EVENT; REQ,
                // CLOSE and COUNT need none.
                Box::pin(self.on_event(raw)).await;
            }
            Ok(ClientMessage::Req { sub_id, filters }) => {
                self.relay.metrics.message("REQ");
                self.on_req(sub_id, &filters, false);
            }
            Ok(ClientMessage::Count { sub_id, filters }) => {
                self.relay.metrics.message("COUNT");
                self.on_req(sub_id, &filters, true);
            }
            Ok(ClientMessage::Close { sub_id }) => {
                self.relay.metrics.message("CLOSE");
                self.close_sub(&sub_id);
            }
            Ok(ClientMessage::Auth { raw }) => {
                self.relay.metrics.message("AUTH");
                self.on_auth(raw);
            }
            Ok(ClientMessage::NegOpen {
                sub_id,
                filter,
                message,
            }) => {
                self.relay.metrics.message("NEG-OPEN");
                self.on_neg_open(sub_id, filter, message);
            }
            Ok(ClientMessage::NegMsg { sub_id, message }) => {
                self.relay.metrics.message("NEG-MSG");
                self.on_neg_msg(&sub_id, &message);
            }
            Ok(ClientMessage::NegClose { sub_id }) => {
                self.relay.metrics.message("NEG-CLOSE");
                self.on_neg_close(&sub_id);
            }
        }
    }

    /// Answers an EVENT that never reaches the database.
    fn refuse_event(&mut self, raw: &str, message: String) {
        self.relay.metrics.event_result(false, &message);
        self.out.push(match protocol::event_id_of(raw) {
            Some(id) => protocol::ok(&id, false, &message),
            None => protocol::notice(&message),
        });
    }

    async fn on_event(&mut self, raw: &str) {
        let relay = Arc::clone(&self.relay);
        if relay.config.auth.required && self.authed.is_empty() {
            return self.refuse_event(
                raw,
                Prefix::AuthRequired.with("this relay only accepts events from authenticated users"),
            );
        }
        let event = match protocol::check_event(raw, &relay.config.limits) {
            Ok(e) => e,
            Err(refusal) => {
                relay.metrics.event_result(false, &Prefix::Invalid.with(""));
                self.out.push(refusal.reply());
                return;
            }
        };
        if !relay.ip_limiter.check(&self.ip) {
            return self.refuse_event(
                raw,
                Prefix::RateLimited.with("too many events from your address; slow down"),
            );
        }
        if !relay.pubkey_limiter.check(&event.pubkey) {
            return self.refuse_event(
                raw,
                Prefix::RateLimited.with("too many events from this pubkey; slow down"),
            );
        }
        // NIP-70 needs the author among the authenticated keys; prefer it.
        let auth = if self.authed.contains(&event.pubkey) {
            Some(event.pubkey)
        } else {
            self.authed.first().copied()
        };
        let submission = crate::publisher::Submission {
            raw: raw.to_owned(),
            id: hex::encode(&event.id),
            auth: auth.map(|k| hex::encode(&k)),
            addr: Some(self.ip),
            reply: self.ok_tx.clone(),
            received: Instant::now(),
            event,
        };
        match relay.publisher.submit(submission).await {
            Ok(()) => self.inflight += 1,
            Err(s) => {
                let message = Prefix::Error.with("relay shutting down");
                relay.metrics.event_result(false, &message);
                self.out.push(protocol::ok(&s.id, false, &message));
            }
        }
    }

    fn close_sub(&mut self, sub_id: &str) {
        // Dropping the `Sub` cancels its query.
        if self.subs.remove(sub_id).is_some() {
            self.relay.fanout.index.remove(self.handle.id, sub_id);
        }
    }

    fn on_query(&mut self, msg: QueryMsg) {
        match msg {
            QueryMsg::Stored {
                sub_id,
                generation,
                frame,
            } => {
                if self.sub(&sub_id, generation).is_some_and(|s| s.wants_stored()) {
                    self.out.push(frame);
                }
            }
            QueryMsg::Eose {
                sub_id,
                generation,
                read,
            } => {
                if let Some(sub) = self.sub(&sub_id, generation) {
                    let (buffered, gap) = sub.on_eose(read);
                    self.out.push(protocol::eose(&sub_id));
                    for e in buffered {
                        self.out.push(protocol::event(&sub_id, &e.json));
                    }
                    if gap == GapOutcome::Lost {
                        self.end_lost(&sub_id);
                    }
                }
            }
            QueryMsg::Done {
                sub_id,
                generation,
                frame,
            } => {
                if self.sub(&sub_id, generation).is_some() {
                    self.end_sub(&sub_id, frame);
                }
            }
            QueryMsg::NegOpened {
                sub_id,
                generation,
                session,
                frame,
            } => self.on_neg_opened(&sub_id, generation, session, frame),
            QueryMsg::NegIdle { sub_id, generation } => self.on_neg_idle(&sub_id, generation),
        }
    }

    /// The open subscription `sub_id`, if it is the one of REQ `generation`.
    fn sub(&mut self, sub_id: &str, generation: u64) -> Option<&mut Sub> {
        self.subs.get_mut(sub_id).filter(|s| s.generation == generation)
    }

    /// Ends a subscription from the relay's side with `frame` (CLOSED, or the
    /// answer of a COUNT).
    fn end_sub(&mut self, sub_id: &str, frame: String) {
        if let Some(sub) = self.subs.remove(sub_id) {
            if !sub.is_count() {
                self.relay.fanout.index.remove(self.handle.id, sub_id);
            }
            self.out.push(frame);
        }
    }

    fn on_auth(&mut self, raw: &str) {
        let now = unix_now();
        match auth::verify(
            raw,
            &self.challenge,
            self.auth_host.as_deref(),
            &self.relay.verifier,
            now,
        ) {
            Ok(event) => {
                if !self.authed.contains(&event.pubkey) {
                    self.authed.push(event.pubkey);
                }
                self.out.push(protocol::ok(&hex::encode(&event.id), true, ""));
            }
            Err(e) => {
                let message = Prefix::Invalid.with(e);
                self.out.push(match protocol::event_id_of(raw) {
                    Some(id) => protocol::ok(&id, false, &message),
                    None => protocol::notice(&message),
                });
            }
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_violations_get_their_close_codes() {
        use tokio_tungstenite::tungstenite::error::{Error, ProtocolError};
        assert_eq!(
            violation(&Error::Utf8("x".into())).map(|v| v.0),
            Some(CloseCode::Invalid)
        );
        let reserved = Error::Protocol(ProtocolError::NonZeroReservedBits);
        assert_eq!(violation(&reserved).map(|v| v.0), Some(CloseCode::Protocol));
        assert_eq!(violation(&Error::ConnectionClosed), None);
        let io = Error::Io(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"));
        assert_eq!(violation(&io), None);
    }
}
