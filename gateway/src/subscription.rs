//! One connection's view of one subscription: the stored query running for
//! it, and which live events it still needs.
//!
//! The subscription is registered in the live index *before* its stored
//! query runs, so nothing committed in between is missed. Until EOSE, live
//! events are buffered. The stored query reports the snapshot it read in;
//! from then on a live event is sent only if the transaction that accepted it
//! is not visible in that snapshot (it committed after the query looked).
//! An event the query could see is either among its results or older than
//! the subscription; either way it is not sent again. No timers and no
//! remembered ids: the snapshot decides, exactly.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::db::CancelSlot;
use crate::live::LiveEvent;
use crate::snapshot::ReadPoint;

/// How long a closed subscription's statement may keep running before it is
/// cancelled (see [`CancelSlot`]): longer than almost every REQ takes, far
/// shorter than what a cancel-and-reconnect costs a client that replaces
/// subscriptions in a loop.
pub const CANCEL_GRACE: Duration = Duration::from_millis(100);

#[derive(Debug)]
enum Phase {
    Stored {
        buffered: Vec<Arc<LiveEvent>>,
        /// A gap in live delivery reported before the query finished: decided
        /// at EOSE, once it is known where the query read.
        gap: Option<Option<i64>>,
    },
    /// After EOSE. `None` when no stored query ran (a filter no stored event
    /// can match): every live event is new to it.
    Live { read: Option<ReadPoint> },
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

/// What became of a subscription told of a gap in live delivery.
#[derive(Debug, PartialEq, Eq)]
pub enum GapOutcome {
    /// It read in the surviving incarnation: nothing it is owed was lost.
    Intact,
    /// It must end: events it is owed may be lost.
    Lost,
    /// Its stored query is still running; decided at EOSE.
    Pending,
}

#[derive(Debug)]
pub struct Sub {
    /// Distinguishes this subscription from an earlier one with the same id,
    /// whose query results or live events may still be queued.
    pub generation: u64,
    phase: Phase,
    task: Option<JoinHandle<()>>,
    cancel: Arc<CancelSlot>,
}

/// Whether a read survives a gap whose surviving incarnation is `survivor`:
/// it read in that incarnation, or in none (a crash had just emptied the
/// table, so the read came after the loss).
fn survives(read: Option<&ReadPoint>, survivor: Option<i64>) -> bool {
    match (read, survivor) {
        (Some(r), Some(s)) => r.epoch.is_none_or(|e| e == s),
        _ => false,
    }
}

impl Sub {
    pub fn req(generation: u64, cancel: Arc<CancelSlot>) -> Sub {
        Sub {
            generation,
            phase: Phase::Stored {
                buffered: Vec::new(),
                gap: None,
            },
            task: None,
            cancel,
        }
    }

    pub fn count(generation: u64, cancel: Arc<CancelSlot>) -> Sub {
        Sub {
            generation,
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

    /// Whether stored results are still wanted (before EOSE).
    pub fn wants_stored(&self) -> bool {
        matches!(self.phase, Phase::Stored { .. })
    }

    /// Decides about a live event for this subscription.
    pub fn on_live(&mut self, event: &Arc<LiveEvent>, max_buffer: usize) -> LiveAction {
        match &mut self.phase {
            Phase::Stored { buffered, .. } => {
                if buffered.len() >= max_buffer {
                    return LiveAction::Overflow;
                }
                buffered.push(Arc::clone(event));
                LiveAction::Buffered
            }
            Phase::Live { read } => {
                if read.as_ref().is_some_and(|r| r.snapshot.visible(event.xid)) {
                    LiveAction::Skip
                } else {
                    LiveAction::Send
                }
            }
            Phase::Count => LiveAction::Skip,
        }
    }

    /// Live events were lost (see `LiveMsg::Gap`): does this subscription
    /// survive?
    pub fn on_gap(&mut self, survivor: Option<i64>) -> GapOutcome {
        match &mut self.phase {
            Phase::Stored { gap, .. } => {
                // Two gaps before EOSE: the second decides (it is the later
                // incarnation, or "none survive").
                *gap = Some(survivor);
                GapOutcome::Pending
            }
            Phase::Live { read } if survives(read.as_ref(), survivor) => GapOutcome::Intact,
            Phase::Live { .. } => GapOutcome::Lost,
            Phase::Count => GapOutcome::Intact,
        }
    }

    /// The stored part is done, read at `read`: returns the buffered live
    /// events to send after EOSE (those the query could not see), and
    /// whether a gap reported meanwhile ends the subscription.
    pub fn on_eose(&mut self, read: Option<ReadPoint>) -> (Vec<Arc<LiveEvent>>, GapOutcome) {
        match std::mem::replace(&mut self.phase, Phase::Count) {
            Phase::Stored { buffered, gap } => {
                let out = buffered
                    .into_iter()
                    .filter(|e| !read.as_ref().is_some_and(|r| r.snapshot.visible(e.xid)))
                    .collect();
                let outcome = match gap {
                    Some(survivor) if !survives(read.as_ref(), survivor) => GapOutcome::Lost,
                    _ => GapOutcome::Intact,
                };
                self.phase = Phase::Live { read };
                (out, outcome)
            }
            other => {
                self.phase = other;
                (Vec::new(), GapOutcome::Intact)
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
    use crate::snapshot::Snapshot;
    use nostr_pg_core::sign::Keys;

    fn live(keys: &Keys, n: i64, xid: u64) -> Arc<LiveEvent> {
        let event = keys.sign(n, 1, vec![], "x");
        Arc::new(LiveEvent {
            json: event.canonical_json(),
            event,
            xid,
        })
    }

    fn read(text: &str, epoch: Option<i64>) -> ReadPoint {
        ReadPoint {
            snapshot: Snapshot::parse(text).unwrap_or_else(|| panic!("{text}")),
            epoch,
        }
    }

    #[test]
    fn the_query_snapshot_decides_what_is_sent_live() {
        let keys = Keys::from_seed("sub");
        // xid 10 committed before the query's snapshot, 12 was running, 15 came after.
        let (before, running, after) = (live(&keys, 1, 10), live(&keys, 2, 12), live(&keys, 3, 15));
        let mut sub = Sub::req(1, Arc::default());
        assert!(sub.wants_stored());
        assert_eq!(sub.on_live(&before, 10), LiveAction::Buffered);
        assert_eq!(sub.on_live(&running, 10), LiveAction::Buffered);
        let (flushed, gap) = sub.on_eose(Some(read("11:13:12", Some(1))));
        let flushed: Vec<u64> = flushed.iter().map(|e| e.xid).collect();
        assert_eq!(flushed, vec![12], "only what the query could not see");
        assert_eq!(gap, GapOutcome::Intact);
        assert!(!sub.wants_stored());
        // A late delivery of an event the query saw is skipped, however late.
        assert_eq!(sub.on_live(&before, 10), LiveAction::Skip);
        assert_eq!(sub.on_live(&after, 10), LiveAction::Send);
    }

    #[test]
    fn without_a_stored_query_every_live_event_is_new() {
        let keys = Keys::from_seed("sub-none");
        let mut sub = Sub::req(1, Arc::default());
        assert_eq!(sub.on_live(&live(&keys, 1, 3), 10), LiveAction::Buffered);
        assert_eq!(sub.on_eose(None).0.len(), 1);
        assert_eq!(sub.on_live(&live(&keys, 2, 1), 10), LiveAction::Send);
    }

    #[test]
    fn a_gap_ends_subscriptions_that_read_before_it() {
        let at = |epoch| {
            let mut sub = Sub::req(1, Arc::default());
            sub.on_eose(Some(read("5:5:", epoch)));
            sub
        };
        // The transit table is now incarnation 2.
        assert_eq!(at(Some(2)).on_gap(Some(2)), GapOutcome::Intact, "read in it");
        assert_eq!(
            at(None).on_gap(Some(2)),
            GapOutcome::Intact,
            "read just after the crash"
        );
        assert_eq!(at(Some(1)).on_gap(Some(2)), GapOutcome::Lost, "read before the crash");
        assert_eq!(at(Some(2)).on_gap(None), GapOutcome::Lost, "nothing survives");
        let mut no_query = Sub::req(1, Arc::default());
        no_query.on_eose(None);
        assert_eq!(no_query.on_gap(Some(2)), GapOutcome::Lost, "no read to vouch for it");
        // Reported before EOSE: decided by where the query read.
        let mut pending = Sub::req(1, Arc::default());
        assert_eq!(pending.on_gap(Some(2)), GapOutcome::Pending);
        assert_eq!(pending.on_eose(Some(read("5:5:", Some(1)))).1, GapOutcome::Lost);
        let mut pending = Sub::req(1, Arc::default());
        assert_eq!(pending.on_gap(Some(2)), GapOutcome::Pending);
        assert_eq!(pending.on_eose(Some(read("5:5:", Some(2)))).1, GapOutcome::Intact);
        assert_eq!(Sub::count(1, Arc::default()).on_gap(None), GapOutcome::Intact);
    }

    #[test]
    fn buffer_overflow_and_counts() {
        let keys = Keys::from_seed("sub2");
        let mut sub = Sub::req(1, Arc::default());
        assert_eq!(sub.on_live(&live(&keys, 1, 1), 1), LiveAction::Buffered);
        assert_eq!(sub.on_live(&live(&keys, 2, 2), 1), LiveAction::Overflow);
        let mut count = Sub::count(2, Arc::default());
        assert!(count.is_count());
        assert!(!count.wants_stored());
        assert_eq!(count.on_live(&live(&keys, 3, 3), 1), LiveAction::Skip);
        assert!(count.on_eose(None).0.is_empty());
    }
}
