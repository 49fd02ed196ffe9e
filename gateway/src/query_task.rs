//! A stored query (REQ or COUNT) running for one subscription, off the
//! connection task: it waits for its connection's share of the pool, runs the
//! query, and streams results back as [`QueryMsg`]s.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use nostr_pg_core::{hex, Event};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::db::{CancelSlot, DbError};
use crate::protocol;
use crate::server::Relay;

/// Results coming back from query tasks.
#[derive(Debug)]
pub enum QueryMsg {
    Stored {
        sub_id: Arc<str>,
        generation: u64,
        id: Option<[u8; 32]>,
        frame: String,
    },
    Eose {
        sub_id: Arc<str>,
        generation: u64,
    },
    /// Ends the subscription with this frame (CLOSED, or a COUNT answer).
    Done {
        sub_id: Arc<str>,
        generation: u64,
        frame: String,
    },
}

/// The id of a canonical event JSON text, which always starts with it.
fn canonical_id(json: &str) -> Option<[u8; 32]> {
    json.strip_prefix("{\"id\":\"")
        .and_then(|rest| rest.get(..64))
        .and_then(hex::decode_fixed::<32>)
        .or_else(|| protocol::event_id_of(json).and_then(|id| hex::decode_fixed::<32>(&id)))
}

/// A stored query running for one subscription.
pub struct QueryTask {
    pub relay: Arc<Relay>,
    pub permits: Arc<Semaphore>,
    pub tx: mpsc::Sender<QueryMsg>,
    pub sub_id: Arc<str>,
    pub generation: u64,
    pub json: String,
    pub cancel: Arc<CancelSlot>,
    pub allowed: Option<Vec<[u8; 32]>>,
}

impl QueryTask {
    pub fn req_boxed(self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(self.req())
    }

    pub fn count_boxed(self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(self.count())
    }

    /// Runs `query` once this connection's share of the pool allows, and
    /// records its time. Gives the result, with the permit to hold while it is
    /// sent, unless the subscription was closed meanwhile (nobody wants it).
    async fn run<T>(
        &self,
        query: impl std::future::Future<Output = Result<T, DbError>>,
    ) -> Option<(OwnedSemaphorePermit, Result<T, DbError>)> {
        // Closing the semaphore never happens; a failed acquire only means the
        // connection is going away.
        let permit = Arc::clone(&self.permits).acquire_owned().await.ok()?;
        let started = Instant::now();
        let result = query.await;
        self.relay.metrics.query_seconds.observe_duration(started.elapsed());
        (!self.cancel.is_abandoned()).then_some((permit, result))
    }

    async fn req(self) {
        let Some((_permit, result)) = self.run(self.relay.db.req(&self.json, &self.cancel)).await else {
            return;
        };
        let rows = match result {
            Ok(rows) => rows,
            Err(e) => return self.fail(e).await,
        };
        for json in rows {
            if let Some(allowed) = &self.allowed {
                // Reads of restricted kinds are filtered here: the database
                // does not know who is asking.
                match Event::parse(&json) {
                    Ok(event) if crate::fanout::visible(&event, Some(allowed)) => {}
                    _ => continue,
                }
            }
            let msg = QueryMsg::Stored {
                sub_id: Arc::clone(&self.sub_id),
                generation: self.generation,
                id: canonical_id(&json),
                frame: protocol::event(&self.sub_id, &json),
            };
            if self.tx.send(msg).await.is_err() {
                return;
            }
        }
        let eose = QueryMsg::Eose {
            sub_id: Arc::clone(&self.sub_id),
            generation: self.generation,
        };
        if self.tx.send(eose).await.is_err() {
            tracing::debug!("connection closed before EOSE");
        }
    }

    async fn count(self) {
        let Some((_permit, result)) = self.run(self.relay.db.count(&self.json, &self.cancel)).await else {
            return;
        };
        match result {
            Ok(n) => {
                let frame = protocol::count(&self.sub_id, n);
                let msg = QueryMsg::Done {
                    sub_id: Arc::clone(&self.sub_id),
                    generation: self.generation,
                    frame,
                };
                if self.tx.send(msg).await.is_err() {
                    tracing::debug!("connection closed before COUNT");
                }
            }
            Err(e) => self.fail(e).await,
        }
    }

    async fn fail(&self, e: DbError) {
        if !matches!(e, DbError::Sql { .. }) {
            self.relay.metrics.db_errors.fetch_add(1, Relaxed);
        }
        let frame = protocol::closed(&self.sub_id, &e.reply());
        let msg = QueryMsg::Done {
            sub_id: Arc::clone(&self.sub_id),
            generation: self.generation,
            frame,
        };
        if self.tx.send(msg).await.is_err() {
            tracing::debug!("connection closed before CLOSED");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_ids_are_read_from_the_prefix() {
        let id = "ab".repeat(32);
        let json = format!("{{\"id\":\"{id}\",\"pubkey\":\"x\"}}");
        assert_eq!(canonical_id(&json), hex::decode_fixed::<32>(&id));
        assert_eq!(canonical_id("{\"id\":\"short\"}"), None);
        assert_eq!(canonical_id("{\"pubkey\":\"x\",\"id\":\"".to_owned().as_str()), None);
    }
}
