//! One notification per transaction.
//!
//! Each stored or ephemeral event's sequence number is recorded here; just
//! before commit one `NOTIFY nostr_events, '<lo>:<hi>'` names the range. The
//! body is never sent (payloads are capped at 8000 bytes): listeners read the
//! rows the range names with `nostr.changes(lo, hi)`. Ranges of concurrent
//! transactions may overlap and name rows that are not (yet) visible; readers
//! deduplicate by id and rely on each transaction's own notification.
//!
//! Notifying once per transaction, not per row, matters: the commit-time
//! notify lock serialises committing transactions, so the cost must be paid
//! once per batch.

use std::cell::Cell;

use pgrx::prelude::*;
use pgrx::{register_xact_callback, PgXactCallbackEvent};

pub const CHANNEL: &str = "nostr_events";

thread_local! {
    /// The (lo, hi) range recorded in the current transaction, if any.
    /// Backend-local by nature: each Postgres backend is one process.
    static PENDING: Cell<Option<(i64, i64)>> = const { Cell::new(None) };
}

/// Records that `seq` became (or will become, at commit) visible.
pub fn record(seq: i64) {
    PENDING.with(|p| match p.get() {
        Some((lo, hi)) => p.set(Some((lo.min(seq), hi.max(seq)))),
        None => {
            p.set(Some((seq, seq)));
            register_xact_callback(PgXactCallbackEvent::PreCommit, send);
            register_xact_callback(PgXactCallbackEvent::Abort, || PENDING.with(|p| p.set(None)));
        }
    });
}

fn send() {
    let Some((lo, hi)) = PENDING.with(|p| p.take()) else {
        return;
    };
    let payload = format!("{lo}:{hi}");
    // SAFETY: pg_notify takes two text arguments; both datums are valid text.
    unsafe {
        pgrx::direct_function_call::<()>(pg_sys::pg_notify, &[CHANNEL.into_datum(), payload.into_datum()]);
    }
}
