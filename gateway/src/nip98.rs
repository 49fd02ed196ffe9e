//! NIP-98 HTTP authorization: `Authorization: Nostr <base64 event>`, a kind
//! 27235 event that signs one HTTP request (its URL, method and body hash)
//! at one moment. The relay management API (NIP-86) is its only user.
//!
//! [`verify`] checks the event against the request; [`ReplayGuard`]
//! remembers the events already used, so one captured header cannot be sent
//! again while it is fresh. Which URL the relay believes it serves is the
//! caller's business (the `url_matches` argument).

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine as _;
use nostr_pg_core::{hex, Event, EventError, Verifier};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::limits::lock;

pub const HTTP_AUTH_KIND: u16 = 27235;
/// The longest `Authorization` value read: a kind 27235 event with a URL, a
/// method and a payload hash is well under 1 KiB; base64 adds a third.
const MAX_HEADER: usize = 8 * 1024;

/// Why a request's authorization was refused (each is answered 401).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Nip98Error {
    #[error("missing Authorization header (NIP-98: `Authorization: Nostr <base64 event>`)")]
    Missing,
    #[error("Authorization scheme must be `Nostr` (NIP-98)")]
    Scheme,
    #[error("Authorization header too large")]
    TooLarge,
    #[error("Authorization event is not valid base64")]
    Base64,
    #[error("Authorization event: {0}")]
    Event(#[from] EventError),
    #[error("Authorization event must be kind 27235")]
    Kind,
    #[error("Authorization event created_at is {0} s from now; the window is {1} s")]
    Stale(i64, i64),
    #[error("Authorization event has no `u` tag")]
    NoUrl,
    #[error("Authorization event is for URL `{0}`, not this relay")]
    Url(String),
    #[error("Authorization event has no `method` tag")]
    NoMethod,
    #[error("Authorization event is for method `{0}`, the request is `{1}`")]
    Method(String, String),
    #[error("Authorization event has no `payload` tag (NIP-86 requires the body's SHA-256)")]
    NoPayload,
    #[error("Authorization event's `payload` is not the SHA-256 of the request body")]
    Payload,
    #[error("Authorization event was used already")]
    Replayed,
}

/// The request an authorization must match.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The HTTP method as sent (`POST`).
    pub method: &'a str,
    pub body: &'a [u8],
    /// Unix seconds now, and how far `created_at` may be from it either way.
    pub now: i64,
    pub window: i64,
}

/// Checks the `Authorization` header value `header` against `request`;
/// `url_matches` says whether a `u` tag names this relay. Every check is
/// required, the `payload` tag included (NIP-86 makes it so). Returns the
/// signed event; whether its author may do anything is the caller's question.
pub fn verify(
    header: Option<&str>,
    request: &Request<'_>,
    url_matches: impl Fn(&str) -> bool,
    verifier: &Verifier,
) -> Result<Event, Nip98Error> {
    let value = header.ok_or(Nip98Error::Missing)?.trim();
    if value.len() > MAX_HEADER {
        return Err(Nip98Error::TooLarge);
    }
    let (scheme, encoded) = value.split_once(' ').ok_or(Nip98Error::Scheme)?;
    if !scheme.eq_ignore_ascii_case("Nostr") {
        return Err(Nip98Error::Scheme);
    }
    let json = decode_base64(encoded.trim())?;
    let json = std::str::from_utf8(&json).map_err(|_| EventError::Json("not UTF-8".into()))?;
    let event = Event::parse(json)?;
    if event.kind != HTTP_AUTH_KIND {
        return Err(Nip98Error::Kind);
    }
    let skew = event.created_at.saturating_sub(request.now);
    if skew.abs() > request.window {
        return Err(Nip98Error::Stale(skew, request.window));
    }
    let url = event.tag_values("u").next().ok_or(Nip98Error::NoUrl)?;
    if !url_matches(url) {
        return Err(Nip98Error::Url(url.chars().take(200).collect()));
    }
    let method = event.tag_values("method").next().ok_or(Nip98Error::NoMethod)?;
    if !method.eq_ignore_ascii_case(request.method) {
        return Err(Nip98Error::Method(
            method.chars().take(20).collect(),
            request.method.to_owned(),
        ));
    }
    let payload = event.tag_values("payload").next().ok_or(Nip98Error::NoPayload)?;
    let digest: [u8; 32] = Sha256::digest(request.body).into();
    if !payload.eq_ignore_ascii_case(&hex::encode(&digest)) {
        return Err(Nip98Error::Payload);
    }
    verifier.verify(&event)?;
    Ok(event)
}

/// Clients differ in the base64 they write: standard or URL-safe, padded or
/// not. All four decode to the same bytes, so all are taken.
fn decode_base64(text: &str) -> Result<Vec<u8>, Nip98Error> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .ok_or(Nip98Error::Base64)
}

/// The ids of authorization events already used, each kept until its
/// `created_at` leaves the window (after which [`verify`] refuses it as
/// stale anyway). Only events that passed every check and came from an
/// admin are recorded, so strangers cannot fill it.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    /// id -> the last second at which the event is still fresh.
    seen: Mutex<HashMap<[u8; 32], i64>>,
}

impl ReplayGuard {
    /// Records `event` as used now; false if it was used before.
    pub fn first_use(&self, event: &Event, now: i64, window: i64) -> bool {
        let mut seen = lock(&self.seen);
        seen.retain(|_, fresh_until| *fresh_until >= now);
        let fresh_until = event.created_at.saturating_add(window);
        seen.insert(event.id, fresh_until).is_none()
    }

    /// Events remembered now (for tests).
    pub fn len(&self) -> usize {
        lock(&self.seen).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nostr_pg_core::sign::{tags, Keys};

    const URL: &str = "https://relay.example.com/";
    const NOW: i64 = 1_800_000_000;
    const BODY: &[u8] = br#"{"method":"supportedmethods","params":[]}"#;

    fn header_for(event: &Event) -> String {
        let json = event.canonical_json();
        format!("Nostr {}", base64::engine::general_purpose::STANDARD.encode(json))
    }

    fn signed(keys: &Keys, at: i64, kind: u16, u: &str, method: &str, body: &[u8]) -> Event {
        let hash = hex::encode(&Sha256::digest(body));
        keys.sign(
            at,
            kind,
            tags(&[&["u", u], &["method", method], &["payload", &hash]]),
            "",
        )
    }

    fn check(header: Option<&str>) -> Result<Event, Nip98Error> {
        let request = Request {
            method: "POST",
            body: BODY,
            now: NOW,
            window: 60,
        };
        verify(header, &request, |u| u == URL, &Verifier::new())
    }

    #[test]
    fn accepts_a_good_authorization() {
        let keys = Keys::from_seed("nip98");
        let event = signed(&keys, NOW - 5, HTTP_AUTH_KIND, URL, "POST", BODY);
        assert_eq!(check(Some(&header_for(&event))).map(|e| e.pubkey), Ok(keys.pubkey()));
        // Unpadded URL-safe base64 and a lowercase scheme are the same header.
        let json = event.canonical_json();
        let loose = format!(
            "nostr {}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
        );
        assert!(check(Some(&loose)).is_ok());
    }

    #[test]
    fn refuses_each_defect() {
        let keys = Keys::from_seed("nip98");
        let at = |e: &Event| check(Some(&header_for(e)));
        assert_eq!(check(None).err(), Some(Nip98Error::Missing));
        assert_eq!(check(Some("Bearer abc")).err(), Some(Nip98Error::Scheme));
        assert_eq!(check(Some("Nostr")).err(), Some(Nip98Error::Scheme));
        assert_eq!(check(Some("Nostr !!!")).err(), Some(Nip98Error::Base64));
        assert!(matches!(
            check(Some("Nostr bm90IGpzb24=")),
            Err(Nip98Error::Event(EventError::Json(_)))
        ));
        let kind = signed(&keys, NOW, 22242, URL, "POST", BODY);
        assert_eq!(at(&kind).err(), Some(Nip98Error::Kind));
        let old = signed(&keys, NOW - 61, HTTP_AUTH_KIND, URL, "POST", BODY);
        assert_eq!(at(&old).err(), Some(Nip98Error::Stale(-61, 60)));
        let future = signed(&keys, NOW + 61, HTTP_AUTH_KIND, URL, "POST", BODY);
        assert_eq!(at(&future).err(), Some(Nip98Error::Stale(61, 60)));
        let url = signed(&keys, NOW, HTTP_AUTH_KIND, "https://other.example/", "POST", BODY);
        assert!(matches!(at(&url), Err(Nip98Error::Url(_))));
        let method = signed(&keys, NOW, HTTP_AUTH_KIND, URL, "GET", BODY);
        assert!(matches!(at(&method), Err(Nip98Error::Method(..))));
        let payload = signed(&keys, NOW, HTTP_AUTH_KIND, URL, "POST", b"{}");
        assert_eq!(at(&payload).err(), Some(Nip98Error::Payload));
        let no_payload = keys.sign(NOW, HTTP_AUTH_KIND, tags(&[&["u", URL], &["method", "POST"]]), "");
        assert_eq!(at(&no_payload).err(), Some(Nip98Error::NoPayload));
        let no_url = keys.sign(NOW, HTTP_AUTH_KIND, tags(&[&["method", "POST"]]), "");
        assert_eq!(at(&no_url).err(), Some(Nip98Error::NoUrl));
        let no_method = keys.sign(NOW, HTTP_AUTH_KIND, tags(&[&["u", URL]]), "");
        assert_eq!(at(&no_method).err(), Some(Nip98Error::NoMethod));
        // A valid event whose signature is another's.
        let mut forged = signed(&keys, NOW, HTTP_AUTH_KIND, URL, "POST", BODY);
        forged.sig = signed(&Keys::from_seed("other"), NOW, HTTP_AUTH_KIND, URL, "POST", BODY).sig;
        assert_eq!(at(&forged).err(), Some(Nip98Error::Event(EventError::BadSignature)));
        // Content changed after signing: the id no longer holds.
        let mut edited = signed(&keys, NOW, HTTP_AUTH_KIND, URL, "POST", BODY);
        edited.content = "x".into();
        assert!(matches!(
            at(&edited),
            Err(Nip98Error::Event(EventError::IdMismatch { .. }))
        ));
        let huge = format!("Nostr {}", "A".repeat(MAX_HEADER));
        assert_eq!(check(Some(&huge)).err(), Some(Nip98Error::TooLarge));
    }

    #[test]
    fn an_event_is_used_once_while_fresh() {
        let guard = ReplayGuard::default();
        let keys = Keys::from_seed("replay");
        let a = signed(&keys, NOW, HTTP_AUTH_KIND, URL, "POST", BODY);
        let b = signed(&keys, NOW + 1, HTTP_AUTH_KIND, URL, "POST", BODY);
        assert!(guard.first_use(&a, NOW, 60));
        assert!(!guard.first_use(&a, NOW + 30, 60));
        assert!(guard.first_use(&b, NOW + 30, 60));
        // Once stale, it is forgotten (verify refuses it by its age instead).
        assert!(guard.first_use(&b, NOW + 62, 60));
        assert_eq!(guard.len(), 1);
    }
}
