//! Which server answers a stored query (REQ, COUNT, a NIP-77 NEG-OPEN's
//! items): a read replica when its
//! answer is as good as the primary's, the primary otherwise. Publishes, the
//! LISTEN connection and `nostr.changes` reads always use the primary.
//!
//! Why a replica's answer can be as good, and when it is not:
//!
//! A REQ's stored part and its live part are stitched by transaction ids
//! (see `fanout/mod.rs` and `subscription.rs`): the subscription enters the
//! live index at T0, its query reports the snapshot S it read in, and a
//! live event is sent only if its transaction is not visible in S. On the
//! primary, S is taken after T0, so it sees every transaction delivered
//! before T0 (those never reach the new subscription live). Exactness needs
//! two things, and a standby's snapshot gives neither for free:
//!
//! 1. Nothing lost: every transaction claimed for live delivery before T0
//!    must be visible in S. A standby's S is as of its replay, which may be
//!    older than T0. [`Fanout::read_fence`], read after T0, bounds those
//!    transactions (all below `fence.below`, since a claim is taken before
//!    anyone is answered `OK` or sent the event); the replica's answer is
//!    used only if its snapshot's `xmin` is at or past that bound, so all of
//!    them had been replayed when it read.
//! 2. Nothing twice, nothing skipped: `visible(xid)` computed from S must
//!    say exactly what the replica's query saw. On a hot standby
//!    `pg_current_snapshot()` reports `xmin:xmax` but an empty running list
//!    (PostgreSQL 15 keeps the primary's running transactions in the
//!    snapshot's subtransaction array during recovery, and the function only
//!    copies the top-level one), so for a transaction between `xmin` and
//!    `xmax` it cannot say whether the query saw it. S is exact only when
//!    `xmin == xmax`: nothing was running at that point of the replay, and
//!    the query saw precisely the transactions below `xmax`. Any later
//!    transaction committed after that point of the replay, so the live
//!    stream (which follows the primary) sends it.
//!
//! So a REQ is answered from a replica when the replica's snapshot is settled
//! (`xmin == xmax`) and covers the fence; otherwise its answer is dropped and
//! the primary answers (counted in `nostr_gateway_replica_fallbacks_total`
//! as `unsettled` or `behind`). With writes in flight on the primary, some
//! replica reads land between a transaction's first replayed record and its
//! commit and fall back; with few writes, nearly all are served by replicas.
//! A COUNT has no live part: it needs only point 1, and `xmin` is a safe
//! bound there (everything below it had finished when it read). Nor has a
//! NEG-OPEN: its items are judged like a COUNT (read in a repeatable-read
//! transaction that reports its snapshot), so a reconciliation never misses
//! an event this gateway answered `OK` for before it.
//!
//! The transit table is unlogged, so a standby cannot report its
//! incarnation; a replica read carries the one the listener last checked in
//! to, which can only make a later gap end the subscription, never keep it
//! alive wrongly (the gap logic keeps a read alive only in the incarnation
//! that survived).
//!
//! Read-your-writes follows from point 1, with no LSN bookkeeping: an event
//! answered `OK true` as new was claimed for live delivery before the answer,
//! so every later REQ or COUNT of any connection of this gateway is served by
//! a replica only if that replica has replayed its commit, and otherwise by
//! the primary. The cost of a replica that has not caught up is one wasted
//! replica read, not a wait. (An event answered `duplicate:` that another
//! gateway committed moments before is covered only once this gateway has
//! heard of that commit.)

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::db::replicas::Replica;
use crate::db::standby::ReplicaRead;
use crate::db::{CancelSlot, DbError, NegQuery, NegRead, Stored, INVALID_PARAMETER};
use crate::fanout::ReadFence;
use crate::relay::Relay;
use crate::snapshot::{ReadPoint, Snapshot};

/// Why the primary answered although replicas are configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fallback {
    /// No replica in rotation.
    NoneUp,
    /// Every replica tried failed.
    Error,
    /// The replica had not replayed what was delivered before the query.
    Behind,
    /// The replica's snapshot had transactions running (REQ only).
    Unsettled,
}

impl Fallback {
    fn label(self) -> &'static str {
        match self {
            Fallback::NoneUp => "none_up",
            Fallback::Error => "error",
            Fallback::Behind => "behind",
            Fallback::Unsettled => "unsettled",
        }
    }
}

/// What a stored query needs from a replica's snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// A REQ: settled, and covering the fence.
    Exact,
    /// A COUNT: covering the fence.
    Covering,
}

/// Whether a replica read at `snapshot` may answer; the fallback if not.
fn usable(snapshot: &Snapshot, fence: &ReadFence, need: Need) -> Result<(), Fallback> {
    if need == Need::Exact && !snapshot.is_settled() {
        return Err(Fallback::Unsettled);
    }
    if snapshot.xmin() < fence.below {
        return Err(Fallback::Behind);
    }
    Ok(())
}

/// Errors a replica reports that the primary would report too: the
/// client's filter, or its closing the subscription (`abandoned`). Anything
/// else, a replica's `statement_timeout` included, is the replica's.
fn is_the_querys(e: &DbError, abandoned: bool) -> bool {
    match e {
        DbError::Canceled => abandoned,
        DbError::Sql { code, .. } => code == INVALID_PARAMETER,
        _ => false,
    }
}

/// Runs `read` on the replicas in rotation until one gives a usable answer.
/// `Ok(None)` means the primary must answer (the fallback counted).
async fn on_replicas<'a, T, F, Fut>(
    relay: &'a Relay,
    fence: &ReadFence,
    need: Need,
    slot: &CancelSlot,
    read: F,
) -> Result<Option<ReplicaRead<T>>, DbError>
where
    F: Fn(&'a Replica) -> Fut,
    Fut: std::future::Future<Output = Result<ReplicaRead<T>, DbError>>,
{
    let replicas = relay.replicas.in_rotation();
    let mut fallback = Fallback::NoneUp;
    for replica in replicas {
        match read(replica).await {
            Ok(r) => match usable(&r.snapshot, fence, need) {
                Ok(()) => {
                    replica.answered();
                    return Ok(Some(r));
                }
                Err(why) => {
                    // Another replica is unlikely to be further along; the
                    // primary is sure to be.
                    fallback = why;
                    break;
                }
            },
            Err(e) if is_the_querys(&e, slot.is_abandoned()) => return Err(e),
            Err(e) => {
                // A lost connection takes the replica out until a check finds
                // it healthy; a statement error (a recovery conflict, a full
                // pool) costs only this query.
                if e.is_connection() {
                    relay.replicas.take_out(replica, &e);
                }
                fallback = Fallback::Error;
            }
        }
    }
    relay.metrics.replica_fallback(fallback.label());
    Ok(None)
}

/// The fence a replica's answer must cover, or `None` when no replica is
/// configured: then the claims lock (which live delivery takes for every
/// transaction) is not touched on each REQ and COUNT.
fn replica_fence(relay: &Relay) -> Option<ReadFence> {
    if relay.replicas.is_empty() {
        return None;
    }
    relay.fanout.read_fence()
}

/// A REQ's stored events and where they were read.
pub async fn req(
    relay: &Relay,
    filters: &str,
    viewers: Option<&[String]>,
    slot: &CancelSlot,
) -> Result<Stored, DbError> {
    // Read after the subscription entered the live index (the caller's
    // order), so it covers everything delivered before.
    if let Some(fence) = replica_fence(relay) {
        let answer = on_replicas(relay, &fence, Need::Exact, slot, |r| {
            r.db.req_on_replica(filters, viewers, slot)
        })
        .await?;
        if let Some(ReplicaRead { snapshot, answer }) = answer {
            return Ok(Stored {
                read: ReadPoint {
                    snapshot,
                    epoch: Some(fence.epoch),
                },
                events: answer,
            });
        }
    }
    relay.db.req(filters, viewers, slot).await
}

/// A COUNT's answer.
pub async fn count(
    relay: &Relay,
    filters: &str,
    viewers: Option<&[String]>,
    slot: &CancelSlot,
) -> Result<i64, DbError> {
    if let Some(fence) = replica_fence(relay) {
        let answer = on_replicas(relay, &fence, Need::Covering, slot, |r| {
            r.db.count_on_replica(filters, viewers, slot)
        })
        .await?;
        if let Some(read) = answer {
            return Ok(read.answer);
        }
    }
    relay.db.count(filters, viewers, slot).await
}

/// A NEG-OPEN's items, their records reserved from `budget` while read
/// (a replica's answer that cannot be used gives them back when dropped).
pub async fn neg_items(relay: &Relay, q: &NegQuery<'_>, budget: &Arc<Semaphore>) -> Result<NegRead, DbError> {
    if let Some(fence) = replica_fence(relay) {
        let slot = CancelSlot::default();
        let answer = on_replicas(relay, &fence, Need::Covering, &slot, |r| async move {
            let (read, snapshot) = r.db.neg_items(q, Some(budget), true).await?;
            let snapshot = snapshot.ok_or_else(|| DbError::Protocol("no snapshot from the replica".into()))?;
            Ok(ReplicaRead { snapshot, answer: read })
        })
        .await?;
        if let Some(read) = answer {
            return Ok(read.answer);
        }
    }
    Ok(relay.db.neg_items(q, Some(budget), false).await?.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(text: &str) -> Snapshot {
        Snapshot::parse(text).unwrap_or_else(|| panic!("{text}"))
    }

    #[test]
    fn a_replica_answers_only_when_exact_and_caught_up() {
        let fence = ReadFence { below: 10, epoch: 1 };
        assert_eq!(usable(&snap("10:10:"), &fence, Need::Exact), Ok(()));
        assert_eq!(usable(&snap("12:12:"), &fence, Need::Exact), Ok(()));
        assert_eq!(
            usable(&snap("9:9:"), &fence, Need::Exact),
            Err(Fallback::Behind),
            "transaction 9 was delivered before the REQ and the replica has not replayed it"
        );
        assert_eq!(
            usable(&snap("10:12:"), &fence, Need::Exact),
            Err(Fallback::Unsettled),
            "whether 10 and 11 were seen is unknown"
        );
        assert_eq!(usable(&snap("10:12:"), &fence, Need::Covering), Ok(()));
        assert_eq!(usable(&snap("8:12:"), &fence, Need::Covering), Err(Fallback::Behind));
    }

    #[test]
    fn only_the_querys_own_errors_skip_the_fallback() {
        assert!(is_the_querys(&DbError::Canceled, true), "the client closed it");
        assert!(
            !is_the_querys(&DbError::Canceled, false),
            "the replica's statement_timeout"
        );
        let invalid = DbError::Sql {
            code: INVALID_PARAMETER.into(),
            message: "bad filter".into(),
        };
        assert!(is_the_querys(&invalid, false));
        let conflict = DbError::Sql {
            code: "40001".into(),
            message: "canceling statement due to conflict with recovery".into(),
        };
        assert!(!is_the_querys(&conflict, false));
        assert!(!is_the_querys(&DbError::Unavailable("refused".into()), false));
    }
}
