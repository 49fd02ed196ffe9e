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
//! | `nostr.max_locks_per_batch` | 0 (auto) | advisory locks one `publish_batch` may hold; superuser only |
//! | `nostr.housekeeping_interval` | 60s | pause between housekeeping passes (0: none); server-wide |
//! | `nostr.housekeeping_batch` | 1000 | rows housekeeping removes per transaction; superuser only |
//! | `nostr.transit_retention` | 5min | how long transit rows are kept after their transaction; superuser only |
//! | `nostr.retention` | empty | how long events are kept, by kind (see [`crate::retention`]); superuser only |

use std::ffi::{c_char, c_void, CStr, CString};

use pgrx::prelude::*;
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

use crate::retention;

pub static MAX_FUTURE_SECONDS: GucSetting<i32> = GucSetting::<i32>::new(900);
pub static MAX_PAST_SECONDS: GucSetting<i32> = GucSetting::<i32>::new(0);
pub static MIN_POW: GucSetting<i32> = GucSetting::<i32>::new(0);
pub static MAX_LIMIT: GucSetting<i32> = GucSetting::<i32>::new(5000);
pub static MAX_FILTERS: GucSetting<i32> = GucSetting::<i32>::new(50);
pub static MAX_EVENT_BYTES: GucSetting<i32> = GucSetting::<i32>::new(262_144);
pub static MAX_BATCH: GucSetting<i32> = GucSetting::<i32>::new(1000);
pub static MAX_LOCKS_PER_BATCH: GucSetting<i32> = GucSetting::<i32>::new(0);
pub static RELAY_URL: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static HOUSEKEEPING_INTERVAL: GucSetting<i32> = GucSetting::<i32>::new(60);
pub static HOUSEKEEPING_BATCH: GucSetting<i32> = GucSetting::<i32>::new(1000);
pub static TRANSIT_RETENTION: GucSetting<i32> = GucSetting::<i32>::new(300);
pub static RETENTION: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

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
    // Superuser only: it guards the lock table every session shares.
    GucRegistry::define_int_guc(
        c"nostr.max_locks_per_batch",
        c"Advisory locks one publish_batch may hold (0: an eighth of the lock table).",
        c"Events past it are answered 'error:' and can be sent again.",
        &MAX_LOCKS_PER_BATCH,
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"nostr.relay_url",
        c"This relay's URL, matched against NIP-62 vanish requests.",
        c"",
        &RELAY_URL,
        GucContext::Userset,
        GucFlags::default(),
    );
    register_housekeeping();
}

/// Housekeeping's settings (see `crate::housekeeping`). The interval is read
/// by the worker that starts the passes: server-wide (postgresql.conf or
/// ALTER SYSTEM, then a reload). The others are read by each pass, which
/// connects anew: per database too (ALTER DATABASE ... SET).
fn register_housekeeping() {
    GucRegistry::define_int_guc(
        c"nostr.housekeeping_interval",
        c"Pause between housekeeping passes over every database (0: no passes).",
        c"Needs nostr_pg in shared_preload_libraries.",
        &HOUSEKEEPING_INTERVAL,
        0,
        i32::MAX,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"nostr.housekeeping_batch",
        c"Rows housekeeping removes per transaction.",
        c"",
        &HOUSEKEEPING_BATCH,
        1,
        1_000_000,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"nostr.transit_retention",
        c"How long nostr.transit rows are kept after their transaction ended.",
        c"A gateway that lost its LISTEN connection for longer cannot fill the gap and says so.",
        &TRANSIT_RETENTION,
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    // SAFETY: the check hook is guarded and only reads the proposed value.
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            c"nostr.retention",
            c"How long events are kept, by kind: e.g. '1:90d, 7:30d, *:1y' (empty: forever).",
            c"KINDS is a kind, a range like 30000-39999, or * for every other kind; AGE is a number of s, min, h, d, w or y, or forever.",
            &RETENTION,
            GucContext::Suset,
            GucFlags::default(),
            Some(check_retention),
            None,
            None,
        );
    }
}

/// Refuses a `nostr.retention` value that does not parse, saying why.
#[pg_guard]
unsafe extern "C-unwind" fn check_retention(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    _source: pg_sys::GucSource::Type,
) -> bool {
    // SAFETY: Postgres passes a valid pointer to a C string or to NULL.
    let text = unsafe {
        match newval.as_ref() {
            Some(p) if !p.is_null() => CStr::from_ptr(*p).to_string_lossy().into_owned(),
            _ => String::new(),
        }
    };
    match retention::parse(&text) {
        Ok(_) => true,
        Err(e) => {
            let detail = CString::new(e.to_string()).unwrap_or_default();
            // SAFETY: Postgres reads this after the hook returns; pstrdup
            // copies the message into its current memory context.
            unsafe {
                pg_sys::GUC_check_errdetail_string = pg_sys::pstrdup(detail.as_ptr());
            }
            false
        }
    }
}

/// The retention rules (an empty list when unset). The check hook refused
/// anything that does not parse, so an error here is a bug worth raising.
pub fn retention_rules() -> Result<Vec<retention::Rule>, retention::RetentionError> {
    let text = RETENTION
        .get()
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_default();
    retention::parse(&text)
}

/// Seconds, as the unsigned count they are.
fn seconds(setting: &GucSetting<i32>) -> u64 {
    u64::try_from(setting.get()).unwrap_or(0)
}

/// The pause between housekeeping passes (`None`: no passes).
pub fn housekeeping_interval() -> Option<std::time::Duration> {
    Some(seconds(&HOUSEKEEPING_INTERVAL))
        .filter(|s| *s > 0)
        .map(std::time::Duration::from_secs)
}

/// Rows housekeeping removes per transaction.
pub fn housekeeping_batch() -> i32 {
    HOUSEKEEPING_BATCH.get().max(1)
}

/// How long transit rows are kept, in seconds.
pub fn transit_retention_secs() -> u64 {
    seconds(&TRANSIT_RETENTION)
}

/// The relay URL, if set and non-empty.
pub fn relay_url() -> Option<String> {
    RELAY_URL
        .get()
        .and_then(|c| c.into_string().ok())
        .filter(|s| !s.is_empty())
}

/// The fewest locks a batch may hold, whatever the setting: every event fits.
const MIN_LOCKS_PER_BATCH: usize = 16;

/// How many advisory locks one `publish_batch` may hold: `nostr.max_locks_per_batch`,
/// or when that is 0 an eighth of the server's shared lock table
/// (`max_locks_per_transaction` × the backends it is sized for), so that
/// a few full batches at once still leave most of it to every other session.
pub fn max_locks_per_batch() -> usize {
    let set = usize::try_from(MAX_LOCKS_PER_BATCH.get()).unwrap_or(0);
    let budget = if set > 0 {
        set
    } else {
        // SAFETY: plain integers the postmaster set before any backend started.
        let (per_xact, backends) = unsafe { (pgrx::pg_sys::max_locks_per_xact, pgrx::pg_sys::MaxBackends) };
        let table = usize::try_from(per_xact)
            .unwrap_or(0)
            .saturating_mul(usize::try_from(backends).unwrap_or(0));
        table / 8
    };
    budget.max(MIN_LOCKS_PER_BATCH)
}
