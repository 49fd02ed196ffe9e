//! Live fanout: every event an `OK true` answered (as new) reaches each
//! matching live subscription of this gateway exactly once.
//!
//! How that promise is kept (the invariant lives here):
//!
//! - Each transaction that accepts events writes them to `nostr.transit` and
//!   notifies its transaction id (xid) at commit (`nostr_pg/src/notify.rs`).
//!   What a notification names stays readable for minutes, even if the
//!   events are replaced, deleted or expire right after.
//! - Every transaction is delivered under its xid, and [`Claims`] lets each
//!   xid through once: whoever claims it first (the publisher, for the
//!   batches this gateway committed itself, without a round trip; or the
//!   [`listener`], for a notification or a check-in) dispatches all of its
//!   events, and nobody else does.
//! - The listener checks in every second: it takes a snapshot and delivers
//!   every transaction that committed since the previous check-in and was
//!   not claimed yet (its notification was lost, or the LISTEN connection
//!   was down). Then every transaction visible in that snapshot counts as
//!   claimed, which bounds the claim set. If the transactions in between can
//!   no longer be read (the database crashed, or the listener was away
//!   longer than transit rows are kept), every live subscription is ended
//!   with `CLOSED error:` rather than left with a silent gap.
//! - The claim is held while its events are queued: when a publish is
//!   answered `OK`, its events already wait in the queues of this gateway's
//!   matching subscriptions (other gateways deliver when they hear of it).
//! - No REQ is served before the listener's first check-in: from then on,
//!   every commit after a stored query's snapshot is either notified or
//!   found by a later check-in.
//! - A subscription compares each live event's xid with the snapshot its
//!   stored query read in (`subscription.rs`): visible there means the query
//!   covered it, so it is not sent again.
//! - A stored query may read on a replica only if its snapshot sees every
//!   transaction claimed when the subscription was registered ([`ReadFence`],
//!   and `read_route.rs` for why).

pub mod listener;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use nostr_pg_core::Event;

use crate::index::SubIndex;
use crate::limits::lock;
use crate::live::LiveEvent;
use crate::metrics::Metrics;
use crate::snapshot::{Snapshot, Xid};

/// Which transactions have been delivered: every one visible in `horizon`,
/// and those in `claimed`.
#[derive(Debug, Default)]
pub struct Claims {
    horizon: Option<Snapshot>,
    claimed: HashSet<Xid>,
    /// The transit table's incarnation at the last check-in.
    epoch: Option<i64>,
}

/// What a stored query that did not read on the primary must have seen for
/// live delivery to stay exact: every transaction below `below` (all that
/// were delivered to live subscriptions before it was registered), read in
/// incarnation `epoch` of the transit table as the listener last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadFence {
    pub below: Xid,
    pub epoch: i64,
}

impl Claims {
    /// Every transaction claimed so far is below the fence; `None` before
    /// the first check-in.
    pub fn fence(&self) -> Option<ReadFence> {
        let horizon = self.horizon.as_ref()?;
        let claimed = self.claimed.iter().max().map_or(0, |x| x + 1);
        Some(ReadFence {
            below: horizon.finished_below().max(claimed),
            epoch: self.epoch?,
        })
    }

    pub fn is_claimed(&self, xid: Xid) -> bool {
        self.horizon.as_ref().is_some_and(|h| h.visible(xid)) || self.claimed.contains(&xid)
    }

    /// Claims `xid` for delivery; false if it was delivered already.
    pub fn claim(&mut self, xid: Xid) -> bool {
        !self.horizon.as_ref().is_some_and(|h| h.visible(xid)) && self.claimed.insert(xid)
    }

    /// Every transaction visible in `snapshot` has been delivered: the caller
    /// has made sure of it (a check-in delivered whatever was missing).
    pub fn advance(&mut self, snapshot: &Snapshot) {
        self.claimed.retain(|x| !snapshot.visible(*x));
        self.horizon = Some(snapshot.clone());
    }

    pub fn len(&self) -> usize {
        self.claimed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.claimed.is_empty()
    }
}

/// One gateway's live delivery: its subscriptions and what was delivered.
pub struct Fanout {
    pub index: SubIndex,
    claims: Mutex<Claims>,
    metrics: Arc<Metrics>,
    /// Set once the listener has checked in for the first time. Until then
    /// nothing tells this gateway about other gateways' commits, and there is
    /// no earlier check-in to catch up from, so REQs are not served.
    ready: watch::Sender<bool>,
}

impl Fanout {
    pub fn new(metrics: Arc<Metrics>) -> Fanout {
        Fanout {
            index: SubIndex::new(),
            claims: Mutex::new(Claims::default()),
            metrics,
            ready: watch::Sender::new(false),
        }
    }

    /// Whether live delivery is complete: a subscription made now gets every
    /// event committed after its stored query.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    pub fn mark_ready(&self) {
        self.ready.send_replace(true);
    }

    /// Resolves once live delivery is ready.
    pub async fn wait_ready(&self) {
        let mut rx = self.ready.subscribe();
        // An error means the sender is gone, which cannot happen while
        // `self` lives.
        let _ = rx.wait_for(|r| *r).await;
    }

    pub fn is_claimed(&self, xid: Xid) -> bool {
        lock(&self.claims).is_claimed(xid)
    }

    pub fn claim(&self, xid: Xid) -> bool {
        lock(&self.claims).claim(xid)
    }

    /// A listener check-in at `snapshot`, in incarnation `epoch` of the
    /// transit table, delivered everything it sees.
    pub fn checked_in(&self, snapshot: &Snapshot, epoch: i64) {
        let mut claims = lock(&self.claims);
        claims.advance(snapshot);
        claims.epoch = Some(epoch);
    }

    /// The fence for a stored query of a subscription registered before this
    /// call (see [`ReadFence`]).
    pub fn read_fence(&self) -> Option<ReadFence> {
        lock(&self.claims).fence()
    }

    /// Delivers the events transaction `xid` accepted, unless someone did
    /// already. Returns whether this call delivered them.
    ///
    /// The claim is held while the events are queued, so whoever loses the
    /// race for a claim returns only once the winner has queued everything:
    /// when the publisher answers `OK`, the event is already in the queue of
    /// every matching subscription of this gateway.
    pub fn deliver(&self, xid: Xid, events: impl IntoIterator<Item = (Event, String)>) -> bool {
        self.deliver_with(xid, || events)
    }

    /// Like [`Fanout::deliver`], building the events only if someone may
    /// want them (the claim is taken either way). A subscription made after
    /// the emptiness check reads in a snapshot that already sees them.
    pub fn deliver_with<I: IntoIterator<Item = (Event, String)>>(&self, xid: Xid, events: impl FnOnce() -> I) -> bool {
        let mut claims = lock(&self.claims);
        if !claims.claim(xid) {
            return false;
        }
        if !self.index.is_empty() {
            for (event, json) in events() {
                self.index
                    .dispatch(&Arc::new(LiveEvent { event, json, xid }), &self.metrics);
            }
        }
        drop(claims);
        true
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
