//! `nostr.publish` and `nostr.publish_batch`: the relay's write path.
//!
//! Each event is parsed and verified here, then inserted into `nostr.events`
//! through the same trigger as any SQL insert. While a publish call runs, the
//! trigger hands its verdict back through a backend-local slot instead of
//! raising, so one refused event does not abort the batch; SQL cannot reach
//! that slot. A batch is one statement: one commit and one notification for
//! all of its events.
//!
//! Both functions run with the rights of the extension's owner (`SECURITY
//! DEFINER`, with a fixed `search_path`), and only roles granted EXECUTE may
//! call them (`nostr.grant_relay`, `sql/privileges.sql`). So the gateway's
//! role needs no write privilege on any table: all it can do to the relay's
//! state is publish events through every rule. Were it to insert with its
//! own rights, it would need INSERT and DELETE on `nostr.events` and the
//! tables the rules keep (deletions, vanished authors, transit), and with
//! them could delete any event or block any id around the rules.

use std::cell::RefCell;
use std::collections::BTreeSet;

use nostr_pg_core::batch::DEFERRED;
use nostr_pg_core::{hex, Event, Verifier};
use pgrx::prelude::*;

use crate::event_type::{max_event_bytes, NostrEvent};
use crate::reject::{raise_invalid, Reject};
use crate::rules;
use crate::settings;
use crate::spi_cache::{oid, run};

/// The state of the publish call in progress, if any.
struct Slot {
    auth: Option<[u8; 32]>,
    /// The sender's address (inet text), for moderation and the write policy.
    addr: Option<String>,
    verdict: Option<Result<(), Reject>>,
}

thread_local! {
    // Backend-local: a Postgres backend runs one statement at a time.
    static SLOT: RefCell<Option<Slot>> = const { RefCell::new(None) };
}

/// Clears the slot however the publish call ends (including by error).
struct SlotGuard;

impl SlotGuard {
    fn open(auth: Option<[u8; 32]>, addr: Option<String>) -> SlotGuard {
        SLOT.with(|s| {
            *s.borrow_mut() = Some(Slot {
                auth,
                addr,
                verdict: None,
            })
        });
        SlotGuard
    }

    fn take_verdict(&self) -> Option<Result<(), Reject>> {
        SLOT.with(|s| s.borrow_mut().as_mut().and_then(|slot| slot.verdict.take()))
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        SLOT.with(|s| *s.borrow_mut() = None);
    }
}

/// Whether a publish call is collecting verdicts.
pub fn collecting() -> bool {
    SLOT.with(|s| s.borrow().is_some())
}

/// The authenticated pubkey (NIP-42) of the publish call in progress.
pub fn context_auth() -> Option<[u8; 32]> {
    SLOT.with(|s| s.borrow().as_ref().and_then(|slot| slot.auth))
}

/// The sender's address (inet text) of the publish call in progress.
pub fn context_addr() -> Option<String> {
    SLOT.with(|s| s.borrow().as_ref().and_then(|slot| slot.addr.clone()))
}

/// Called by the trigger with its verdict.
pub fn report(verdict: Result<(), Reject>) {
    SLOT.with(|s| {
        if let Some(slot) = s.borrow_mut().as_mut() {
            slot.verdict = Some(verdict);
        }
    });
}

type Row = (String, bool, String);

/// An input event: its claimed id (hex), and the event or why it was refused.
type Parsed = (String, Result<Event, Reject>);

/// Publishes many events in one statement. One row per input, in order:
/// the claimed id (hex, '' if none could be read), whether it was accepted
/// (the NIP-01 `OK` boolean: true for a new event and for a duplicate), and
/// the NIP-01 message (`duplicate:`, `invalid:`, ... or '' for a new event).
/// `auth_pubkeys[i]` is the NIP-42 pubkey of whoever sent `events[i]`,
/// `client_addrs[i]` its address (inet as text). `nostr.publish_batch`
/// (`sql/publish.sql`) is the public face of this, with `inet[]` addresses
/// (pgrx 0.18 has no arrays of inet).
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn _publish_batch(
    events: Vec<Option<String>>,
    auth_pubkeys: Option<Vec<Option<String>>>,
    client_addrs: Option<Vec<Option<String>>>,
) -> TableIterator<'static, (name!(id, String), name!(accepted, bool), name!(message, String))> {
    TableIterator::new(publish_all(events, auth_pubkeys, client_addrs))
}

fn publish_all(
    events: Vec<Option<String>>,
    auth_pubkeys: Option<Vec<Option<String>>>,
    client_addrs: Option<Vec<Option<String>>>,
) -> Vec<Row> {
    // Each event holds up to three advisory locks until commit (see
    // `rules::locks_for`); `nostr.max_locks_per_batch` bounds the batch's total.
    let max = usize::try_from(settings::MAX_BATCH.get()).unwrap_or(1);
    if events.len() > max {
        raise_invalid(
            format!(
                "publish_batch takes at most {max} events (nostr.max_batch); got {}",
                events.len()
            ),
            "nostr.publish_batch",
        );
    }
    let auths = auth_pubkeys.unwrap_or_default();
    let addrs = client_addrs.unwrap_or_default();
    let verifier = Verifier::new();
    // Verifying is the costly step (tens of microseconds an event): let a
    // cancel or statement timeout interrupt a huge batch.
    let parsed: Vec<Parsed> = events
        .iter()
        .map(|json| {
            pg_sys::check_for_interrupts!();
            parse(json.as_deref(), &verifier)
        })
        .collect();

    // Take every lock the batch needs in one global order before touching
    // anything, so concurrent batches cannot deadlock on each other.
    let (parsed, locks) = within_lock_budget(parsed, settings::max_locks_per_batch());
    rules::acquire(locks);

    parsed
        .into_iter()
        .enumerate()
        .map(|(i, (id, result))| {
            let auth = auths
                .get(i)
                .cloned()
                .flatten()
                .and_then(|h| hex::decode_fixed::<32>(&h));
            let addr = addrs.get(i).cloned().flatten();
            match result.and_then(|event| insert(&event, auth, addr)) {
                Ok(()) => (id, true, String::new()),
                Err(reject) => (id, reject.accepted(), reject.message()),
            }
        })
        .collect()
}

/// The locks the batch's events need, up to `budget` distinct ones. The events
/// from the first that would not fit onwards are answered `error:`
/// ([`nostr_pg_core::batch::DEFERRED`]) without being looked at; the first
/// event always fits, so sending the rest again always makes progress.
fn within_lock_budget(parsed: Vec<Parsed>, budget: usize) -> (Vec<Parsed>, Vec<rules::LockKey>) {
    let mut keys: BTreeSet<i64> = BTreeSet::new();
    let mut locks = Vec::new();
    let mut full = false;
    let out = parsed
        .into_iter()
        .map(|(id, result)| {
            let Ok(event) = result else {
                return (id, result);
            };
            if !full {
                let wanted = rules::locks_for(&event);
                let new = wanted.iter().filter(|k| !keys.contains(&k.key)).count();
                full = !keys.is_empty() && keys.len() + new > budget;
                if !full {
                    keys.extend(wanted.iter().map(|k| k.key));
                    locks.extend(wanted);
                    return (id, Ok(event));
                }
            }
            (id, Err(Reject::Error(DEFERRED.into())))
        })
        .collect();
    (out, locks)
}

/// Publishes one event; see `_publish_batch`.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn publish(
    event: Option<String>,
    auth_pubkey: default!(Option<String>, "NULL"),
) -> TableIterator<'static, (name!(id, String), name!(accepted, bool), name!(message, String))> {
    TableIterator::new(publish_all(vec![event], Some(vec![auth_pubkey]), None))
}

fn parse(json: Option<&str>, verifier: &Verifier) -> Parsed {
    let Some(json) = json else {
        return (String::new(), Err(Reject::Invalid("event is null".into())));
    };
    if json.len() > max_event_bytes() {
        let msg = format!("event is larger than {} bytes", max_event_bytes());
        return (claimed_id(json), Err(Reject::Invalid(msg)));
    }
    match Event::parse(json) {
        Ok(event) => {
            let id = hex::encode(&event.id);
            let verified = verifier.verify(&event).map(|()| event).map_err(Reject::from);
            (id, verified)
        }
        Err(e) => (claimed_id(json), Err(Reject::from(e))),
    }
}

/// The `id` field of a malformed event, if it has a readable one, so the
/// client can match the `OK` to what it sent.
fn claimed_id(json: &str) -> String {
    serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| v.get("id").and_then(|id| id.as_str()).map(str::to_owned))
        .filter(|id| id.len() <= 64)
        .unwrap_or_default()
}

fn insert(event: &Event, auth: Option<[u8; 32]>, addr: Option<String>) -> Result<(), Reject> {
    let guard = SlotGuard::open(auth, addr);
    let stored = NostrEvent::from_event(event);
    let inserted = Spi::connect_mut(|client| {
        run(
            client,
            "INSERT INTO nostr.events (event) VALUES ($1)",
            &[oid::<NostrEvent>()],
            &[stored.into()],
        )
        .map(|_| ())
    });
    if let Err(e) = inserted {
        return Err(Reject::Invalid(format!("could not store the event: {e}")));
    }
    guard.take_verdict().unwrap_or(Ok(()))
}
