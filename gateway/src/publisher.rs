//! Batched publishing. EVENTs from every connection meet in one queue; the
//! batcher sends up to `batch_max_events` of them, or whatever arrived within
//! `batch_window_us` of the first, to `nostr.publish_batch` in one round trip
//! and one commit. Each client then gets its own `OK`, carrying the message the
//! extension wrote. Batching is what keeps commits (and their NOTIFY, whose
//! lock is held through the fsync) from serialising under load.
//!
//! Once a batch has committed, its new events go straight to this gateway's
//! live subscribers under the batch's transaction id (see `fanout`), without
//! waiting for the notification and reading them back.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

use nostr_pg_core::{batch, Event};

use crate::config::PublishConfig;
use crate::db::{BatchOutcome, Db, DbError};
use crate::fanout::Fanout;
use crate::metrics::Metrics;
use crate::protocol;

/// One EVENT waiting for its batch.
#[derive(Debug)]
pub struct Submission {
    /// The event JSON exactly as the client sent it.
    pub raw: String,
    /// The event id as parsed by the gateway, for replies when the database
    /// cannot name it.
    pub id: String,
    /// The event as the gateway parsed it, for live delivery once stored.
    pub event: Event,
    /// The NIP-42 pubkey of the sending connection, for NIP-70.
    pub auth: Option<String>,
    /// The client's address (through trusted proxies), for blocked
    /// addresses and the write policy.
    pub addr: Option<IpAddr>,
    /// Where the finished `OK` frame goes.
    pub reply: mpsc::UnboundedSender<String>,
    /// When the gateway read the EVENT, for the OK latency metric.
    pub received: Instant,
}

/// The handle connections submit through; the batcher stops when every
/// handle is dropped, after finishing the batches already in flight.
#[derive(Clone)]
pub struct Publisher {
    tx: mpsc::Sender<Submission>,
}

impl Publisher {
    pub fn start(
        db: Db,
        fanout: Arc<Fanout>,
        metrics: Arc<Metrics>,
        settings: PublishConfig,
    ) -> (Publisher, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(settings.batch_max_events.saturating_mul(8).max(64));
        let sink = Sink { db, fanout, metrics };
        let task = tokio::spawn(batch_loop(rx, sink, settings));
        (Publisher { tx }, task)
    }

    /// Queues an event; waits when the queue is full (back-pressure on the
    /// sending connection). Gives the submission back if the batcher is gone.
    pub async fn submit(&self, s: Submission) -> Result<(), Submission> {
        self.tx.send(s).await.map_err(|e| e.0)
    }
}

/// Where batches go.
struct Sink {
    db: Db,
    fanout: Arc<Fanout>,
    metrics: Arc<Metrics>,
}

async fn batch_loop(mut rx: mpsc::Receiver<Submission>, sink: Sink, settings: PublishConfig) {
    let sink = Arc::new(sink);
    let window = std::time::Duration::from_micros(settings.batch_window_us);
    let max = settings.batch_max_events;
    let slots = Arc::new(Semaphore::new(settings.max_concurrent_batches));
    while let Some(first) = rx.recv().await {
        let mut batch = Vec::with_capacity(max.min(64));
        batch.push(first);
        let deadline = tokio::time::Instant::now() + window;
        while batch.len() < max {
            match rx.try_recv() {
                Ok(s) => {
                    batch.push(s);
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(s)) => batch.push(s),
                Ok(None) | Err(_) => break,
            }
        }
        let permit = match Arc::clone(&slots).acquire_owned().await {
            Ok(p) => p,
            Err(_) => break,
        };
        let sink = Arc::clone(&sink);
        tokio::spawn(async move {
            publish(&sink, batch).await;
            drop(permit);
        });
    }
    // Wait for the batches in flight, so their OKs are sent before shutdown.
    let all = u32::try_from(settings.max_concurrent_batches).unwrap_or(u32::MAX);
    let drained = slots.acquire_many(all).await;
    drop(drained);
}

async fn publish(sink: &Sink, batch: Vec<Submission>) {
    let metrics = &sink.metrics;
    let started = Instant::now();
    let raws: Vec<String> = batch.iter().map(|s| s.raw.clone()).collect();
    let auths: Vec<Option<String>> = batch.iter().map(|s| s.auth.clone()).collect();
    let addrs: Vec<Option<IpAddr>> = batch.iter().map(|s| s.addr).collect();
    let result = sink.db.publish_batch(&raws, &auths, &addrs).await;
    metrics.publish_seconds.observe_duration(started.elapsed());
    metrics.publish_batch_size.observe(batch.len() as f64);
    match result {
        Ok(BatchOutcome { rows, xid }) => {
            if let Some(xid) = xid {
                sink.fanout.deliver_with(xid, || {
                    batch
                        .iter()
                        .zip(&rows)
                        .filter(|(_, row)| row.is_new())
                        .map(|(s, _)| (s.event.clone(), s.event.canonical_json()))
                        .collect::<Vec<_>>()
                });
            }
            let total = batch.len();
            let mut deferred = Vec::new();
            let mut rows = rows.into_iter();
            for s in batch {
                match rows.next() {
                    Some(row) if batch::is_deferred(&row.message) && total > 1 => deferred.push(s),
                    Some(row) => {
                        let id = if row.id.is_empty() {
                            s.id.as_str()
                        } else {
                            row.id.as_str()
                        };
                        answer(metrics, &s, id, row.accepted, &row.message);
                    }
                    None => {
                        let e = DbError::Protocol("publish_batch returned fewer rows than events".into());
                        answer(metrics, &s, &s.id, false, &e.reply());
                    }
                }
            }
            // The batch held as many locks as the extension allows one batch
            // (`nostr.max_locks_per_batch`) before reaching these: send them
            // again. The extension always takes a batch's first event, so
            // each round is smaller; a batch of one is answered as it is.
            if !deferred.is_empty() {
                metrics
                    .events_deferred
                    .fetch_add(deferred.len() as u64, Ordering::Relaxed);
                Box::pin(publish(sink, deferred)).await;
            }
        }
        // A statement error fails the whole batch; retry one by one so a
        // single poisonous event cannot take its batch-mates down with it.
        Err(DbError::Sql { .. }) if batch.len() > 1 => {
            metrics.db_errors.fetch_add(1, Ordering::Relaxed);
            for s in batch {
                Box::pin(publish(sink, vec![s])).await;
            }
        }
        Err(e) => {
            metrics.db_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("publish_batch of {} events failed: {e}", batch.len());
            let message = e.reply();
            for s in batch {
                answer(metrics, &s, &s.id, false, &message);
            }
        }
    }
}

fn answer(metrics: &Metrics, s: &Submission, id: &str, accepted: bool, message: &str) {
    // A shadow-rejected event is answered as a plain success.
    let message = if crate::reply::is_shadow(message) { "" } else { message };
    metrics.event_result(accepted, message);
    metrics.event_ok_seconds.observe_duration(s.received.elapsed());
    // The connection may be gone; its OK has nobody to go to.
    if s.reply.send(protocol::ok(id, accepted, message)).is_err() {
        tracing::debug!("OK for {id} dropped: connection closed");
    }
}
