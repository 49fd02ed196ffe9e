//! One upstream relay of `mirror`: a reader (the WebSocket subscription,
//! reconnected with exponential backoff) and a writer (batches into
//! `nostr.publish_batch`), joined by a bounded queue of their own. Nothing is
//! shared with the other upstreams but the database: an upstream that floods
//! fills only its own queue, and then its reader stops reading (the relay
//! feels TCP backpressure), and garbage is counted and dropped by its own
//! reader before it costs the database anything.
//!
//! The cursor (where a restart resumes) moves only past events that are
//! committed and that nothing before them is missing from: events of the
//! stored phase (before `EOSE`, which a relay sends newest first) move it at
//! their `EOSE`, live events after it as their batch commits. A restart then
//! asks for `since` = cursor - margin; the margin covers events that arrive
//! live with a slightly older `created_at` than one already stored.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nostr_pg_core::{batch, hex, Event};
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, watch};

use super::mirror_cursor::Cursors;
use super::tally;
use super::upstream::{frame, Incoming, Upstream};
use crate::db::Db;
use crate::limits::lock;
use crate::reply::Prefix;

const SUB: &str = "nostr-pg-admin-mirror";
const SAMPLES: usize = 3;

/// Settings every upstream shares.
#[derive(Debug, Clone)]
pub struct MirrorSettings {
    /// The filter object as given (the cursor's key).
    pub filter: Map<String, Value>,
    pub filter_text: String,
    pub since_margin: i64,
    pub queue: usize,
    pub batch: usize,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    pub connect_timeout: Duration,
}

/// Counters of one upstream, shared with the summaries.
#[derive(Debug, Default)]
pub struct Stats {
    pub url: String,
    pub received: AtomicU64,
    pub accepted: AtomicU64,
    pub duplicate: AtomicU64,
    pub invalid: AtomicU64,
    pub refused: AtomicU64,
    pub reconnects: AtomicU64,
    pub queued: AtomicI64,
    /// Unix time of the last event received (0: none yet).
    pub last_seen: AtomicI64,
    /// The cursor (-1: none yet).
    pub cursor: AtomicI64,
    pub connected: AtomicBool,
    /// The first few reasons per class (invalid, refused, disconnect).
    pub samples: Mutex<BTreeMap<&'static str, Vec<String>>>,
}

impl Stats {
    pub fn new(url: &str) -> Stats {
        Stats {
            url: url.to_owned(),
            cursor: AtomicI64::new(-1),
            ..Stats::default()
        }
    }

    fn sample(&self, class: &'static str, reason: String) {
        let mut s = lock(&self.samples);
        let list = s.entry(class).or_default();
        if list.len() < SAMPLES {
            list.push(reason);
        }
    }

    pub fn json(&self) -> Value {
        let cursor = self.cursor.load(Relaxed);
        let last = self.last_seen.load(Relaxed);
        json!({
            "url": self.url,
            "received": self.received.load(Relaxed),
            "accepted": self.accepted.load(Relaxed),
            "duplicate": self.duplicate.load(Relaxed),
            "invalid": self.invalid.load(Relaxed),
            "refused": self.refused.load(Relaxed),
            "reconnects": self.reconnects.load(Relaxed),
            "connected": self.connected.load(Relaxed),
            "queued": self.queued.load(Relaxed).max(0),
            "last_seen": (last > 0).then_some(last),
            "cursor": (cursor >= 0).then_some(cursor),
            "samples": *lock(&self.samples),
        })
    }

    pub fn line(&self) -> String {
        let last = self.last_seen.load(Relaxed);
        let ago = if last > 0 {
            format!("{} s ago", (unix_now() - last).max(0))
        } else {
            "never".into()
        };
        format!(
            "  {}: received {}, accepted {}, duplicate {}, invalid {}, refused {}, reconnects {}, queued {}, last seen {}{}",
            self.url,
            self.received.load(Relaxed),
            self.accepted.load(Relaxed),
            self.duplicate.load(Relaxed),
            self.invalid.load(Relaxed),
            self.refused.load(Relaxed),
            self.reconnects.load(Relaxed),
            self.queued.load(Relaxed).max(0),
            ago,
            if self.connected.load(Relaxed) { "" } else { " (disconnected)" },
        )
    }
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// What the reader hands the writer.
enum Queued {
    Event {
        raw: String,
        id: String,
        created_at: i64,
        /// Before the subscription's EOSE.
        stored: bool,
    },
    /// Every stored-phase event before this one has been queued.
    Eose,
}

/// Runs one upstream until `stop`; the writer drains what was queued, and
/// the cursor is saved, before this returns.
pub async fn run(
    db: Db,
    cursors: Arc<Cursors>,
    stats: Arc<Stats>,
    s: Arc<MirrorSettings>,
    stop: watch::Receiver<bool>,
) {
    let (tx, rx) = mpsc::channel(s.queue.max(1));
    let reader = tokio::spawn(read(Arc::clone(&stats), Arc::clone(&s), tx, stop));
    write(db, cursors, Arc::clone(&stats), s, rx).await;
    if let Err(e) = reader.await {
        tracing::warn!("mirror reader of {} failed: {e}", stats.url);
    }
}

/// The filter with `since` moved up to the cursor minus the margin.
fn subscription_filter(s: &MirrorSettings, cursor: i64) -> String {
    let mut f = s.filter.clone();
    if cursor >= 0 {
        let from = (cursor - s.since_margin).max(0);
        let since = f.get("since").and_then(Value::as_i64).map_or(from, |own| own.max(from));
        f.insert("since".into(), Value::from(since));
    }
    Value::Object(f).to_string()
}

async fn read(stats: Arc<Stats>, s: Arc<MirrorSettings>, tx: mpsc::Sender<Queued>, mut stop: watch::Receiver<bool>) {
    let mut backoff = s.min_backoff;
    let mut first = true;
    while !*stop.borrow() {
        if !first {
            stats.reconnects.fetch_add(1, Relaxed);
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            backoff = (backoff * 2).min(s.max_backoff);
        }
        first = false;
        let connected = tokio::select! {
            c = tokio::time::timeout(s.connect_timeout, Upstream::connect(&stats.url)) => c,
            _ = stop.wait_for(|s| *s) => return,
        };
        let mut relay = match connected {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                stats.sample("disconnect", e.to_string());
                continue;
            }
            Err(_) => {
                stats.sample("disconnect", "connect timed out".into());
                continue;
            }
        };
        let req = frame("REQ", SUB, &[&subscription_filter(&s, stats.cursor.load(Relaxed))]);
        if let Err(e) = relay.send(req).await {
            stats.sample("disconnect", e.to_string());
            continue;
        }
        stats.connected.store(true, Relaxed);
        let mut eose = false;
        let why = loop {
            let msg = tokio::select! {
                m = relay.recv_text() => m,
                _ = stop.wait_for(|s| *s) => break None,
            };
            let text = match msg {
                Ok(t) => t,
                Err(e) => break Some(e.to_string()),
            };
            let item = match super::upstream::parse(&text) {
                Incoming::Event { sub, raw } if sub == SUB => {
                    stats.received.fetch_add(1, Relaxed);
                    stats.last_seen.store(unix_now(), Relaxed);
                    match checked(raw.get()) {
                        Ok((id, created_at)) => Queued::Event {
                            raw: raw.get().to_owned(),
                            id,
                            created_at,
                            stored: !eose,
                        },
                        Err(why) => {
                            stats.invalid.fetch_add(1, Relaxed);
                            stats.sample("invalid", why);
                            continue;
                        }
                    }
                }
                Incoming::Eose { sub } if sub == SUB => {
                    eose = true;
                    // A healthy connection: the next outage starts over.
                    backoff = s.min_backoff;
                    Queued::Eose
                }
                Incoming::Closed { sub, reason } if sub == SUB => break Some(format!("CLOSED {reason}")),
                Incoming::Other(why) => {
                    stats.invalid.fetch_add(1, Relaxed);
                    stats.sample("invalid", format!("frame: {why}"));
                    continue;
                }
                _ => continue,
            };
            stats.queued.fetch_add(1, Relaxed);
            let sent = tokio::select! {
                r = tx.send(item) => r.is_ok(),
                _ = stop.wait_for(|s| *s) => false,
            };
            if !sent {
                stats.queued.fetch_sub(1, Relaxed);
                break None;
            }
        };
        stats.connected.store(false, Relaxed);
        relay.close().await;
        match why {
            Some(why) => stats.sample("disconnect", why),
            None => return,
        }
    }
}

/// Id (hex) and created_at of an event whose id is the hash of its content;
/// else why not. The signature is left to the database, which checks it.
fn checked(raw: &str) -> Result<(String, i64), String> {
    let event = Event::parse(raw).map_err(|e| e.to_string())?;
    if event.computed_id() != event.id {
        return Err(format!("{}: id does not match the content", hex::encode(&event.id)));
    }
    Ok((hex::encode(&event.id), event.created_at))
}

/// Cursor bookkeeping of the writer.
#[derive(Default)]
struct Marks {
    /// Newest created_at committed in the current stored phase.
    stored_max: Option<i64>,
    /// The cursor as last saved.
    saved: Option<i64>,
}

async fn write(
    db: Db,
    cursors: Arc<Cursors>,
    stats: Arc<Stats>,
    s: Arc<MirrorSettings>,
    mut rx: mpsc::Receiver<Queued>,
) {
    let mut marks = Marks {
        saved: (stats.cursor.load(Relaxed) >= 0).then(|| stats.cursor.load(Relaxed)),
        ..Marks::default()
    };
    while let Some(first) = rx.recv().await {
        let mut items = vec![first];
        while items.len() < s.batch.max(1) {
            match rx.try_recv() {
                Ok(item) => items.push(item),
                Err(_) => break,
            }
        }
        stats.queued.fetch_sub(items.len() as i64, Relaxed);
        let mut cursor = marks.saved;
        let mut events = Vec::new();
        for item in items {
            match item {
                Queued::Event {
                    raw,
                    id,
                    created_at,
                    stored,
                } => {
                    if stored {
                        marks.stored_max = Some(marks.stored_max.map_or(created_at, |m| m.max(created_at)));
                    } else {
                        cursor = Some(cursor.map_or(created_at, |c| c.max(created_at)));
                    }
                    events.push((raw, id));
                }
                Queued::Eose => {
                    // Publishing below commits everything queued before the
                    // EOSE, this batch included, before the cursor is saved.
                    if let Some(m) = marks.stored_max.take() {
                        cursor = Some(cursor.map_or(m, |c| c.max(m)));
                    }
                }
            }
        }
        publish(&db, &stats, events, &s).await;
        if let Some(c) = cursor.filter(|c| Some(*c) != marks.saved) {
            match cursors.save(&stats.url, &s.filter_text, c).await {
                Ok(()) => {
                    marks.saved = Some(c);
                    stats.cursor.store(c, Relaxed);
                }
                Err(e) => tracing::warn!("mirror {}: cannot save the cursor: {e}", stats.url),
            }
        }
    }
}

/// Publishes `events`, retrying while the database is unreachable (the
/// queue behind it fills, and the reader then waits).
async fn publish(db: &Db, stats: &Stats, mut events: Vec<(String, String)>, s: &MirrorSettings) {
    let mut backoff = s.min_backoff;
    while !events.is_empty() {
        let raws: Vec<String> = events.iter().map(|(raw, _)| raw.clone()).collect();
        let auth = vec![None; raws.len()];
        // Relayed events have no client: blocked addresses do not apply.
        let addrs = vec![None; raws.len()];
        let outcome = match db.publish_batch(&raws, &auth, &addrs).await {
            Ok(o) => o,
            Err(e) if e.is_connection() || matches!(e, crate::db::DbError::Busy) => {
                stats.sample("database", e.to_string());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(s.max_backoff);
                continue;
            }
            Err(e) => {
                // A statement error: the batch's events one at a time, so one
                // bad event does not take the others with it.
                if events.len() > 1 {
                    for one in std::mem::take(&mut events) {
                        Box::pin(publish(db, stats, vec![one], s)).await;
                    }
                } else {
                    stats.refused.fetch_add(1, Relaxed);
                    stats.sample("refused", e.to_string());
                }
                return;
            }
        };
        let total = events.len();
        let mut deferred = Vec::new();
        let mut rows = outcome.rows.into_iter();
        for (raw, id) in events {
            let Some(row) = rows.next() else {
                stats.sample("database", "publish_batch returned fewer rows than events".into());
                break;
            };
            if batch::is_deferred(&row.message) && total > 1 {
                deferred.push((raw, id));
                continue;
            }
            match tally::outcome_of(row.accepted, &row.message) {
                tally::ACCEPTED => stats.accepted.fetch_add(1, Relaxed),
                tally::DUPLICATE => stats.duplicate.fetch_add(1, Relaxed),
                p if p == Prefix::Invalid.as_str() => {
                    stats.sample("invalid", format!("{id}: {}", row.message));
                    stats.invalid.fetch_add(1, Relaxed)
                }
                _ => {
                    stats.sample("refused", format!("{id}: {}", row.message));
                    stats.refused.fetch_add(1, Relaxed)
                }
            };
        }
        events = deferred;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(filter: &str) -> MirrorSettings {
        let Ok(Value::Object(filter)) = serde_json::from_str(filter) else {
            panic!("filter")
        };
        MirrorSettings {
            filter,
            filter_text: String::new(),
            since_margin: 60,
            queue: 1,
            batch: 1,
            min_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
            connect_timeout: Duration::from_millis(1),
        }
    }

    #[test]
    fn since_follows_the_cursor_minus_the_margin() {
        let s = settings(r#"{"kinds":[1]}"#);
        assert_eq!(subscription_filter(&s, -1), r#"{"kinds":[1]}"#);
        assert_eq!(subscription_filter(&s, 1000), r#"{"kinds":[1],"since":940}"#);
        let s = settings(r#"{"since":2000}"#);
        assert_eq!(
            subscription_filter(&s, 1000),
            r#"{"since":2000}"#,
            "the filter's own since wins when later"
        );
    }

    #[test]
    fn garbage_is_not_queued() {
        assert!(checked("{}").is_err());
        assert!(checked("not json").is_err());
    }
}
