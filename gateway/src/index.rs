//! The live subscription index: every open subscription of this gateway,
//! filed so that an event is only matched against the subscriptions that
//! could want it. Each filter is filed under its most selective field (ids,
//! then authors, then its first tag condition, then kinds), or in a scan list
//! when it has none of them.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use nostr_pg_core::access;
use nostr_pg_core::{tags, Event, Filter, Filters};

use crate::live::{ConnHandle, ConnId, LiveEvent, LiveMsg, Offer};
use crate::metrics::Metrics;

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
    /// Which REQ of this id on this connection the entry is for: a message
    /// queued for an earlier one is dropped by the connection.
    generation: u64,
    keys: Vec<IndexKey>,
    /// Set when reads of restricted kinds are restricted: the reader's keys.
    viewers: Option<Vec<[u8; 32]>>,
}

/// A subscription an event matched.
#[derive(Debug, Clone)]
pub struct Target {
    pub conn: Arc<ConnHandle>,
    pub sub_id: Arc<str>,
    pub generation: u64,
}

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

    /// Adds (or replaces) a subscription. `viewers` restricts restricted kinds
    /// to events involving those pubkeys.
    pub fn insert(
        &self,
        conn: &Arc<ConnHandle>,
        sub_id: Arc<str>,
        generation: u64,
        filters: Filters,
        viewers: Option<Vec<[u8; 32]>>,
    ) {
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
                generation,
                keys,
                viewers,
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
    pub fn matching(&self, event: &Event) -> Vec<Target> {
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
                (entry.filters.matches(event) && access::readable(event, entry.viewers.as_deref())).then(|| Target {
                    conn: Arc::clone(&entry.conn),
                    sub_id: Arc::clone(&key.1),
                    generation: entry.generation,
                })
            })
            .collect()
    }

    /// Queues `event` to every matching subscription; kicks full queues.
    pub fn dispatch(&self, event: &Arc<LiveEvent>, metrics: &Metrics) {
        for t in self.matching(&event.event) {
            let msg = LiveMsg::Event {
                sub_id: t.sub_id,
                generation: t.generation,
                event: Arc::clone(event),
            };
            match t.conn.offer(msg) {
                Offer::Queued => {
                    metrics.live_events_sent.fetch_add(1, Relaxed);
                }
                Offer::Kicked => {
                    metrics.slow_clients_dropped.fetch_add(1, Relaxed);
                }
                Offer::Gone => {}
            }
        }
    }

    /// Tells every connection with a subscription that live events were
    /// lost (see [`LiveMsg::Gap`]); each decides which of its subscriptions
    /// end. Returns how many connections were told.
    pub fn report_gap(&self, survivor: Option<i64>, message: &str) -> usize {
        let message: Arc<str> = Arc::from(message);
        let conns: Vec<Arc<ConnHandle>> = {
            let inner = self.read();
            let mut seen = HashSet::new();
            inner
                .subs
                .values()
                .filter(|e| seen.insert(e.conn.id))
                .map(|e| Arc::clone(&e.conn))
                .collect()
        };
        for conn in &conns {
            conn.offer(LiveMsg::Gap {
                survivor,
                message: Arc::clone(&message),
            });
        }
        conns.len()
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

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
