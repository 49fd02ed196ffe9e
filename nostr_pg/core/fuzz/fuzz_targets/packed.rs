//! The stored binary form read back from the database: any bytes must be
//! refused or served without a panic (a corrupted datum is database-shaped
//! input).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nostr_pg_core::event::Packed;

fuzz_target!(|data: &[u8]| {
    let Some(p) = Packed::new(data) else { return };
    let _ = p.canonical_json();
    let _ = (p.id(), p.pubkey(), p.sig(), p.created_at(), p.kind(), p.tags_json(), p.content_json());
    if let Some(e) = p.unpack() {
        let _ = e.canonical_json();
    }
});
