//! The `nostr.nostr_event` type: a Nostr event that is valid by construction.
//!
//! Its input function parses NIP-01 JSON, recomputes the id over the canonical
//! serialization and verifies the BIP-340 signature; nothing else creates one.
//! It is stored in the compact packed form of `nostr_pg_core::event::Packed`
//! (binary id, pubkey and signature; canonical tags and content JSON), so its
//! text output is the exact canonical event, rebuilt without re-escaping.

use std::ffi::CStr;

use nostr_pg_core::event::Packed;
use nostr_pg_core::{hex, Event, Verifier};
use pgrx::prelude::*;
use pgrx::{InOutFuncs, StringInfo};
use serde::{Deserialize, Serialize};

use crate::reject::raise_invalid;
use crate::settings;

/// A verified Nostr event. (Lowercase: the Rust name is the SQL type name.)
/// Stored as a plain varlena holding the packed bytes (see `datum.rs`).
#[allow(non_camel_case_types)]
#[derive(PostgresType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[inoutfuncs]
#[bikeshed_postgres_type_manually_impl_from_into_datum]
pub struct nostr_event {
    pub(crate) packed: Vec<u8>,
}

pub type NostrEvent = nostr_event;

impl NostrEvent {
    /// Parses and verifies event JSON; the error text is the client's answer.
    pub fn from_json(json: &str) -> Result<NostrEvent, nostr_pg_core::EventError> {
        let event = Event::parse_verified(json, &Verifier::new())?;
        Ok(NostrEvent::from_event(&event))
    }

    /// Packs an event that has already been verified.
    pub fn from_event(event: &Event) -> NostrEvent {
        NostrEvent {
            packed: event.to_bytes(),
        }
    }

    /// The packed view. Values are only built by `from_event`, so this holds;
    /// a corrupted datum raises a clean error rather than a panic.
    pub fn packed(&self) -> Packed<'_> {
        match Packed::new(&self.packed) {
            Some(p) => p,
            None => raise_invalid("corrupted nostr_event value".into(), "nostr_event"),
        }
    }

    pub fn event(&self) -> Event {
        match self.packed().unpack() {
            Some(e) => e,
            None => raise_invalid("corrupted nostr_event value".into(), "nostr_event"),
        }
    }

    pub fn canonical_json(&self) -> String {
        self.packed().canonical_json()
    }
}

impl InOutFuncs for NostrEvent {
    fn input(input: &CStr) -> Self {
        let text = match input.to_str() {
            Ok(t) => t,
            Err(_) => raise_invalid("event is not valid UTF-8".into(), "nostr_event_in"),
        };
        if text.len() > max_event_bytes() {
            raise_invalid(
                format!("event is larger than {} bytes", max_event_bytes()),
                "nostr_event_in",
            );
        }
        match NostrEvent::from_json(text) {
            Ok(e) => e,
            Err(e) => raise_invalid(format!("{e}"), "nostr_event_in"),
        }
    }

    fn output(&self, buffer: &mut StringInfo) {
        buffer.push_str(&self.canonical_json());
    }
}

pub fn max_event_bytes() -> usize {
    usize::try_from(settings::MAX_EVENT_BYTES.get()).unwrap_or(usize::MAX)
}

#[pg_extern(immutable, strict, parallel_safe)]
fn id(event: NostrEvent) -> String {
    hex::encode(&event.packed().id())
}

#[pg_extern(immutable, strict, parallel_safe)]
fn pubkey(event: NostrEvent) -> String {
    hex::encode(&event.packed().pubkey())
}

#[pg_extern(immutable, strict, parallel_safe)]
fn sig(event: NostrEvent) -> String {
    hex::encode(&event.packed().sig())
}

#[pg_extern(immutable, strict, parallel_safe)]
fn created_at(event: NostrEvent) -> i64 {
    event.packed().created_at()
}

#[pg_extern(immutable, strict, parallel_safe)]
fn kind(event: NostrEvent) -> i32 {
    i32::from(event.packed().kind())
}

/// The canonical JSON of the tags; `nostr.tags(event)` casts it to `jsonb` in
/// SQL, so a value jsonb cannot hold (U+0000) raises Postgres' own clean error.
#[pg_extern(immutable, strict, parallel_safe)]
fn _tags_json(event: NostrEvent) -> String {
    event.packed().tags_json().to_owned()
}

/// The content. Postgres text cannot hold U+0000: such content raises an
/// error here; the event itself (and `event::text`) keeps it escaped.
#[pg_extern(immutable, strict, parallel_safe)]
fn content(event: NostrEvent) -> String {
    let content = event.event().content;
    if content.contains('\0') {
        raise_invalid(
            "content holds U+0000, which text cannot represent; use event::text".into(),
            "content",
        );
    }
    content
}

/// First values of every tag named `name`: `nostr.tag_values(event, 'e')`.
#[pg_extern(immutable, strict, parallel_safe)]
fn tag_values(event: NostrEvent, name: &str) -> Vec<String> {
    let e = event.event();
    e.tag_values(name).map(|v| v.replace('\0', "\u{FFFD}")).collect()
}

/// The content as indexed by full-text search (U+0000 becomes a space).
#[pg_extern(immutable, strict, parallel_safe)]
pub fn search_text(event: NostrEvent) -> String {
    event.event().content.replace('\0', " ")
}
