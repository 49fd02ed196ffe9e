//! The operator's write policy: a SQL function named by the superuser-only
//! setting `nostr.write_policy`, called by the publish rules for every event
//! they would otherwise store or deliver (every path: publish, publish_batch,
//! INSERT, COPY, imports; not restores, which skip the rules).
//!
//! Its signature is `(event nostr.nostr_event, auth_pubkey text, client_addr
//! inet) RETURNS text`: the NIP-42 authenticated pubkey (hex) and the
//! client's address are NULL when unknown (always, for plain SQL inserts).
//! It answers
//!
//! - NULL, `''` or `'accept'`: accept;
//! - `'shadow'` or `'shadow: note'`: shadow-reject: the client is told `OK
//!   true`, the event is neither stored nor delivered live (publish_batch
//!   says `shadow: note` so the gateway can tell; an INSERT inserts 0 rows);
//! - anything else: reject, with that text as the `OK` message when it
//!   starts with `blocked:`, `restricted:`, `invalid:`, `pow:` or
//!   `auth-required:`, else as `blocked: <text>`.
//!
//! The call is by name (`schema.function`), so the function can be replaced
//! (`CREATE OR REPLACE`) without touching the setting; its qualified name is
//! looked up once per backend and again after any change to `pg_proc`.

use std::cell::RefCell;

use nostr_pg_core::{hex, Event};
use pgrx::prelude::*;
use pgrx::spi::{SpiClient, SpiResult};

use crate::event_type::NostrEvent;
use crate::reject::Reject;
use crate::settings;
use crate::spi_cache::{oid, run};

/// What the policy decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Reject(Reject),
    /// Answered as accepted, never stored nor delivered; the note, if any.
    Shadow(String),
}

thread_local! {
    // Backend-local: the setting's value and the call it resolved to (None:
    // it names no suitable function).
    static RESOLVED: RefCell<Option<(String, Option<String>)>> = const { RefCell::new(None) };
}

/// Registers the catalog invalidation that forgets the resolved call.
pub fn register_invalidation() {
    #[pg_guard]
    unsafe extern "C-unwind" fn forget(_arg: pg_sys::Datum, _cache: i32, _hash: u32) {
        RESOLVED.with(|r| {
            if let Ok(mut r) = r.try_borrow_mut() {
                *r = None;
            }
        });
    }
    // SAFETY: called once from _PG_init; `forget` only touches a thread-local.
    unsafe {
        pg_sys::CacheRegisterSyscacheCallback(
            pg_sys::SysCacheIdentifier::PROCOID as i32,
            Some(forget),
            pg_sys::Datum::from(0),
        );
    }
}

/// The `SELECT` that calls the policy function `name` names, if it names
/// one with the documented signature returning text.
fn resolve(client: &mut SpiClient<'_>, name: &str) -> SpiResult<Option<String>> {
    if let Some(Some(call)) = RESOLVED.with(|r| {
        r.borrow()
            .as_ref()
            .filter(|(setting, _)| setting == name)
            .map(|(_, call)| call.clone())
    }) {
        return Ok(Some(call));
    }
    let function = run(
        client,
        "SELECT format('%I.%I', n.nspname, p.proname)
         FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
         WHERE p.oid = pg_catalog.to_regprocedure($1 || '(nostr.nostr_event, text, inet)')
           AND p.prorettype = 'pg_catalog.text'::pg_catalog.regtype AND NOT p.proretset",
        &[oid::<String>()],
        &[name.to_owned().into()],
    )?
    .first()
    .get_one::<String>()
    // A malformed name is "no such function", not an error of the caller's.
    .unwrap_or(None);
    let call = function.map(|f| format!("SELECT {f}($1, $2, $3::pg_catalog.inet)"));
    RESOLVED.with(|r| *r.borrow_mut() = Some((name.to_owned(), call.clone())));
    Ok(call)
}

/// Asks the policy (if `nostr.write_policy` is set) about `event`.
pub fn ask(
    client: &mut SpiClient<'_>,
    event: &Event,
    auth: Option<&[u8; 32]>,
    addr: Option<&str>,
) -> SpiResult<Verdict> {
    let Some(name) = settings::write_policy() else {
        return Ok(Verdict::Accept);
    };
    let Some(call) = resolve(client, &name)? else {
        return Ok(Verdict::Reject(Reject::Error(format!(
            "nostr.write_policy names no function {name}(nostr.nostr_event, text, inet) returning text"
        ))));
    };
    let answer = run(
        client,
        &call,
        &[oid::<NostrEvent>(), oid::<String>(), oid::<String>()],
        &[
            NostrEvent::from_event(event).into(),
            auth.map(|k| hex::encode(k)).into(),
            addr.map(str::to_owned).into(),
        ],
    )?
    .first()
    .get_one::<String>()?;
    Ok(verdict(answer.as_deref()))
}

/// The verdict a policy's answer means (see the module's documentation).
pub fn verdict(answer: Option<&str>) -> Verdict {
    let text = answer.map(str::trim).unwrap_or("");
    if text.is_empty() || text.eq_ignore_ascii_case("accept") {
        return Verdict::Accept;
    }
    if text == "shadow" {
        return Verdict::Shadow(String::new());
    }
    let Some((prefix, rest)) = text.split_once(':') else {
        return Verdict::Reject(Reject::Blocked(text.to_owned()));
    };
    let rest = rest.trim_start().to_owned();
    Verdict::Reject(match prefix {
        "shadow" => return Verdict::Shadow(rest),
        "blocked" => Reject::Blocked(rest),
        "restricted" => Reject::Restricted(rest),
        "invalid" => Reject::Invalid(rest),
        "pow" => Reject::Pow(rest),
        "auth-required" => Reject::AuthRequired(rest),
        _ => Reject::Blocked(text.to_owned()),
    })
}
