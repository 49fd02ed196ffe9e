//! The gateway's client frame parser, and what it hands on: event shape
//! checks and filter parsing. Any input; the only failure is a panic.
#![no_main]

use gateway::config::Limits;
use gateway::protocol::{check_event, parse_filters, parse_frame, ClientMessage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let limits = Limits { max_filters: 8, max_event_size: 4096, ..Limits::default() };
    match parse_frame(text, &limits) {
        Err(refusal) => {
            let _ = refusal.reply();
        }
        Ok(ClientMessage::Event { raw } | ClientMessage::Auth { raw }) => {
            if let Err(r) = check_event(raw, &limits) {
                let _ = r.reply();
            }
        }
        Ok(ClientMessage::Req { sub_id, filters } | ClientMessage::Count { sub_id, filters }) => {
            match parse_filters(&filters, &sub_id, limits.max_limit) {
                // The rewritten JSON must still parse to the same filters.
                Ok((parsed, json)) => {
                    let again = nostr_pg_core::Filters::parse(&json).expect("rewritten filters parse");
                    assert_eq!(again, parsed);
                }
                Err(r) => {
                    let _ = r.reply();
                }
            }
        }
        Ok(ClientMessage::Close { .. }) => {}
    }
});
