//! NIP-42 authentication: the challenge sent on connect and the check of the
//! kind 22242 event a client answers with. This is the one place the gateway
//! verifies a signature itself, because no database call is involved.

use nostr_pg_core::{hex, Event, EventError, Verifier};
use thiserror::Error;

pub const AUTH_KIND: u16 = 22242;
/// How far `created_at` may be from now, either way.
pub const MAX_SKEW_SECS: i64 = 600;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AuthError {
    #[error("{0}")]
    Event(#[from] EventError),
    #[error("auth event must be kind 22242")]
    WrongKind,
    #[error("auth event has no `challenge` tag")]
    NoChallenge,
    #[error("auth event answers a different challenge")]
    ChallengeMismatch,
    #[error("auth event has no `relay` tag")]
    NoRelayTag,
    #[error("auth event is for relay `{got}`, this is `{want}`")]
    RelayMismatch { got: String, want: String },
    #[error("auth event created_at is more than 10 minutes from now")]
    Stale,
}

/// A fresh random challenge: 16 bytes from the OS, as hex.
pub fn new_challenge() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: fall back to the clock and a per-process hash seed,
        // which still differs per connection; challenges only need uniqueness.
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        bytes[..8].copy_from_slice(&h.finish().to_le_bytes());
    }
    hex::encode(&bytes)
}

/// Checks a NIP-42 auth event. `expected_host` is the relay's host name (from
/// the configured public URL or the request's `Host` header); when unknown,
/// any `relay` tag is accepted, but one must be present. Returns the pubkey.
pub fn verify(
    raw: &str,
    challenge: &str,
    expected_host: Option<&str>,
    verifier: &Verifier,
    now: i64,
) -> Result<Event, AuthError> {
    let event = Event::parse(raw)?;
    if event.kind != AUTH_KIND {
        return Err(AuthError::WrongKind);
    }
    if (event.created_at - now).abs() > MAX_SKEW_SECS {
        return Err(AuthError::Stale);
    }
    match event.tag_values("challenge").next() {
        None => return Err(AuthError::NoChallenge),
        Some(c) if c != challenge => return Err(AuthError::ChallengeMismatch),
        Some(_) => {}
    }
    let relay = event.tag_values("relay").next().ok_or(AuthError::NoRelayTag)?;
    if let Some(want) = expected_host {
        let got = host_of(relay);
        if got.as_deref() != Some(want) {
            return Err(AuthError::RelayMismatch {
                got: relay.chars().take(200).collect(),
                want: want.to_owned(),
            });
        }
    }
    verifier.verify(&event)?;
    Ok(event)
}

/// The lowercase host of a URL or `Host` header value, leniently: scheme, user
/// info, port, path, query and a trailing dot are ignored, so
/// `wss://Relay.example.com:443/` and `relay.example.com` agree.
pub fn host_of(url: &str) -> Option<String> {
    let rest = url.trim();
    let rest = rest.split_once("://").map_or(rest, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nostr_pg_core::sign::{tags, Keys};

    fn auth_event(keys: &Keys, at: i64, kind: u16, t: &[&[&str]]) -> String {
        keys.sign(at, kind, tags(t), "").canonical_json()
    }

    #[test]
    fn hosts_are_compared_leniently() {
        assert_eq!(
            host_of("wss://Relay.Example.com:443/path?x").as_deref(),
            Some("relay.example.com")
        );
        assert_eq!(host_of("relay.example.com").as_deref(), Some("relay.example.com"));
        assert_eq!(host_of("ws://127.0.0.1:7777").as_deref(), Some("127.0.0.1"));
        assert_eq!(host_of("ws://[::1]:7777/").as_deref(), Some("::1"));
        assert_eq!(
            host_of("wss://user@relay.example.com./").as_deref(),
            Some("relay.example.com")
        );
        assert_eq!(host_of("wss://"), None);
    }

    #[test]
    fn accepts_a_good_auth_and_refuses_each_defect() {
        let keys = Keys::from_seed("auth");
        let v = Verifier::new();
        let now = 1_700_000_000;
        let host = Some("relay.example.com");
        let good = auth_event(
            &keys,
            now,
            AUTH_KIND,
            &[&["relay", "wss://relay.example.com/"], &["challenge", "abc"]],
        );
        let ok = verify(&good, "abc", host, &v, now).map(|e| e.pubkey);
        assert_eq!(ok, Ok(keys.pubkey()));
        assert!(verify(&good, "abc", None, &v, now).is_ok());

        assert_eq!(
            verify(&good, "abd", host, &v, now).err(),
            Some(AuthError::ChallengeMismatch)
        );
        assert_eq!(verify(&good, "abc", host, &v, now + 601).err(), Some(AuthError::Stale));
        assert!(matches!(
            verify(&good, "abc", Some("other.example"), &v, now),
            Err(AuthError::RelayMismatch { .. })
        ));
        let kind1 = auth_event(
            &keys,
            now,
            1,
            &[&["relay", "wss://relay.example.com"], &["challenge", "abc"]],
        );
        assert_eq!(verify(&kind1, "abc", host, &v, now).err(), Some(AuthError::WrongKind));
        let no_relay = auth_event(&keys, now, AUTH_KIND, &[&["challenge", "abc"]]);
        assert_eq!(
            verify(&no_relay, "abc", host, &v, now).err(),
            Some(AuthError::NoRelayTag)
        );
        let no_challenge = auth_event(&keys, now, AUTH_KIND, &[&["relay", "wss://relay.example.com"]]);
        assert_eq!(
            verify(&no_challenge, "abc", host, &v, now).err(),
            Some(AuthError::NoChallenge)
        );
        let forged = good.replace("\"content\":\"\"", "\"content\":\"x\"");
        assert!(matches!(
            verify(&forged, "abc", host, &v, now),
            Err(AuthError::Event(EventError::IdMismatch { .. }))
        ));
    }

    #[test]
    fn challenges_are_fresh() {
        let a = new_challenge();
        assert_eq!(a.len(), 32);
        assert_ne!(a, new_challenge());
    }
}
