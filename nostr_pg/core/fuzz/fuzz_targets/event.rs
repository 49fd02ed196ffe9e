//! The event parser and canonicalizer: whatever parses must serialize to
//! canonical JSON that parses back to the same event, pack and unpack
//! losslessly, and have a preimage; verification must not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nostr_pg_core::event::Packed;
use nostr_pg_core::{Event, Verifier};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(event) = Event::parse(text) else { return };
    let canonical = event.canonical_json();
    let again = Event::parse(&canonical).expect("canonical JSON parses");
    assert_eq!(again, event);
    assert_eq!(again.canonical_json(), canonical, "canonicalization is idempotent");
    let bytes = event.to_bytes();
    let packed = Packed::new(&bytes).expect("packed form is valid");
    assert_eq!(packed.canonical_json(), canonical);
    assert_eq!(packed.unpack().as_ref(), Some(&event));
    let _ = event.preimage();
    let _ = event.index_keys();
    let _ = event.expiration();
    let _ = Verifier::new().verify(&event);
});
