//! Live events the fanout queued for this connection: each goes to its
//! subscription (which decides send, skip or buffer by its snapshot), and a
//! gap ends the subscriptions that may have missed events.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::Session;
use crate::live::LiveMsg;
use crate::protocol;
use crate::reply::Prefix;
use crate::subscription::{GapOutcome, LiveAction};

impl Session {
    pub(super) fn on_live(&mut self, msg: LiveMsg) {
        match msg {
            LiveMsg::Event {
                sub_id,
                generation,
                event,
            } => {
                let max = self.relay.config.limits.live_queue;
                let Some(sub) = self.sub(&sub_id, generation) else {
                    return;
                };
                match sub.on_live(&event, max) {
                    LiveAction::Send => self.out.push(protocol::event(&sub_id, &event.json)),
                    LiveAction::Skip | LiveAction::Buffered => {}
                    LiveAction::Overflow => {
                        self.relay.metrics.slow_clients_dropped.fetch_add(1, Relaxed);
                        self.kick = true;
                    }
                }
            }
            LiveMsg::Gap { survivor, message } => {
                self.gap_message = Some(message);
                let lost: Vec<Arc<str>> = self
                    .subs
                    .iter_mut()
                    .filter_map(|(id, sub)| (sub.on_gap(survivor) == GapOutcome::Lost).then(|| Arc::clone(id)))
                    .collect();
                for sub_id in lost {
                    self.end_lost(&sub_id);
                }
            }
        }
    }

    /// Ends a subscription that may have lost live events (CLOSED with the
    /// message of the gap), so the client subscribes again.
    pub(super) fn end_lost(&mut self, sub_id: &str) {
        let message = self
            .gap_message
            .clone()
            .unwrap_or_else(|| Arc::from(Prefix::Error.with("live events were lost; subscribe again")));
        self.relay.metrics.live_gaps_closed.fetch_add(1, Relaxed);
        self.end_sub(sub_id, protocol::closed(sub_id, &message));
    }
}
