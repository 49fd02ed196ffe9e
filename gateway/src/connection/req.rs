//! REQ and COUNT: validation, limits, the live registration and the stored
//! query task of one subscription.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use nostr_pg_core::{hex, Filters};
use serde_json::value::RawValue;

use super::Session;
use crate::db::CancelSlot;
use crate::fanout::RESTRICTED_KINDS;
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
        let (filters, json) = match protocol::parse_filters(raw_filters, &sub_id, relay.config.limits.max_limit) {
            Ok(pair) => pair,
            Err(refusal) => return self.out.push(refusal.reply()),
        };
        let allowed = if relay.config.auth.restrict_dm_reads {
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
            if is_count && asks_restricted && !count_is_scoped(&filters, &self.authed) {
                return self
                    .out
                    .push(closed(Prefix::Restricted.with(
                        "COUNT of direct messages must be limited to your own pubkey (authors or #p)",
                    )));
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
                .index
                .insert(&self.handle, Arc::clone(&sub_key), filters.clone(), allowed.clone());
            Sub::req(generation, filters, Arc::clone(&cancel))
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
            allowed,
        };
        sub.set_task(tokio::spawn(if is_count {
            task.count_boxed()
        } else {
            task.req_boxed()
        }));
        self.subs.insert(sub_key, sub);
    }
}

/// A COUNT over restricted kinds must only count the caller's own messages:
/// every filter naming a restricted kind needs `authors` or `#p` within the
/// authenticated keys.
fn count_is_scoped(filters: &Filters, authed: &[[u8; 32]]) -> bool {
    filters.0.iter().all(|f| {
        let restricted = f
            .kinds
            .as_ref()
            .is_some_and(|k| k.iter().any(|k| RESTRICTED_KINDS.contains(k)));
        if !restricted {
            return true;
        }
        let by_author = f
            .authors
            .as_ref()
            .is_some_and(|a| !a.is_empty() && a.iter().all(|k| authed.contains(k)));
        let by_p = f.tags.iter().any(|t| {
            t.name == "p"
                && !t.values.is_empty()
                && t.values
                    .iter()
                    .all(|v| hex::decode_fixed::<32>(v).is_some_and(|k| authed.contains(&k)))
        });
        by_author || by_p
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dm_counts_must_be_scoped_to_the_caller() {
        let me = [1u8; 32];
        let other = hex::encode(&[2u8; 32]);
        let mine = hex::encode(&me);
        let f = |s: &str| Filters::parse(s).unwrap_or_default();
        assert!(count_is_scoped(&f(r#"[{"kinds":[1]}]"#), &[me]));
        assert!(!count_is_scoped(&f(r#"[{"kinds":[4]}]"#), &[me]));
        assert!(count_is_scoped(
            &f(&format!(r#"[{{"kinds":[4],"authors":["{mine}"]}}]"#)),
            &[me]
        ));
        assert!(count_is_scoped(
            &f(&format!(r##"[{{"kinds":[4],"#p":["{mine}"]}}]"##)),
            &[me]
        ));
        assert!(!count_is_scoped(
            &f(&format!(r##"[{{"kinds":[4],"#p":["{mine}","{other}"]}}]"##)),
            &[me]
        ));
    }
}
