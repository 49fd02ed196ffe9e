//! What live fanout hands to connections: the event (shared by every
//! subscriber it goes to), the per-connection queue it travels through, and
//! the kill switch for a connection too slow to drain that queue. Shared by
//! the fanout (which fills queues) and connections (which drain them), so it
//! sits below both.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use nostr_pg_core::Event;
use tokio::sync::{mpsc, Notify};

use crate::snapshot::Xid;

pub type ConnId = u64;

/// An accepted event on its way to live subscribers.
#[derive(Debug)]
pub struct LiveEvent {
    pub event: Event,
    /// The canonical JSON, served verbatim.
    pub json: String,
    /// The transaction that accepted it (see `snapshot`).
    pub xid: Xid,
}

/// One message for a connection's live queue.
#[derive(Debug, Clone)]
pub enum LiveMsg {
    /// Deliver `event` to subscription `sub_id` (of REQ number `generation`
    /// on this connection: a newer REQ with the same id does not take it).
    Event {
        sub_id: Arc<str>,
        generation: u64,
        event: Arc<LiveEvent>,
    },
    /// Live events were lost and cannot be recovered for every subscription
    /// of this connection: those that read in transit incarnation `survivor`
    /// (or in none: after a crash emptied the table) are intact, every other
    /// one ends with `CLOSED` and `message`. `survivor: None`: all end.
    Gap { survivor: Option<i64>, message: Arc<str> },
}

/// The fanout's view of a connection: its live queue and a kill switch.
#[derive(Debug)]
pub struct ConnHandle {
    pub id: ConnId,
    live: mpsc::Sender<LiveMsg>,
    kicked: AtomicBool,
    kick: Notify,
}

/// What became of a message offered to a connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    Queued,
    /// The queue was full: the connection has been kicked.
    Kicked,
    /// The connection is closing; its guard removes its subscriptions.
    Gone,
}

impl ConnHandle {
    pub fn new(id: ConnId, capacity: usize) -> (Arc<ConnHandle>, mpsc::Receiver<LiveMsg>) {
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

    /// Queues `msg` without waiting; a full queue gets the connection kicked
    /// rather than let it grow memory or delay the other subscribers.
    pub fn offer(&self, msg: LiveMsg) -> Offer {
        match self.live.try_send(msg) {
            Ok(()) => Offer::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.kick();
                Offer::Kicked
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Offer::Gone,
        }
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
