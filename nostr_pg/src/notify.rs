//! One notification per transaction that accepted events.
//!
//! Every accepted event, stored or ephemeral, is written to `nostr.transit`
//! with the id of the transaction that accepted it (see `sql/schema.sql`).
//! Just before commit one `NOTIFY nostr_events, '<xid>'` names that
//! transaction; a listener reads exactly what it accepted with
//! `nostr.changes(ARRAY['<xid>']::xid8[])`. Naming the transaction, rather than
//! a range of rows, means a notification can never name another
//! transaction's rows, and what it names stays readable even if the events
//! are replaced or deleted before the listener gets to them.
//!
//! Notifying once per transaction, not per row, matters: the commit-time
//! notify lock serialises committing transactions, so the cost must be paid
//! once per batch.
//!
//! A listener that lost notifications (its connection dropped) finds the
//! transactions it missed with `nostr.committed_between(since, upto)`, two
//! `pg_snapshot`s; that is how the gateway keeps its promise of exactly-once
//! live delivery (gateway/src/fanout/listener.rs).

use std::cell::Cell;

use pgrx::prelude::*;
use pgrx::{register_xact_callback, PgXactCallbackEvent};

pub const CHANNEL: &str = "nostr_events";

thread_local! {
    /// Whether the current transaction accepted an event. Backend-local by
    /// nature: each Postgres backend is one process.
    static PENDING: Cell<bool> = const { Cell::new(false) };
}

/// Records that the current transaction accepted an event (written to
/// `nostr.transit`), so that its commit notifies listeners.
pub fn record() {
    if !PENDING.with(|p| p.replace(true)) {
        register_xact_callback(PgXactCallbackEvent::PreCommit, send);
        register_xact_callback(PgXactCallbackEvent::Abort, || PENDING.with(|p| p.set(false)));
    }
}

fn send() {
    if !PENDING.with(|p| p.replace(false)) {
        return;
    }
    // SAFETY: reads the current transaction's state; it has an id, since it
    // wrote to nostr.transit (an invalid one would be 0 and name nothing).
    let xid = unsafe { pg_sys::GetTopFullTransactionIdIfAny() }.value;
    if xid == 0 {
        return;
    }
    let payload = xid.to_string();
    // SAFETY: pg_notify takes two text arguments; both datums are valid text.
    unsafe {
        pgrx::direct_function_call::<()>(pg_sys::pg_notify, &[CHANNEL.into_datum(), payload.into_datum()]);
    }
}
