//! The filter parser and matcher: any filter list, matched against events
//! built from the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nostr_pg_core::{Event, Filter, Filters};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let one = Filter::parse(text);
    let Ok(filters) = Filters::parse(text) else {
        if let Ok(f) = one {
            let _ = f.is_empty_set();
        }
        return;
    };
    let event = Event {
        id: [7; 32],
        pubkey: [9; 32],
        created_at: i64::try_from(text.len()).unwrap_or(0),
        kind: u16::try_from(text.len() % 65536).unwrap_or(1),
        tags: vec![vec!["t".into(), text.into()], vec!["e".into()], vec![]],
        content: text.to_owned(),
        sig: [0; 64],
    };
    let _ = filters.matches(&event);
    for f in &filters.0 {
        let _ = f.is_empty_set();
        for t in &f.tags {
            let _ = t.index_keys();
        }
    }
});
