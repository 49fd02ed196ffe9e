//! A stored query (REQ or COUNT) running for one subscription, off the
//! connection task: it waits for its connection's share of the pool, runs the
//! query, and streams results back as [`QueryMsg`]s.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::db::{CancelSlot, DbError};
use crate::neg::NegSession;
use crate::protocol;
use crate::read_route;
use crate::relay::Relay;
use crate::snapshot::ReadPoint;

/// Results coming back from query tasks.
#[derive(Debug)]
pub enum QueryMsg {
    Stored {
        sub_id: Arc<str>,
        generation: u64,
        frame: String,
    },
    /// The stored part is over; it was read at `read` (`None` when no
    /// query ran because no stored event could match).
    Eose {
        sub_id: Arc<str>,
        generation: u64,
        read: Option<ReadPoint>,
    },
    /// Ends the subscription with this frame (CLOSED, or a COUNT answer).
    Done {
        sub_id: Arc<str>,
        generation: u64,
        frame: String,
    },
    /// A NIP-77 reconciliation is ready: its session, and the answer to the
    /// client's first message (NEG-MSG), or why it failed (NEG-ERR).
    NegOpened {
        sub_id: Arc<str>,
        generation: u64,
        /// The session, and its share of the gateway's record budget.
        session: Option<(Box<NegSession>, Option<OwnedSemaphorePermit>)>,
        frame: String,
    },
    /// A reconciliation's idle timer went off.
    NegIdle { sub_id: Arc<str>, generation: u64 },
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
    /// Hex pubkeys of the reader when reads of restricted kinds are
    /// restricted (applied by the database, before each filter's limit).
    pub viewers: Option<Vec<String>>,
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
        let query = read_route::req(&self.relay, &self.json, self.viewers.as_deref(), &self.cancel);
        let Some((_permit, result)) = self.run(query).await else {
            return;
        };
        let stored = match result {
            Ok(stored) => stored,
            Err(e) => return self.fail(e).await,
        };
        for json in stored.events {
            let msg = QueryMsg::Stored {
                sub_id: Arc::clone(&self.sub_id),
                generation: self.generation,
                frame: protocol::event(&self.sub_id, &json),
            };
            if self.tx.send(msg).await.is_err() {
                return;
            }
        }
        let eose = QueryMsg::Eose {
            sub_id: Arc::clone(&self.sub_id),
            generation: self.generation,
            read: Some(stored.read),
        };
        if self.tx.send(eose).await.is_err() {
            tracing::debug!("connection closed before EOSE");
        }
    }

    async fn count(self) {
        let query = read_route::count(&self.relay, &self.json, self.viewers.as_deref(), &self.cancel);
        let Some((_permit, result)) = self.run(query).await else {
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
