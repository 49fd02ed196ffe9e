//! Rows coming back from a dump (`pg_restore`, or `psql` running a plain
//! dump): they are stored as they were, without the publish rules.
//!
//! The tables of the extension are registered with
//! `pg_extension_config_dump` (`sql/schema.sql`), so a dump holds their rows
//! and a restore loads them with `COPY` after `CREATE EXTENSION` has created
//! the tables and their triggers. The insert trigger therefore sees every
//! restored event. Running the publish rules on them would refuse valid rows
//! and change others: an expired event, a protected one (no authenticated
//! pubkey), one older than `nostr.max_past_seconds` or below `nostr.min_pow`
//! fail the whole `COPY`; a vanish request is refused by its own entry in
//! `nostr.vanished`, and replaying it would delete gift wraps stored after
//! it. The rules were applied when the events were first accepted; a restore
//! must give back the same relay, so it skips them.
//!
//! How a restored row is recognised: it brings its own `seq` (a dump holds
//! every column), where a published one leaves `seq` out and is numbered by
//! the trigger. Only a role that owns `nostr.events` (or a superuser) may do
//! that: such a role could disable the trigger anyway, so this grants it
//! nothing new, while an ordinary role that supplies `seq` is refused rather
//! than let around the rules. Restoring the extension needs a superuser in
//! any case (`CREATE EXTENSION nostr_pg`).
//!
//! What a restored row still gets: its `event` value was verified by the
//! type's input function (id and signature); its derived columns are
//! recomputed from it like any other row's; the unique indexes (id, address,
//! seq) still hold. It is not written to `nostr.transit` (it is not news:
//! live subscribers must not receive a restored archive).

use pgrx::prelude::*;
use pgrx::PgTrigger;

use crate::reject::Reject;

/// Whether the role inserting into the trigger's table may store rows as
/// they are: it has the privileges of the table's owner (superusers do).
pub fn may_restore(trigger: &PgTrigger<'_>) -> bool {
    let Ok(relation) = trigger.relation() else {
        return false;
    };
    // SAFETY: the trigger's relation is open (Postgres holds a lock on it
    // while the trigger runs), so its pg_class entry is valid; a null one is
    // treated as no privilege.
    let owner = match unsafe { relation.rd_rel.as_ref() } {
        Some(class) => class.relowner,
        None => return false,
    };
    // SAFETY: plain catalog lookups on the current user and a role oid.
    unsafe { pg_sys::has_privs_of_role(pg_sys::GetUserId(), owner) }
}

/// The refusal for a role that supplied `seq` without the right to restore.
pub fn refusal() -> Reject {
    Reject::Restricted(
        "only the owner of nostr.events may insert rows with their own seq (restoring a dump); \
         leave seq out to publish"
            .into(),
    )
}
