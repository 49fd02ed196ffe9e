//! One connection's view of one subscription: the stored query running for
//! it, and the de-duplication between stored and live events.
//!
//! The subscription is registered in the live index *before* its stored query
//! runs, so nothing committed in between is missed. Until EOSE, live events
//! are buffered and every stored event's id is remembered; at EOSE the buffer
//! is flushed minus what the query already sent. The ids are kept a few
//! seconds more, because a notification for an event committed just before
//! the query's snapshot can be processed after EOSE.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nostr_pg_core::Filters;
use tokio::task::JoinHandle;

use crate::db::CancelSlot;
use crate::fanout::LiveEvent;

/// How long stored ids still filter live events after EOSE.
pub const DEDUP_GRACE: Duration = Duration::from_secs(5);

/// How long a closed subscription's statement may keep running before it is
/// cancelled (see [`CancelSlot`]): longer than almost every REQ takes, far
/// shorter than what a cancel-and-reconnect costs a client that replaces
/// subscriptions in a loop.
pub const CANCEL_GRACE: Duration = Duration::from_millis(100);

#[derive(Debug)]
enum Phase {
    Stored {
        seen: HashSet<[u8; 32]>,
        buffered: Vec<Arc<LiveEvent>>,
    },
    Live {
        seen: HashSet<[u8; 32]>,
        until: Instant,
    },
    /// A COUNT: no live part.
    Count,
}

/// What to do with a live event.
#[derive(Debug, PartialEq, Eq)]
pub enum LiveAction {
    Send,
    Skip,
    Buffered,
    /// The pre-EOSE buffer is full: the client cannot keep up.
    Overflow,
}

#[derive(Debug)]
pub struct Sub {
    /// Distinguishes this subscription from an earlier one with the same id,
    /// whose query results may still be queued.
    pub generation: u64,
    filters: Option<Filters>,
    phase: Phase,
    task: Option<JoinHandle<()>>,
    cancel: Arc<CancelSlot>,
}

impl Sub {
    pub fn req(generation: u64, filters: Filters, cancel: Arc<CancelSlot>) -> Sub {
        Sub {
            generation,
            filters: Some(filters),
            phase: Phase::Stored {
                seen: HashSet::new(),
                buffered: Vec::new(),
            },
            task: None,
            cancel,
        }
    }

    pub fn count(generation: u64, cancel: Arc<CancelSlot>) -> Sub {
        Sub {
            generation,
            filters: None,
            phase: Phase::Count,
            task: None,
            cancel,
        }
    }

    pub fn set_task(&mut self, task: JoinHandle<()>) {
        self.task = Some(task);
    }

    pub fn is_count(&self) -> bool {
        matches!(self.phase, Phase::Count)
    }

    /// A stored event is about to be sent; remember its id.
    pub fn on_stored(&mut self, id: Option<[u8; 32]>) -> bool {
        match (&mut self.phase, id) {
            (Phase::Stored { seen, .. }, Some(id)) => seen.insert(id),
            (Phase::Stored { .. }, None) => true,
            _ => false,
        }
    }

    /// Decides about a live event for this subscription.
    pub fn on_live(&mut self, event: &Arc<LiveEvent>, max_buffer: usize, now: Instant) -> LiveAction {
        // The index entry may have been replaced since the event was queued.
        if !self.filters.as_ref().is_some_and(|f| f.matches(&event.event)) {
            return LiveAction::Skip;
        }
        match &mut self.phase {
            Phase::Stored { buffered, .. } => {
                if buffered.len() >= max_buffer {
                    return LiveAction::Overflow;
                }
                buffered.push(Arc::clone(event));
                LiveAction::Buffered
            }
            Phase::Live { seen, until } => {
                if seen.is_empty() {
                    return LiveAction::Send;
                }
                if now > *until {
                    *seen = HashSet::new();
                    return LiveAction::Send;
                }
                if seen.insert(event.event.id) {
                    LiveAction::Send
                } else {
                    LiveAction::Skip
                }
            }
            Phase::Count => LiveAction::Skip,
        }
    }

    /// The stored part is done: returns the buffered live events to send after
    /// EOSE, without those the query already sent.
    pub fn on_eose(&mut self, now: Instant) -> Vec<Arc<LiveEvent>> {
        let phase = std::mem::replace(&mut self.phase, Phase::Count);
        match phase {
            Phase::Stored { mut seen, buffered } => {
                let out = buffered.into_iter().filter(|e| seen.insert(e.event.id)).collect();
                self.phase = Phase::Live {
                    seen,
                    until: now + DEDUP_GRACE,
                };
                out
            }
            other => {
                self.phase = other;
                Vec::new()
            }
        }
    }
}

impl Drop for Sub {
    /// Closing a subscription stops its query: at once if it is waiting for
    /// a connection or sending results, on the server after `CANCEL_GRACE` if
    /// its statement is running (the task then ends by itself, keeping its
    /// connection's share of the pool until the statement is over).
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            if !task.is_finished() && !self.cancel.abandon(CANCEL_GRACE) {
                task.abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nostr_pg_core::sign::Keys;

    fn live(keys: &Keys, n: i64) -> Arc<LiveEvent> {
        let event = keys.sign(n, 1, vec![], "x");
        Arc::new(LiveEvent {
            json: event.canonical_json(),
            event,
        })
    }

    fn kind1() -> Filters {
        Filters::parse(r#"[{"kinds":[1]}]"#).unwrap_or_default()
    }

    #[test]
    fn live_events_seen_in_stored_results_are_sent_once() {
        let keys = Keys::from_seed("sub");
        let (a, b, c) = (live(&keys, 1), live(&keys, 2), live(&keys, 3));
        let now = Instant::now();
        let mut sub = Sub::req(1, kind1(), Arc::default());
        // Live a and b arrive during the query; the query also returns a.
        assert_eq!(sub.on_live(&a, 10, now), LiveAction::Buffered);
        assert_eq!(sub.on_live(&b, 10, now), LiveAction::Buffered);
        assert!(sub.on_stored(Some(a.event.id)));
        let after: Vec<_> = sub.on_eose(now).iter().map(|e| e.event.id).collect();
        assert_eq!(after, vec![b.event.id]);
        // A late notification for a stored event is still filtered...
        assert_eq!(sub.on_live(&a, 10, now), LiveAction::Skip);
        assert_eq!(sub.on_live(&c, 10, now), LiveAction::Send);
        assert_eq!(sub.on_live(&c, 10, now), LiveAction::Skip);
        // ...until the grace period ends.
        assert_eq!(sub.on_live(&a, 10, now + DEDUP_GRACE * 2), LiveAction::Send);
    }

    #[test]
    fn buffer_overflow_and_non_matching_events() {
        let keys = Keys::from_seed("sub2");
        let now = Instant::now();
        let mut sub = Sub::req(1, kind1(), Arc::default());
        assert_eq!(sub.on_live(&live(&keys, 1), 1, now), LiveAction::Buffered);
        assert_eq!(sub.on_live(&live(&keys, 2), 1, now), LiveAction::Overflow);
        let other_kind = keys.sign(5, 7, vec![], "x");
        let other = Arc::new(LiveEvent {
            json: other_kind.canonical_json(),
            event: other_kind,
        });
        assert_eq!(sub.on_live(&other, 1, now), LiveAction::Skip);
        let mut count = Sub::count(2, Arc::default());
        assert!(count.is_count());
        assert!(!count.on_stored(None));
    }
}
