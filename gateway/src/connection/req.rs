//! REQ and COUNT: validation, limits, the live registration and the stored
//! query task of one subscription.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use nostr_pg_core::access::RESTRICTED_KINDS;
use nostr_pg_core::hex;
use serde_json::value::RawValue;

use super::Session;
use crate::db::CancelSlot;
use crate::protocol;
use crate::query_task::{QueryMsg, QueryTask};
use crate::reply::Prefix;
use crate::subscription::Sub;

impl Session {
    /// REQ and COUNT.
    pub(super) fn on_req(&mut self, sub_id: String, raw_filters: &[&RawValue], is_count: bool) {
        let relay = Arc::clone(&self.relay);
        let closed = |msg: String| protocol::closed(&sub_id, &msg);
        // A REQ with an existing id replaces it.
        self.close_sub(&sub_id);
        if relay.config.auth.required && self.authed.is_empty() {
            return self.out.push(closed(
                Prefix::AuthRequired.with("this relay only serves authenticated users"),
            ));
        }
        if self.subs.len() >= relay.config.limits.max_subscriptions {
            let max = relay.config.limits.max_subscriptions;
            return self.out.push(closed(
                Prefix::Error.with(format!("too many open subscriptions (at most {max})")),
            ));
        }
        if !is_count && !relay.fanout.is_ready() {
            return self.out.push(closed(
                Prefix::Error.with("live delivery is not ready yet (the database is unreachable); try again"),
            ));
        }
        let (filters, json) = match protocol::parse_filters(raw_filters, &sub_id, relay.config.limits.max_limit) {
            Ok(pair) => pair,
            Err(refusal) => return self.out.push(refusal.reply()),
        };
        let viewers = if relay.config.auth.restrict_dm_reads {
            let asks_restricted = filters.0.iter().any(|f| {
                f.kinds
                    .as_ref()
                    .is_some_and(|k| k.iter().any(|k| RESTRICTED_KINDS.contains(k)))
            });
            if asks_restricted && self.authed.is_empty() {
                return self.out.push(closed(
                    Prefix::AuthRequired.with("direct messages are only served to their participants"),
                ));
            }
            Some(self.authed.clone())
        } else {
            None
        };

        // COUNT ignores `limit`, so only a filter no event can match skips it.
        let nothing_matches = filters
            .0
            .iter()
            .all(|f| if is_count { f.never_matches() } else { f.is_empty_set() });
        // Only requests that reach the database are charged: refusals and
        // empty answers cost nothing worth limiting.
        if !nothing_matches && !relay.req_limiter.check(&self.ip) {
            relay.metrics.reqs_rate_limited.fetch_add(1, Relaxed);
            return self.out.push(closed(
                Prefix::RateLimited.with("too many REQs from your address; slow down"),
            ));
        }

        self.generation += 1;
        let generation = self.generation;
        let sub_key: Arc<str> = Arc::from(sub_id.as_str());
        let cancel = Arc::new(CancelSlot::default());
        let mut sub = if is_count {
            Sub::count(generation, Arc::clone(&cancel))
        } else {
            // Live first, then the stored query: nothing committed in between is lost.
            relay
                .fanout
                .index
                .insert(&self.handle, Arc::clone(&sub_key), generation, filters, viewers.clone());
            Sub::req(generation, Arc::clone(&cancel))
        };
        if nothing_matches {
            let frame = if is_count {
                protocol::count(&sub_id, 0)
            } else {
                protocol::eose(&sub_id)
            };
            let msg = if is_count {
                QueryMsg::Done {
                    sub_id: Arc::clone(&sub_key),
                    generation,
                    frame,
                }
            } else {
                QueryMsg::Eose {
                    sub_id: Arc::clone(&sub_key),
                    generation,
                    read: None,
                }
            };
            self.subs.insert(Arc::clone(&sub_key), sub);
            self.on_query(msg);
            return;
        }
        let task = QueryTask {
            relay: Arc::clone(&relay),
            permits: Arc::clone(&self.query_permits),
            tx: self.query_tx.clone(),
            sub_id: Arc::clone(&sub_key),
            generation,
            json,
            cancel,
            viewers: viewers.map(|keys| keys.iter().map(|k| hex::encode(k)).collect()),
        };
        sub.set_task(tokio::spawn(if is_count {
            task.count_boxed()
        } else {
            task.req_boxed()
        }));
        self.subs.insert(sub_key, sub);
    }
}
