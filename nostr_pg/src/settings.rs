//! The `nostr.*` settings: the relay's policy. Defaults suit a public relay.
//!
//! Only a superuser may change them (`GucContext::Suset`): in
//! `postgresql.conf`, with `ALTER DATABASE ... SET` or `ALTER ROLE ... SET`,
//! or with `SET` in a superuser's own session. An ordinary role, the gateway's
//! included, gets `permission denied to set parameter` (SQLSTATE 42501): were
//! they user-settable, any client of the database could lower `nostr.min_pow`
//! or widen the time window for the events it inserts. (A backend that loaded
//! the 0.1.0 library first keeps that library's user-settable definitions
//! until it ends; see `OWN`.)
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

use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicBool, Ordering};

use pgrx::{pg_sys, GucContext, GucFlags, GucRegistry, GucSetting};

/// Whether this library registered the settings. When a backend has loaded
/// another version of the extension's library first (during `ALTER EXTENSION
/// nostr_pg UPDATE` in a session that used the old version), Postgres refuses
/// a second definition of the same settings; this copy then reads them by
/// name instead. Process-wide by nature: GUCs are.
static OWN: AtomicBool = AtomicBool::new(false);

/// An integer setting: its name and the variable Postgres keeps it in.
pub struct Int {
    name: &'static CStr,
    default: i32,
    guc: GucSetting<i32>,
}

impl Int {
    const fn new(name: &'static CStr, default: i32) -> Int {
        Int {
            name,
            default,
            guc: GucSetting::<i32>::new(default),
        }
    }

    pub fn get(&self) -> i32 {
        if OWN.load(Ordering::Relaxed) {
            return self.guc.get();
        }
        by_name(self.name)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(self.default)
    }
}

pub static MAX_FUTURE_SECONDS: Int = Int::new(c"nostr.max_future_seconds", 900);
pub static MAX_PAST_SECONDS: Int = Int::new(c"nostr.max_past_seconds", 0);
pub static MIN_POW: Int = Int::new(c"nostr.min_pow", 0);
pub static MAX_LIMIT: Int = Int::new(c"nostr.max_limit", 5000);
pub static MAX_FILTERS: Int = Int::new(c"nostr.max_filters", 50);
pub static MAX_EVENT_BYTES: Int = Int::new(c"nostr.max_event_bytes", 262_144);
pub static MAX_BATCH: Int = Int::new(c"nostr.max_batch", 1000);
const RELAY_URL_NAME: &CStr = c"nostr.relay_url";
static RELAY_URL: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// The current value of a setting, by name (`None` if it does not exist).
fn by_name(name: &CStr) -> Option<String> {
    // SAFETY: a valid C string; missing_ok, so no error is raised; the
    // result, if any, is a valid C string owned by the GUC machinery, copied
    // at once.
    unsafe {
        let v = pg_sys::GetConfigOption(name.as_ptr(), true, false);
        (!v.is_null()).then(|| CStr::from_ptr(v).to_string_lossy().into_owned())
    }
}

/// Whether a setting is already defined by a library (not just a
/// placeholder for a value set before any library defined it).
fn defined(name: &CStr) -> bool {
    if by_name(name).is_none() {
        return false;
    }
    // SAFETY: as above; the option exists.
    let flags = unsafe { pg_sys::GetConfigOptionFlags(name.as_ptr(), true) };
    flags & pg_sys::GUC_CUSTOM_PLACEHOLDER as i32 == 0
}

pub fn register() {
    if defined(MAX_FUTURE_SECONDS.name) {
        return;
    }
    OWN.store(true, Ordering::Relaxed);
    let int = |setting: &'static Int, short, min, max| {
        GucRegistry::define_int_guc(
            setting.name,
            short,
            c"",
            &setting.guc,
            min,
            max,
            GucContext::Suset,
            GucFlags::default(),
        )
    };
    int(
        &MAX_FUTURE_SECONDS,
        c"NIP-22: how far ahead of now created_at may be.",
        0,
        i32::MAX,
    );
    int(
        &MAX_PAST_SECONDS,
        c"NIP-22: how far behind now created_at may be (0: no limit).",
        0,
        i32::MAX,
    );
    int(&MIN_POW, c"NIP-13: minimum proof-of-work difficulty in bits.", 0, 256);
    int(&MAX_LIMIT, c"Cap on each filter's limit.", 1, 1_000_000);
    int(&MAX_FILTERS, c"Filters allowed in one req or count call.", 1, 10_000);
    int(
        &MAX_EVENT_BYTES,
        c"Largest canonical event accepted, in bytes.",
        512,
        1 << 30,
    );
    int(&MAX_BATCH, c"Events per publish_batch call.", 1, 100_000);
    GucRegistry::define_string_guc(
        RELAY_URL_NAME,
        c"This relay's URL, matched against NIP-62 vanish requests.",
        c"",
        &RELAY_URL,
        GucContext::Suset,
        GucFlags::default(),
    );
}

/// The relay URL, if set and non-empty.
pub fn relay_url() -> Option<String> {
    let url = if OWN.load(Ordering::Relaxed) {
        RELAY_URL.get().and_then(|c| c.into_string().ok())
    } else {
        by_name(RELAY_URL_NAME)
    };
    url.filter(|s| !s.is_empty())
}
