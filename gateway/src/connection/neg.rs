//! NEG-OPEN, NEG-MSG and NEG-CLOSE (NIP-77): the items of a NEG-OPEN are
//! streamed from the database (a read replica when one is configured and
//! caught up, see `read_route.rs`) off the connection task (charged to the
//! REQ rate limit, within the connection's share of the pool), 40 bytes
//! each; later messages are answered in place, from those items.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nostr_pg_core::access::RESTRICTED_KINDS;
use nostr_pg_core::Filter;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use super::Session;
use crate::db::{DbError, NegQuery, NegRead};
use crate::neg::NegSession;
use crate::protocol;
use crate::query_task::QueryMsg;
use crate::read_route;
use crate::relay::Relay;
use crate::reply::Prefix;

/// A reconciliation of this connection: opening (its items being read) or
/// open.
pub(super) struct NegState {
    generation: u64,
    session: Option<Box<NegSession>>,
    /// The records it holds, out of the gateway's `max_negentropy_records_total`.
    budget: Option<OwnedSemaphorePermit>,
    /// Reading its items, then its idle timer.
    task: Option<JoinHandle<()>>,
    last_used: Instant,
}

impl Drop for NegState {
    /// NEG-CLOSE, a new NEG-OPEN with the same id, or the connection's end
    /// stop the read of its items, or its timer.
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Session {
    pub(super) fn on_neg_open(&mut self, sub_id: String, filter: &RawValue, message: String) {
        let relay = Arc::clone(&self.relay);
        let err = |reason: String| protocol::neg_err(&sub_id, &reason);
        // A NEG-OPEN with an open id replaces it.
        self.negs.remove(sub_id.as_str());
        if relay.config.auth.required && self.authed.is_empty() {
            return self.out.push(err(
                Prefix::AuthRequired.with("this relay only serves authenticated users")
            ));
        }
        let max = relay.config.limits.max_subscriptions;
        if self.negs.len() >= max {
            return self.out.push(err(
                Prefix::Blocked.with(format!("too many open reconciliations (at most {max})"))
            ));
        }
        let parsed = match serde_json::from_str(filter.get())
            .map_err(|e| e.to_string())
            .and_then(|v| Filter::from_value(&v).map_err(|e| e.to_string()))
        {
            Ok(f) => f,
            Err(e) => return self.out.push(err(Prefix::Invalid.with(e))),
        };
        if !relay.req_limiter.check(&self.ip) {
            relay.metrics.reqs_rate_limited.fetch_add(1, Relaxed);
            return self.out.push(err(
                Prefix::RateLimited.with("too many REQs from your address; slow down")
            ));
        }
        // Direct messages are served to their participants only, which a set
        // of ids cannot express: when reads are restricted they are left out.
        let hidden: Vec<u16> = if relay.config.auth.restrict_dm_reads {
            RESTRICTED_KINDS.to_vec()
        } else {
            Vec::new()
        };
        self.generation += 1;
        let generation = self.generation;
        let key: Arc<str> = Arc::from(sub_id.as_str());
        let task = tokio::spawn(open(
            Arc::clone(&relay),
            Arc::clone(&self.query_permits),
            self.query_tx.clone(),
            Opening {
                sub_id: Arc::clone(&key),
                generation,
                filter_json: filter.get().to_owned(),
                filter: parsed,
                hidden,
                message,
            },
        ));
        self.negs.insert(
            key,
            NegState {
                generation,
                session: None,
                budget: None,
                task: Some(task),
                last_used: Instant::now(),
            },
        );
    }

    pub(super) fn on_neg_opened(
        &mut self,
        sub_id: &str,
        generation: u64,
        session: Option<(Box<NegSession>, Option<OwnedSemaphorePermit>)>,
        frame: String,
    ) {
        let Some(state) = self.negs.get_mut(sub_id).filter(|s| s.generation == generation) else {
            return;
        };
        state.task = None;
        match session {
            Some((session, budget)) => {
                state.session = Some(session);
                state.budget = budget;
                state.last_used = Instant::now();
                let idle = self.idle_timeout();
                let timer = self.idle_timer(sub_id, generation, idle);
                if let Some(state) = self.negs.get_mut(sub_id) {
                    state.task = Some(timer);
                }
            }
            None => {
                self.negs.remove(sub_id);
            }
        }
        self.out.push(frame);
    }

    pub(super) fn on_neg_msg(&mut self, sub_id: &str, message: &str) {
        let answer = match self.negs.get_mut(sub_id) {
            None => Err(Prefix::Closed.with("no such reconciliation open")),
            Some(NegState { session: None, .. }) => {
                Err(Prefix::Invalid.with("NEG-MSG before the relay answered NEG-OPEN"))
            }
            Some(NegState {
                session: Some(session),
                last_used,
                ..
            }) => {
                *last_used = Instant::now();
                session.reconcile(message).map_err(|e| Prefix::Invalid.with(e))
            }
        };
        match answer {
            Ok(hex) => self.out.push(protocol::neg_msg(sub_id, &hex)),
            Err(reason) => {
                self.negs.remove(sub_id);
                self.out.push(protocol::neg_err(sub_id, &reason));
            }
        }
    }

    pub(super) fn on_neg_close(&mut self, sub_id: &str) {
        self.negs.remove(sub_id);
    }

    /// The idle timer of a reconciliation went off: close it if it has been
    /// idle that long, else wait for the rest.
    pub(super) fn on_neg_idle(&mut self, sub_id: &str, generation: u64) {
        let idle = self.idle_timeout();
        let Some(state) = self.negs.get_mut(sub_id).filter(|s| s.generation == generation) else {
            return;
        };
        let quiet = state.last_used.elapsed();
        if quiet < idle {
            let timer = self.idle_timer(sub_id, generation, idle - quiet);
            if let Some(state) = self.negs.get_mut(sub_id) {
                state.task = Some(timer);
            }
            return;
        }
        self.negs.remove(sub_id);
        let reason = Prefix::Closed.with(format!("no NEG-MSG for {} s", idle.as_secs()));
        self.out.push(protocol::neg_err(sub_id, &reason));
    }

    fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.relay.config.limits.negentropy_idle_seconds)
    }

    /// Sends `NegIdle` after `after`, unless aborted first.
    fn idle_timer(&self, sub_id: &str, generation: u64, after: Duration) -> JoinHandle<()> {
        let tx = self.query_tx.clone();
        let sub_id: Arc<str> = Arc::from(sub_id);
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            if tx.send(QueryMsg::NegIdle { sub_id, generation }).await.is_err() {
                tracing::debug!("connection closed before a reconciliation's idle timer");
            }
        })
    }
}

/// What a NEG-OPEN asks for.
struct Opening {
    sub_id: Arc<str>,
    generation: u64,
    filter_json: String,
    filter: Filter,
    hidden: Vec<u16>,
    message: String,
}

/// Reads the items, builds the session, answers the first message.
async fn open(relay: Arc<Relay>, permits: Arc<Semaphore>, tx: mpsc::Sender<QueryMsg>, o: Opening) {
    let (session, frame) = match prepare(&relay, permits, &o).await {
        Some(Ok((session, budget))) => {
            let mut session = Box::new(session);
            match session.reconcile(&o.message) {
                Ok(hex) => (Some((session, budget)), protocol::neg_msg(&o.sub_id, &hex)),
                Err(e) => (None, protocol::neg_err(&o.sub_id, &Prefix::Invalid.with(e))),
            }
        }
        Some(Err(reason)) => (None, protocol::neg_err(&o.sub_id, &reason)),
        None => return,
    };
    let msg = QueryMsg::NegOpened {
        sub_id: o.sub_id,
        generation: o.generation,
        session,
        frame,
    };
    if tx.send(msg).await.is_err() {
        tracing::debug!("connection closed before NEG-MSG");
    }
}

/// The session over the matching items, holding its share of the record
/// budget; or the NEG-ERR reason; `None` when the connection is going away.
async fn prepare(
    relay: &Relay,
    permits: Arc<Semaphore>,
    o: &Opening,
) -> Option<Result<(NegSession, Option<OwnedSemaphorePermit>), String>> {
    let cap = relay.config.limits.max_negentropy_records;
    let _permit = permits.acquire_owned().await.ok()?;
    let query = NegQuery {
        filter_json: &o.filter_json,
        filter: &o.filter,
        hidden: &o.hidden,
        cap,
    };
    // Records are reserved from the gateway-wide budget as they are read,
    // and the cap is checked before each: neither is read past.
    let (items, held) = match read_route::neg_items(relay, &query, &relay.neg_records).await {
        Ok(NegRead::Items { items, held }) => (items, held),
        Ok(NegRead::TooMany) => {
            return Some(Err(
                Prefix::Blocked.with(format!("this query is too big (more than {cap} events)"))
            ))
        }
        Ok(NegRead::NoBudget) => {
            return Some(Err(
                Prefix::Blocked.with("the relay holds too many reconciliations right now; try again later")
            ))
        }
        Err(e) => {
            if !matches!(e, DbError::Sql { .. }) {
                relay.metrics.db_errors.fetch_add(1, Relaxed);
            }
            return Some(Err(e.reply()));
        }
    };
    Some(
        NegSession::new(items)
            .map(|s| (s, held))
            .map_err(|e| Prefix::Error.with(e)),
    )
}
