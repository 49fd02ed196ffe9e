//! Live fanout: the LISTEN connection, and the in-memory subscription index.
//!
//! Every commit that makes events visible sends one `NOTIFY nostr_events,
//! '<lo>:<hi>'`. Rows do not commit in sequence order, so we never read
//! "everything after the last sequence seen"; we read exactly the range each
//! notification names with `nostr.changes(lo, hi)`. Ranges of concurrent
//! transactions can overlap, so events are deduplicated by id against a
//! bounded set of recent ids. Each event is then matched against the
//! [`SubIndex`] and queued to the subscribers' bounded queues; a subscriber
//! whose queue is full is kicked rather than allowed to grow memory or delay
//! the others.
//!
//! If the LISTEN connection drops (Postgres restarted), it is re-established
//! with backoff. Notifications sent while it was down are lost: subscribers
//! miss the live events committed during the outage (they still get them from
//! a new REQ). That is the documented trade-off of LISTEN/NOTIFY.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use nostr_pg_core::{tags, Event, Filter, Filters};
use tokio::sync::{mpsc, watch, Notify};
use tokio_postgres::{AsyncMessage, NoTls};

use crate::db::{Db, LISTEN};
use crate::metrics::Metrics;

pub type ConnId = u64;

/// Kinds whose reads can be restricted to the people involved (NIP-04 DMs,
/// NIP-59 gift wraps, and kind 1060).
pub const RESTRICTED_KINDS: [u16; 3] = [4, 1059, 1060];

/// A live event, shared by every subscriber it goes to.
#[derive(Debug)]
pub struct LiveEvent {
    pub event: Event,
    /// The canonical JSON, served verbatim.
    pub json: String,
}

/// One queued delivery: which subscription, which event.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub sub_id: Arc<str>,
    pub event: Arc<LiveEvent>,
}

/// The fanout's view of a connection: its live queue and a kill switch.
#[derive(Debug)]
pub struct ConnHandle {
    pub id: ConnId,
    live: mpsc::Sender<Delivery>,
    kicked: AtomicBool,
    kick: Notify,
}

impl ConnHandle {
    pub fn new(id: ConnId, capacity: usize) -> (Arc<ConnHandle>, mpsc::Receiver<Delivery>) {
        let (live, rx) = mpsc::channel(capacity.max(1));
        (
            Arc::new(ConnHandle {
                id,
                live,
                kicked: AtomicBool::new(false),
                kick: Notify::new(),
            }),
            rx,
        )
    }

    /// Marks the connection as too slow; its task closes it.
    pub fn kick(&self) {
        if !self.kicked.swap(true, Relaxed) {
            self.kick.notify_one();
        }
    }

    pub fn is_kicked(&self) -> bool {
        self.kicked.load(Relaxed)
    }

    /// Resolves once the connection has been kicked.
    pub async fn kicked(&self) {
        while !self.is_kicked() {
            self.kick.notified().await;
        }
    }
}

/// Whether an event of a restricted kind involves one of `pubkeys` (as author
/// or as a `p` tag).
pub fn involves(event: &Event, pubkeys: &[[u8; 32]]) -> bool {
    pubkeys.contains(&event.pubkey)
        || event
            .tag_values("p")
            .any(|p| nostr_pg_core::hex::decode_fixed::<32>(p).is_some_and(|k| pubkeys.contains(&k)))
}

/// Whether a subscription with `allowed` (set when reads are restricted) may
/// see `event`.
pub fn visible(event: &Event, allowed: Option<&[[u8; 32]]>) -> bool {
    match allowed {
        Some(keys) if RESTRICTED_KINDS.contains(&event.kind) => involves(event, keys),
        _ => true,
    }
}

type SubKey = (ConnId, Arc<str>);

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum IndexKey {
    Id([u8; 32]),
    Author([u8; 32]),
    Tag(String),
    Kind(u16),
    Scan,
}

struct Entry {
    filters: Filters,
    conn: Arc<ConnHandle>,
    keys: Vec<IndexKey>,
    allowed: Option<Vec<[u8; 32]>>,
}

/// Live subscriptions, indexed so an event is only matched against the
/// subscriptions that could want it: each filter is filed under its most
/// selective field (ids, then authors, then its first tag condition, then
/// kinds), or in a scan list when it has none of them.
#[derive(Default)]
pub struct SubIndex {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    subs: HashMap<SubKey, Entry>,
    by_conn: HashMap<ConnId, HashSet<Arc<str>>>,
    postings: HashMap<IndexKey, HashSet<SubKey>>,
}

fn keys_of(filter: &Filter) -> Vec<IndexKey> {
    if let Some(ids) = &filter.ids {
        ids.iter().map(|id| IndexKey::Id(*id)).collect()
    } else if let Some(authors) = &filter.authors {
        authors.iter().map(|a| IndexKey::Author(*a)).collect()
    } else if let Some(cond) = filter.tags.first() {
        cond.index_keys().into_iter().map(IndexKey::Tag).collect()
    } else if let Some(kinds) = &filter.kinds {
        kinds.iter().map(|k| IndexKey::Kind(*k)).collect()
    } else {
        vec![IndexKey::Scan]
    }
}

impl SubIndex {
    pub fn new() -> SubIndex {
        SubIndex::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds (or replaces) a subscription. `allowed` restricts restricted kinds
    /// to events involving those pubkeys.
    pub fn insert(&self, conn: &Arc<ConnHandle>, sub_id: Arc<str>, filters: Filters, allowed: Option<Vec<[u8; 32]>>) {
        // `never_matches`, not `is_empty_set`: a `limit: 0` filter wants live events.
        let mut keys: Vec<IndexKey> = filters
            .0
            .iter()
            .filter(|f| !f.never_matches())
            .flat_map(keys_of)
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let key: SubKey = (conn.id, sub_id);
        let mut inner = self.write();
        inner.remove_sub(&key);
        for k in &keys {
            inner.postings.entry(k.clone()).or_default().insert(key.clone());
        }
        inner.by_conn.entry(conn.id).or_default().insert(Arc::clone(&key.1));
        inner.subs.insert(
            key,
            Entry {
                filters,
                conn: Arc::clone(conn),
                keys,
                allowed,
            },
        );
    }

    pub fn remove(&self, conn: ConnId, sub_id: &str) {
        let key: SubKey = (conn, Arc::from(sub_id));
        self.write().remove_sub(&key);
    }

    /// Removes every subscription of a connection (from its drop guard).
    pub fn remove_conn(&self, conn: ConnId) {
        let mut inner = self.write();
        let subs = inner.by_conn.remove(&conn).unwrap_or_default();
        for sub in subs {
            inner.remove_sub(&(conn, sub));
        }
    }

    pub fn len(&self) -> usize {
        self.read().subs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The subscriptions `event` matches.
    pub fn matching(&self, event: &Event) -> Vec<(Arc<ConnHandle>, Arc<str>)> {
        let inner = self.read();
        let mut candidates: HashSet<&SubKey> = HashSet::new();
        let mut probe = |k: &IndexKey| {
            if let Some(set) = inner.postings.get(k) {
                candidates.extend(set.iter());
            }
        };
        probe(&IndexKey::Id(event.id));
        probe(&IndexKey::Author(event.pubkey));
        probe(&IndexKey::Kind(event.kind));
        probe(&IndexKey::Scan);
        for tag in &event.tags {
            if let [name, value, ..] = tag.as_slice() {
                if tags::is_indexable_name(name) {
                    probe(&IndexKey::Tag(tags::key(name, value)));
                }
            }
        }
        candidates
            .into_iter()
            .filter_map(|key| {
                let entry = inner.subs.get(key)?;
                (entry.filters.matches(event) && visible(event, entry.allowed.as_deref()))
                    .then(|| (Arc::clone(&entry.conn), Arc::clone(&key.1)))
            })
            .collect()
    }

    /// Queues `event` to every matching subscription; kicks full queues.
    pub fn dispatch(&self, event: &Arc<LiveEvent>, metrics: &Metrics) {
        for (conn, sub_id) in self.matching(&event.event) {
            match conn.live.try_send(Delivery {
                sub_id,
                event: Arc::clone(event),
            }) {
                Ok(()) => {
                    metrics.live_events_sent.fetch_add(1, Relaxed);
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    if !conn.is_kicked() {
                        metrics.slow_clients_dropped.fetch_add(1, Relaxed);
                    }
                    conn.kick();
                }
                // The connection is closing; its guard removes its subscriptions.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }
}

impl Inner {
    fn remove_sub(&mut self, key: &SubKey) {
        let Some(entry) = self.subs.remove(key) else { return };
        for k in &entry.keys {
            if let Some(set) = self.postings.get_mut(k) {
                set.remove(key);
                if set.is_empty() {
                    self.postings.remove(k);
                }
            }
        }
        if let Some(set) = self.by_conn.get_mut(&key.0) {
            set.remove(&key.1);
            if set.is_empty() {
                self.by_conn.remove(&key.0);
            }
        }
    }
}

/// Ids recently dispatched, oldest evicted first.
pub struct RecentIds {
    set: HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
    capacity: usize,
}

impl RecentIds {
    pub fn new(capacity: usize) -> RecentIds {
        RecentIds {
            set: HashSet::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Records `id`; false if it was already there.
    pub fn insert(&mut self, id: [u8; 32]) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

/// Parses a `<lo>:<hi>` payload.
pub fn parse_range(payload: &str) -> Option<(i64, i64)> {
    let (lo, hi) = payload.trim().split_once(':')?;
    let (lo, hi) = (lo.parse::<i64>().ok()?, hi.parse::<i64>().ok()?);
    (lo <= hi).then_some((lo, hi))
}

/// Merges ranges that overlap or nearly touch, so a burst of notifications
/// costs few `changes` calls. Reading a little more than named is harmless:
/// rows in a gap are either not visible yet (their own notification will come)
/// or already visible and deduplicated by id.
pub fn merge_ranges(mut ranges: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    const GAP: i64 = 64;
    const MAX_SPAN: i64 = 50_000;
    ranges.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some(last) if lo <= last.1.saturating_add(GAP) && hi.saturating_sub(last.0) <= MAX_SPAN => {
                last.1 = last.1.max(hi);
            }
            _ => out.push((lo, hi)),
        }
    }
    out
}

const RECENT_IDS: usize = 100_000;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Runs the LISTEN loop until shutdown, reconnecting with backoff.
pub async fn run_listener(db: Db, index: Arc<SubIndex>, metrics: Arc<Metrics>, mut shutdown: watch::Receiver<bool>) {
    let mut recent = RecentIds::new(RECENT_IDS);
    let mut backoff = BACKOFF_MIN;
    loop {
        if *shutdown.borrow() {
            return;
        }
        match listen_once(&db, &index, &metrics, &mut recent, &mut shutdown).await {
            Ok(()) => return,
            Err(Lost { was_listening, reason }) => {
                if was_listening {
                    backoff = BACKOFF_MIN;
                }
                tracing::warn!("LISTEN connection lost, retrying in {backoff:?}: {reason}");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = crate::server::stopped(&mut shutdown) => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Why a LISTEN session ended; after a session that worked, backoff restarts.
struct Lost {
    was_listening: bool,
    reason: String,
}

fn lost(reason: impl ToString) -> Lost {
    Lost {
        was_listening: false,
        reason: reason.to_string(),
    }
}

/// One LISTEN session: returns Ok on shutdown, Err when the connection fails.
async fn listen_once(
    db: &Db,
    index: &SubIndex,
    metrics: &Metrics,
    recent: &mut RecentIds,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), Lost> {
    let connect = db.pg_config().connect(NoTls);
    let (client, mut connection) = match tokio::time::timeout(db.connect_timeout(), connect).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return Err(lost(e)),
        Err(_) => return Err(lost("connect timed out")),
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    // Drives the connection; ends (closing `rx`) when the connection fails.
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_owned()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("LISTEN connection error: {e}");
                    return;
                }
            }
        }
    });
    let _abort_driver = AbortOnDrop(driver);
    client.batch_execute(LISTEN).await.map_err(lost)?;
    metrics.listen_reconnects.fetch_add(1, Relaxed);
    tracing::info!("listening for nostr_events");
    loop {
        let first = tokio::select! {
            n = rx.recv() => n,
            _ = crate::server::stopped(shutdown) => return Ok(()),
        };
        let Some(first) = first else {
            return Err(Lost {
                was_listening: true,
                reason: "connection closed".into(),
            });
        };
        let received = Instant::now();
        let mut payloads = vec![first];
        while let Ok(more) = rx.try_recv() {
            payloads.push(more);
        }
        let ranges: Vec<(i64, i64)> = payloads
            .iter()
            .filter_map(|p| {
                let r = parse_range(p);
                if r.is_none() {
                    tracing::warn!("ignoring malformed nostr_events payload {p:?}");
                }
                r
            })
            .collect();
        if index.is_empty() {
            // Nobody is subscribed: skip reading the rows (an import would
            // otherwise re-read everything it wrote). A subscription made
            // after this check runs its stored query later, and these events
            // committed before their notification was sent, so it sees them.
            continue;
        }
        for (lo, hi) in merge_ranges(ranges) {
            match db.changes(lo, hi).await {
                Ok(events) => {
                    for json in events {
                        deliver(index, metrics, recent, json);
                    }
                }
                Err(e) => {
                    metrics.db_errors.fetch_add(1, Relaxed);
                    tracing::warn!("nostr.changes({lo}, {hi}) failed, live events lost: {e}");
                }
            }
        }
        metrics.fanout_lag_seconds.observe_duration(received.elapsed());
    }
}

fn deliver(index: &SubIndex, metrics: &Metrics, recent: &mut RecentIds, json: String) {
    let event = match Event::parse(&json) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!("nostr.changes returned an unparseable event: {e}");
            return;
        }
    };
    if recent.insert(event.id) {
        index.dispatch(&Arc::new(LiveEvent { event, json }), metrics);
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
#[path = "fanout_tests.rs"]
mod tests;
