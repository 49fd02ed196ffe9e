//! The `nostr.*` settings. Each can be set per database, role, session or
//! transaction (`SET nostr.min_pow = 20`); defaults suit a public relay.
//!
//! | setting | default | meaning |
//! |---|---|---|
//! | `nostr.max_future_seconds` | 900 | NIP-22: refuse events dated further ahead than this |
//! | `nostr.max_past_seconds` | 0 | NIP-22: refuse events older than this (0: no limit) |
//! | `nostr.min_pow` | 0 | NIP-13: minimum leading zero bits of the id |
//! | `nostr.max_limit` | 5000 | cap on each filter's `limit` (and the default when absent) |
//! | `nostr.max_filters` | 50 | filters per `req`/`count` call |
//! | `nostr.max_event_bytes` | 262144 | canonical size above which events are refused |
//! | `nostr.max_batch` | 1000 | events per `publish_batch` call (each holds a few locks until commit) |
//! | `nostr.relay_url` | unset | this relay's URL, for NIP-62 vanish requests |

use std::ffi::CString;

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

pub static MAX_FUTURE_SECONDS: GucSetting<i32> = GucSetting::<i32>::new(900);
pub static MAX_PAST_SECONDS: GucSetting<i32> = GucSetting::<i32>::new(0);
pub static MIN_POW: GucSetting<i32> = GucSetting::<i32>::new(0);
pub static MAX_LIMIT: GucSetting<i32> = GucSetting::<i32>::new(5000);
pub static MAX_FILTERS: GucSetting<i32> = GucSetting::<i32>::new(50);
pub static MAX_EVENT_BYTES: GucSetting<i32> = GucSetting::<i32>::new(262_144);
pub static MAX_BATCH: GucSetting<i32> = GucSetting::<i32>::new(1000);
pub static RELAY_URL: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

pub fn register() {
    let int = |name, short, setting, min, max| {
        GucRegistry::define_int_guc(
            name,
            short,
            c"",
            setting,
            min,
            max,
            GucContext::Userset,
            GucFlags::default(),
        )
    };
    int(
        c"nostr.max_future_seconds",
        c"NIP-22: how far ahead of now created_at may be.",
        &MAX_FUTURE_SECONDS,
        0,
        i32::MAX,
    );
    int(
        c"nostr.max_past_seconds",
        c"NIP-22: how far behind now created_at may be (0: no limit).",
        &MAX_PAST_SECONDS,
        0,
        i32::MAX,
    );
    int(
        c"nostr.min_pow",
        c"NIP-13: minimum proof-of-work difficulty in bits.",
        &MIN_POW,
        0,
        256,
    );
    int(
        c"nostr.max_limit",
        c"Cap on each filter's limit.",
        &MAX_LIMIT,
        1,
        1_000_000,
    );
    int(
        c"nostr.max_filters",
        c"Filters allowed in one req or count call.",
        &MAX_FILTERS,
        1,
        10_000,
    );
    int(
        c"nostr.max_event_bytes",
        c"Largest canonical event accepted, in bytes.",
        &MAX_EVENT_BYTES,
        512,
        1 << 30,
    );
    int(
        c"nostr.max_batch",
        c"Events per publish_batch call.",
        &MAX_BATCH,
        1,
        100_000,
    );
    GucRegistry::define_string_guc(
        c"nostr.relay_url",
        c"This relay's URL, matched against NIP-62 vanish requests.",
        c"",
        &RELAY_URL,
        GucContext::Userset,
        GucFlags::default(),
    );
}

/// The relay URL, if set and non-empty.
pub fn relay_url() -> Option<String> {
    RELAY_URL
        .get()
        .and_then(|c| c.into_string().ok())
        .filter(|s| !s.is_empty())
}
