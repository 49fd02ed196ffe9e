//! Stopping a stored query whose subscription was closed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_postgres::CancelToken;

use super::tls::Tls;
use crate::limits::lock;

/// Where a running query leaves its cancel token, so closing its
/// subscription can stop it.
///
/// Cancelling is not free: the cancel request travels on its own connection
/// and may arrive after the statement finished, so a connection that was sent
/// one is discarded rather than reused (a late cancel must never hit another
/// client's statement), and the next query pays for a new backend. A client
/// that replaces subscriptions as fast as it can would otherwise turn every
/// REQ into a reconnect. So an abandoned statement younger than its grace
/// period is left to finish (its results are dropped, its connection goes
/// back to the pool) and is only cancelled if it outlives the grace period.
#[derive(Default)]
pub struct CancelSlot(Mutex<SlotState>);

impl std::fmt::Debug for CancelSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = lock(&self.0);
        f.debug_struct("CancelSlot")
            .field("running", &s.running.is_some())
            .field("abandoned", &s.abandoned)
            .field("cancel_sent", &s.cancel_sent)
            .finish()
    }
}

#[derive(Default)]
struct SlotState {
    /// The running statement's cancel token, the TLS settings its
    /// connection was made with (the cancel request uses them too), and its
    /// start time.
    running: Option<(CancelToken, Tls, Instant)>,
    /// Nobody wants the results any more.
    abandoned: bool,
    /// A cancel request went out: the connection must not be reused.
    cancel_sent: bool,
}

impl CancelSlot {
    /// Publishes the token of the connection about to run the statement;
    /// false if the query was abandoned already.
    pub(super) fn start(&self, token: CancelToken, tls: Tls) -> bool {
        let mut s = lock(&self.0);
        s.running = Some((token, tls, Instant::now()));
        !s.abandoned
    }

    /// Withdraws the token; true if a cancel was sent meanwhile (the
    /// connection must then be discarded).
    pub(super) fn finish(&self) -> bool {
        let mut s = lock(&self.0);
        s.running = None;
        s.cancel_sent
    }

    /// Whether the subscription that wanted these results is gone.
    pub fn is_abandoned(&self) -> bool {
        lock(&self.0).abandoned
    }

    /// Marks the results unwanted. Returns whether a statement is running: the
    /// caller may only drop the query task when none is, since dropping it
    /// mid-statement loses its pooled connection. A running statement that
    /// has already used up `grace` is cancelled now, a younger one when it
    /// does (if it is still running then).
    pub fn abandon(self: &Arc<Self>, grace: Duration) -> bool {
        let age = {
            let mut s = lock(&self.0);
            s.abandoned = true;
            match &s.running {
                Some((_, _, started)) => started.elapsed(),
                None => return false,
            }
        };
        match grace.checked_sub(age) {
            None | Some(Duration::ZERO) => self.cancel(),
            Some(left) => {
                let slot = Arc::clone(self);
                tokio::spawn(async move {
                    tokio::time::sleep(left).await;
                    slot.cancel();
                });
            }
        }
        true
    }

    /// Asks the server to cancel the running statement, if any, without
    /// waiting; the query then fails with [`DbError::Canceled`].
    pub fn cancel(&self) {
        let (token, tls) = {
            let mut s = lock(&self.0);
            s.abandoned = true;
            match s.running.take() {
                Some((token, tls, _)) => {
                    s.cancel_sent = true;
                    (token, tls)
                }
                None => return,
            }
        };
        tokio::spawn(async move {
            if let Err(e) = token.cancel_query(tls).await {
                tracing::debug!("cancel request failed: {e}");
            }
        });
    }
}
