//! Moderation in the publish rules: banned authors and events, the author and
//! kind allow lists, disallowed kinds and blocked client addresses, kept in
//! the tables of `sql/moderation.sql` and checked for every event the insert
//! trigger admits (so publish, publish_batch, INSERT, COPY and imports alike).
//!
//! Cost: most relays have few or no moderation rows, and the check runs per
//! event. Each backend remembers which of the tables have rows and skips the
//! empty ones without a statement; a table with rows costs one indexed probe.
//! Every write to a moderation table runs a statement trigger that queues a
//! relation-cache invalidation of that table (`_invalidate_moderation`),
//! which every backend receives once the write commits (and the writing
//! backend at once); the callback registered here then forgets what was
//! remembered. The check reads pending invalidations first, and a moderation
//! function takes the same advisory lock (author or id) as the publish it
//! races, which it waits for (`nostr._lock_author`, `nostr._lock_id` in
//! [`crate::rules`]): a ban that committed before an event's check is always
//! seen, and an event checked before the ban is deleted by it.

use std::cell::Cell;

use nostr_pg_core::{hex, Event};
use pgrx::prelude::*;
use pgrx::spi::{SpiClient, SpiResult};

use crate::reject::Reject;
use crate::spi_cache::{oid, run};

/// The moderation tables, in the order of [`Present`]'s fields.
const TABLES: [&str; 6] = [
    "nostr.banned_pubkeys",
    "nostr.allowed_pubkeys",
    "nostr.banned_events",
    "nostr.allowed_kinds",
    "nostr.disallowed_kinds",
    "nostr.blocked_ips",
];

/// Which moderation tables had rows when last looked at, and their oids
/// (to recognise their invalidations).
#[derive(Debug, Clone, Copy, Default)]
struct Present {
    has_rows: [bool; 6],
    relids: [pg_sys::Oid; 6],
}

impl Present {
    fn any(&self) -> bool {
        self.has_rows.iter().any(|r| *r)
    }
}

thread_local! {
    // Backend-local; a Cell (no borrow held) because the invalidation
    // callback may run inside any statement.
    static PRESENT: Cell<Option<Present>> = const { Cell::new(None) };
}

/// Registers the relation-cache callback that forgets [`PRESENT`] when a
/// moderation table changed (or everything was invalidated).
pub fn register_invalidation() {
    #[pg_guard]
    unsafe extern "C-unwind" fn forget(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
        PRESENT.with(|p| {
            let stale = match p.get() {
                Some(present) => relid == pg_sys::InvalidOid || present.relids.contains(&relid),
                None => false,
            };
            if stale {
                p.set(None);
            }
        });
    }
    // SAFETY: called once from _PG_init; `forget` only touches a thread-local.
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(Some(forget), pg_sys::Datum::from(0));
    }
}

/// Queues an invalidation of `rel` (a moderation table that was written), so
/// that every backend reads the moderation tables anew after the commit.
/// Called by the statement triggers of `sql/moderation.sql`.
#[pg_extern(volatile, strict, parallel_unsafe)]
fn _invalidate_moderation(rel: pg_sys::Oid) {
    // SAFETY: looks the relation up by oid; an unknown oid is an ordinary
    // ERROR ("cache lookup failed"), which the trigger's relation never is.
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(rel) }
}

/// Which moderation tables have rows: remembered until one of them changes.
/// Under REPEATABLE READ or SERIALIZABLE the answer belongs to the
/// transaction's snapshot and is not remembered.
fn present(client: &mut SpiClient<'_>) -> SpiResult<Present> {
    // SAFETY: reads the shared invalidation queue, as every transaction
    // start and lock acquisition does; runs `forget` for what is new.
    unsafe { pg_sys::AcceptInvalidationMessages() };
    if let Some(p) = PRESENT.with(Cell::get) {
        return Ok(p);
    }
    let probe = run(
        client,
        "SELECT EXISTS (SELECT 1 FROM nostr.banned_pubkeys), EXISTS (SELECT 1 FROM nostr.allowed_pubkeys),
                EXISTS (SELECT 1 FROM nostr.banned_events), EXISTS (SELECT 1 FROM nostr.allowed_kinds),
                EXISTS (SELECT 1 FROM nostr.disallowed_kinds), EXISTS (SELECT 1 FROM nostr.blocked_ips),
                ARRAY['nostr.banned_pubkeys'::regclass, 'nostr.allowed_pubkeys'::regclass,
                      'nostr.banned_events'::regclass, 'nostr.allowed_kinds'::regclass,
                      'nostr.disallowed_kinds'::regclass, 'nostr.blocked_ips'::regclass]::oid[]::int8[]",
        &[],
        &[],
    )?;
    let row = probe.first();
    let mut present = Present::default();
    for (i, has) in present.has_rows.iter_mut().enumerate() {
        *has = row.get::<bool>(i + 1)?.unwrap_or(true);
    }
    let relids: Vec<i64> = row.get(TABLES.len() + 1)?.unwrap_or_default();
    for (slot, relid) in present.relids.iter_mut().zip(relids) {
        *slot = pg_sys::Oid::from(u32::try_from(relid).unwrap_or(0));
    }
    // SAFETY: a plain integer of the current transaction's state.
    let snapshot_per_transaction = unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32;
    if !snapshot_per_transaction {
        PRESENT.with(|p| p.set(Some(present)));
    }
    Ok(present)
}

/// One statement for every probe (a round trip through SPI costs more than
/// an index probe): each is guarded by whether its table has rows
/// ($1..$6, in the order of [`TABLES`]), and an `AND` whose left side is
/// false never runs its subquery. The answer names the first refusal.
const PROBE: &str = "SELECT CASE
    WHEN $3 AND EXISTS (SELECT 1 FROM nostr.banned_events WHERE id = $7) THEN 'event'
    WHEN $1 AND EXISTS (SELECT 1 FROM nostr.banned_pubkeys WHERE pubkey = $8) THEN 'pubkey'
    WHEN $2 AND NOT EXISTS (SELECT 1 FROM nostr.allowed_pubkeys WHERE pubkey = $8) THEN 'unlisted'
    WHEN $5 AND EXISTS (SELECT 1 FROM nostr.disallowed_kinds WHERE kind = $9) THEN 'kind'
    WHEN $4 AND NOT EXISTS (SELECT 1 FROM nostr.allowed_kinds WHERE kind = $9) THEN 'kind'
    WHEN $6 AND $10::inet IS NOT NULL AND EXISTS (SELECT 1 FROM nostr.blocked_ips WHERE ip >>= $10::inet) THEN 'address'
END";

/// Refuses `event` (`blocked:`) if moderation forbids it: a banned event or
/// author, an author missing from a non-empty allow list, a disallowed kind
/// or one missing from a non-empty kind allow list, or a client address
/// (`addr`, inet text, when known) in a blocked network.
pub fn check(client: &mut SpiClient<'_>, event: &Event, addr: Option<&str>) -> SpiResult<Result<(), Reject>> {
    let present = present(client)?;
    if !present.any() {
        return Ok(Ok(()));
    }
    let bool_ = oid::<bool>();
    let b = oid::<Vec<u8>>();
    let kind = i32::from(event.kind);
    let mut types = vec![bool_; TABLES.len()];
    types.extend([b, b, oid::<i32>(), oid::<String>()]);
    let mut args: Vec<pgrx::datum::DatumWithOid<'_>> = present.has_rows.iter().map(|has| (*has).into()).collect();
    args.extend([
        event.id.to_vec().into(),
        event.pubkey.to_vec().into(),
        kind.into(),
        addr.map(str::to_owned).into(),
    ]);
    let refused = run(client, PROBE, &types, &args)?.first().get_one::<String>()?;
    let detail = match refused.as_deref() {
        None => return Ok(Ok(())),
        Some("event") => "this event is banned from this relay".to_owned(),
        Some("pubkey") => "this pubkey is banned from this relay".to_owned(),
        Some("unlisted") => format!(
            "pubkey {} is not on this relay's allow list",
            hex::encode(&event.pubkey)
        ),
        Some("kind") => format!("kind {kind} is not accepted by this relay"),
        Some(_) => "your address is blocked from this relay".to_owned(),
    };
    Ok(Err(Reject::Blocked(detail)))
}
