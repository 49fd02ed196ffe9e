//! The publish rules of every kind class, in one place. They run inside the
//! insert trigger on `nostr.events`, so the relay, plain SQL, COPY and imports
//! all obey them; nothing reaches the table around them.
//!
//! Races are closed with transaction-scoped advisory locks taken before any
//! check: one per event id (duplicate insert vs. insert), one per replaceable
//! address (two versions at once), and one per author (shared by ordinary
//! inserts, exclusive for a deletion or vanish request, which only ever touch
//! the author's own events: so a deletion and an insert of one of its targets
//! wait for each other). Each check then runs as its own statement, so under
//! READ COMMITTED it sees whatever the transaction it waited for committed.
//! Unique indexes back this up. An event takes at most [`MAX_LOCKS_PER_EVENT`]
//! locks, however many tags it has: they are held until commit, in the
//! server's shared lock table.

use std::time::{SystemTime, UNIX_EPOCH};

use nostr_pg_core::kind::{DELETION, VANISH};
use nostr_pg_core::{hex, tags, Event, KindClass};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::{SpiClient, SpiResult};
use sha2::{Digest, Sha256};

use crate::moderation;
use crate::policy::{self, Verdict};
use crate::reject::Reject;
use crate::settings;
use crate::spi_cache::{oid, run};

/// What to do with an admitted event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Insert it into `nostr.events`.
    Store,
    /// Deliver it to listeners only (through `nostr.transit`), never store it.
    Ephemeral,
    /// Neither store nor deliver it, but answer as if accepted: the write
    /// policy shadow-rejected it (with this note).
    Shadow(String),
}

/// A lock the rules take: an advisory key, shared or exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LockKey {
    pub key: i64,
    pub exclusive: bool,
}

fn lock_key(domain: &[u8], parts: &[&[u8]]) -> i64 {
    let mut h = Sha256::new();
    h.update(domain);
    for p in parts {
        h.update(p);
    }
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(digest.get(..8).unwrap_or(&[0; 8]));
    i64::from_le_bytes(first)
}

pub fn id_lock(id: &[u8; 32]) -> LockKey {
    LockKey {
        key: lock_key(b"id", &[id]),
        exclusive: true,
    }
}

fn address_lock(pubkey: &[u8; 32], kind: u16, d_key: &str) -> LockKey {
    LockKey {
        key: lock_key(b"addr", &[pubkey, &kind.to_le_bytes(), d_key.as_bytes()]),
        exclusive: true,
    }
}

pub fn author_lock(pubkey: &[u8; 32], exclusive: bool) -> LockKey {
    LockKey {
        key: lock_key(b"author", &[pubkey]),
        exclusive,
    }
}

/// The replaceable-address key stored in `nostr.events.d_key`: `''` for
/// replaceable kinds, the `d` tag's index key for addressable ones, `None` for
/// the rest.
pub fn d_key(event: &Event) -> Option<String> {
    match event.class() {
        KindClass::Replaceable => Some(String::new()),
        KindClass::Addressable => Some(tags::key("d", event.d_tag())),
        _ => None,
    }
}

/// A NIP-09 `a` tag target: `<kind>:<pubkey>:<d>`, only when it names the
/// deleter's own replaceable or addressable events.
fn address_target(value: &str, author: &[u8; 32]) -> Option<(u16, String)> {
    let mut parts = value.splitn(3, ':');
    let kind: u16 = parts.next()?.parse().ok()?;
    let pubkey = hex::decode_fixed::<32>(parts.next()?)?;
    let d = parts.next().unwrap_or("");
    if &pubkey != author {
        return None;
    }
    match KindClass::of(kind) {
        KindClass::Replaceable => Some((kind, String::new())),
        KindClass::Addressable => Some((kind, tags::key("d", d))),
        _ => None,
    }
}

fn is_vanish_for_us(event: &Event) -> bool {
    if event.kind != VANISH {
        return false;
    }
    let ours = settings::relay_url();
    event.tag_values("relay").any(|r| {
        r == "ALL_RELAYS"
            || ours
                .as_deref()
                .is_some_and(|u| u.trim_end_matches('/') == r.trim_end_matches('/'))
    })
}

/// The most locks [`locks_for`] returns for one event.
pub const MAX_LOCKS_PER_EVENT: usize = 3;

/// Every lock admitting `event` takes, so a batch can take them all up front in
/// one global order (no deadlocks between concurrent batches): its id, its
/// author, and its address if it has one. A deletion locks its author
/// exclusively rather than each target (NIP-09 lets it delete only the
/// author's own events, and every insert of those holds the author's lock):
/// one lock per `e` or `a` tag would let one event fill the lock table.
pub fn locks_for(event: &Event) -> Vec<LockKey> {
    let exclusive = event.kind == DELETION || is_vanish_for_us(event);
    let mut keys = vec![id_lock(&event.id), author_lock(&event.pubkey, exclusive)];
    if let Some(d) = d_key(event) {
        keys.push(address_lock(&event.pubkey, event.kind, &d));
    }
    keys
}

/// Waits for (and then blocks, until commit) every publish of this author's
/// events: `nostr.ban_pubkey` calls it before deleting them.
#[pg_extern(volatile, strict, parallel_unsafe)]
fn _lock_author(pubkey: &[u8]) {
    acquire(vec![author_lock(&key32(pubkey, "pubkey"), true)]);
}

/// Waits for (and then blocks, until commit) every publish of this event:
/// `nostr.ban_event` calls it before deleting it.
#[pg_extern(volatile, strict, parallel_unsafe)]
fn _lock_id(id: &[u8]) {
    acquire(vec![id_lock(&key32(id, "event id"))]);
}

fn key32(bytes: &[u8], what: &str) -> [u8; 32] {
    match <[u8; 32]>::try_from(bytes) {
        Ok(k) => k,
        Err(_) => crate::reject::raise_invalid(
            format!("invalid {what}: expected 32 bytes, got {}", bytes.len()),
            "nostr moderation lock",
        ),
    }
}

/// Takes advisory locks in key order (exclusive first for equal keys).
pub fn acquire(mut keys: Vec<LockKey>) {
    keys.sort_by(|a, b| a.key.cmp(&b.key).then(b.exclusive.cmp(&a.exclusive)));
    keys.dedup_by_key(|k| k.key);
    for k in keys {
        let f = if k.exclusive {
            pg_sys::pg_advisory_xact_lock_int8
        } else {
            pg_sys::pg_advisory_xact_lock_shared_int8
        };
        // SAFETY: both functions take one int8 argument and return void.
        unsafe {
            pgrx::direct_function_call_as_datum(f, &[k.key.into_datum()]);
        }
    }
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Checks that need no database: time window, proof of work, protection, expiry.
pub fn static_checks(event: &Event, auth: Option<&[u8; 32]>, now: i64) -> Result<(), Reject> {
    let future = i64::from(settings::MAX_FUTURE_SECONDS.get());
    if event.created_at > now.saturating_add(future) {
        return Err(Reject::Invalid(format!(
            "created_at is more than {future} seconds in the future"
        )));
    }
    let past = i64::from(settings::MAX_PAST_SECONDS.get());
    if past > 0 && event.created_at < now.saturating_sub(past) {
        return Err(Reject::Invalid(format!(
            "created_at is more than {past} seconds in the past"
        )));
    }
    let min_pow = u32::try_from(settings::MIN_POW.get()).unwrap_or(0);
    let pow = event.pow_difficulty();
    if pow < min_pow {
        return Err(Reject::Pow(format!("difficulty {pow} is less than {min_pow}")));
    }
    if event.is_protected() {
        match auth {
            None => {
                return Err(Reject::AuthRequired(
                    "this event may only be published by its author".into(),
                ))
            }
            Some(pk) if pk != &event.pubkey => {
                return Err(Reject::Restricted(
                    "this event may only be published by its author".into(),
                ))
            }
            Some(_) => {}
        }
    }
    if event.expiration().is_some_and(|t| t <= now) {
        return Err(Reject::Invalid("event has expired".into()));
    }
    Ok(())
}

fn bytea(b: &[u8]) -> DatumWithOid<'static> {
    DatumWithOid::from(b.to_vec())
}

fn exists(client: &mut SpiClient<'_>, sql: &str, types: &[pgrx::PgOid], args: &[DatumWithOid<'_>]) -> SpiResult<bool> {
    Ok(!run(client, sql, types, args)?.is_empty())
}

/// Decides whether `event` may be stored, performing the side effects its
/// kind requires (replacing an older version, deleting, vanishing). `auth`
/// is the sender's NIP-42 pubkey, `addr` its address (inet text), when known.
/// Order: the checks that need no database; the locks; moderation
/// ([`moderation::check`]); the operator's write policy ([`policy::ask`]),
/// before anything is changed, so a shadow-rejected event has no effect at
/// all; then the rules of the kind class.
pub fn admit(
    client: &mut SpiClient<'_>,
    event: &Event,
    auth: Option<&[u8; 32]>,
    addr: Option<&str>,
) -> SpiResult<Result<Admission, Reject>> {
    let now = now();
    if let Err(r) = static_checks(event, auth, now) {
        return Ok(Err(r));
    }
    acquire(locks_for(event));
    if let Err(r) = moderation::check(client, event, addr)? {
        return Ok(Err(r));
    }
    match policy::ask(client, event, auth, addr)? {
        Verdict::Accept => {}
        Verdict::Reject(r) => return Ok(Err(r)),
        Verdict::Shadow(note) => return Ok(Ok(Admission::Shadow(note))),
    }
    let b = oid::<Vec<u8>>();
    let i4 = oid::<i32>();
    let i8 = oid::<i64>();
    let t = oid::<String>();

    if exists(
        client,
        "SELECT 1 FROM nostr.events WHERE id = $1",
        &[b],
        &[bytea(&event.id)],
    )? {
        return Ok(Err(Reject::Duplicate("already have this event".into())));
    }
    if exists(
        client,
        "SELECT 1 FROM nostr.deleted_ids WHERE id = $1 AND pubkey = $2",
        &[b, b],
        &[bytea(&event.id), bytea(&event.pubkey)],
    )? {
        return Ok(Err(Reject::Blocked("this event was deleted by its author".into())));
    }
    if exists(
        client,
        "SELECT 1 FROM nostr.vanished WHERE pubkey = $1 AND until_created_at >= $2",
        &[b, i8],
        &[bytea(&event.pubkey), event.created_at.into()],
    )? {
        return Ok(Err(Reject::Blocked(
            "this author asked to vanish from this relay".into(),
        )));
    }

    let class = event.class();
    if let Some(d) = d_key(event) {
        let kind = i32::from(event.kind);
        if exists(
            client,
            "SELECT 1 FROM nostr.deleted_addresses WHERE pubkey = $1 AND kind = $2 AND d_key = $3 AND until_created_at >= $4",
            &[b, i4, t, i8],
            &[bytea(&event.pubkey), kind.into(), d.clone().into(), event.created_at.into()],
        )? {
            return Ok(Err(Reject::Blocked("this address was deleted by its author".into())));
        }
        let current = run(
            client,
            "SELECT id, created_at FROM nostr.events WHERE pubkey = $1 AND kind = $2 AND d_key = $3",
            &[b, i4, t],
            &[bytea(&event.pubkey), kind.into(), d.into()],
        )?;
        let mut older = Vec::new();
        for row in current {
            let id: Vec<u8> = row.get(1)?.unwrap_or_default();
            let created_at: i64 = row.get(2)?.unwrap_or(i64::MIN);
            // Newest wins; on equal timestamps the lowest id wins (NIP-01).
            if (created_at, std::cmp::Reverse(id.as_slice()))
                >= (event.created_at, std::cmp::Reverse(event.id.as_slice()))
            {
                return Ok(Err(Reject::Superseded("have a newer version of this event".into())));
            }
            older.push(id);
        }
        for id in older {
            run(
                client,
                "DELETE FROM nostr.events WHERE id = $1",
                &[b],
                &[DatumWithOid::from(id)],
            )?;
        }
    }

    if class == KindClass::Ephemeral {
        return Ok(Ok(Admission::Ephemeral));
    }

    if event.kind == DELETION {
        apply_deletion(client, event)?;
    }
    if is_vanish_for_us(event) {
        apply_vanish(client, event)?;
    }
    Ok(Ok(Admission::Store))
}

/// NIP-09: remove the author's own targets and remember them, so they cannot
/// be published again. Deletion requests themselves are never deleted this way.
/// Set-based (a few statements whatever the number of tags): a deletion may
/// name thousands of targets.
fn apply_deletion(client: &mut SpiClient<'_>, event: &Event) -> SpiResult<()> {
    let b = oid::<Vec<u8>>();
    let bs = oid::<Vec<Vec<u8>>>();
    let i4s = oid::<Vec<i32>>();
    let i8 = oid::<i64>();
    let ts = oid::<Vec<String>>();
    let mut ids: Vec<Vec<u8>> = event
        .tag_values("e")
        .filter_map(hex::decode_fixed::<32>)
        .map(|id| id.to_vec())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    if !ids.is_empty() {
        run(
            client,
            "INSERT INTO nostr.deleted_ids (id, pubkey, deleted_by) SELECT t, $2, $3 FROM unnest($1::bytea[]) t
             ON CONFLICT DO NOTHING",
            &[bs, b, b],
            &[ids.clone().into(), bytea(&event.pubkey), bytea(&event.id)],
        )?;
        run(
            client,
            "DELETE FROM nostr.events WHERE id = ANY($1) AND pubkey = $2 AND kind <> 5",
            &[bs, b],
            &[ids.into(), bytea(&event.pubkey)],
        )?;
    }
    let mut addresses: Vec<(i32, String)> = event
        .tag_values("a")
        .filter_map(|v| address_target(v, &event.pubkey))
        .map(|(kind, d)| (i32::from(kind), d))
        .collect();
    // One row per address: an upsert may not touch a row twice.
    addresses.sort_unstable();
    addresses.dedup();
    if !addresses.is_empty() {
        let (kinds, ds): (Vec<i32>, Vec<String>) = addresses.into_iter().unzip();
        run(
            client,
            "INSERT INTO nostr.deleted_addresses (pubkey, kind, d_key, until_created_at)
             SELECT $1, a.kind, a.d_key, $4 FROM unnest($2::int[], $3::text[]) AS a (kind, d_key)
             ON CONFLICT (pubkey, kind, d_key) DO UPDATE
             SET until_created_at = greatest(nostr.deleted_addresses.until_created_at, excluded.until_created_at)",
            &[b, i4s, ts, i8],
            &[
                bytea(&event.pubkey),
                kinds.clone().into(),
                ds.clone().into(),
                event.created_at.into(),
            ],
        )?;
        run(
            client,
            "DELETE FROM nostr.events e USING unnest($2::int[], $3::text[]) AS a (kind, d_key)
             WHERE e.pubkey = $1 AND e.kind = a.kind AND e.d_key = a.d_key AND e.created_at <= $4",
            &[b, i4s, ts, i8],
            &[bytea(&event.pubkey), kinds.into(), ds.into(), event.created_at.into()],
        )?;
    }
    Ok(())
}

/// NIP-62: delete everything the author published up to the request, and the
/// gift wraps addressed to them, and refuse their older events from now on.
fn apply_vanish(client: &mut SpiClient<'_>, event: &Event) -> SpiResult<()> {
    let b = oid::<Vec<u8>>();
    let i8 = oid::<i64>();
    run(
        client,
        "INSERT INTO nostr.vanished (pubkey, until_created_at) VALUES ($1, $2)
         ON CONFLICT (pubkey) DO UPDATE
         SET until_created_at = greatest(nostr.vanished.until_created_at, excluded.until_created_at)",
        &[b, i8],
        &[bytea(&event.pubkey), event.created_at.into()],
    )?;
    run(
        client,
        "DELETE FROM nostr.events WHERE pubkey = $1 AND created_at <= $2",
        &[b, i8],
        &[bytea(&event.pubkey), event.created_at.into()],
    )?;
    let p_key = tags::key("p", &hex::encode(&event.pubkey));
    run(
        client,
        "DELETE FROM nostr.events WHERE kind = 1059 AND tags @> ARRAY[$1] AND created_at <= $2",
        &[oid::<String>(), i8],
        &[p_key.into(), event.created_at.into()],
    )?;
    Ok(())
}
