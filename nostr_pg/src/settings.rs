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
//! | `nostr.max_locks_per_batch` | 0 (auto) | advisory locks one `publish_batch` may hold; superuser only |
//! | `nostr.housekeeping_interval` | 60s | pause between housekeeping passes (0: none); server-wide |
//! | `nostr.housekeeping_batch` | 1000 | rows housekeeping removes per transaction; superuser only |
//! | `nostr.transit_retention` | 5min | how long transit rows are kept after their transaction; superuser only |
//! | `nostr.retention` | empty | how long events are kept, by kind (see [`crate::retention`]); superuser only |
//! | `nostr.write_policy` | unset | the operator's write policy function (see [`crate::policy`]); superuser only |

use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::atomic::{AtomicBool, Ordering};

use pgrx::prelude::*;
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

use crate::retention;

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
        by_name(self.name).and_then(|v| parse_int(&v)).unwrap_or(self.default)
    }

    fn register(
        &'static self,
        short: &'static CStr,
        long: &'static CStr,
        min: i32,
        max: i32,
        context: GucContext,
        flags: GucFlags,
    ) {
        GucRegistry::define_int_guc(self.name, short, long, &self.guc, min, max, context, flags);
    }
}

/// A text setting.
pub struct Str {
    name: &'static CStr,
    guc: GucSetting<Option<CString>>,
}

impl Str {
    const fn new(name: &'static CStr) -> Str {
        Str {
            name,
            guc: GucSetting::<Option<CString>>::new(None),
        }
    }

    /// The value, `None` when unset or empty.
    pub fn get(&self) -> Option<String> {
        let v = if OWN.load(Ordering::Relaxed) {
            self.guc.get().map(|c| c.to_string_lossy().into_owned())
        } else {
            by_name(self.name)
        };
        v.filter(|s| !s.is_empty())
    }
}

pub static MAX_FUTURE_SECONDS: Int = Int::new(c"nostr.max_future_seconds", 900);
pub static MAX_PAST_SECONDS: Int = Int::new(c"nostr.max_past_seconds", 0);
pub static MIN_POW: Int = Int::new(c"nostr.min_pow", 0);
pub static MAX_LIMIT: Int = Int::new(c"nostr.max_limit", 5000);
pub static MAX_FILTERS: Int = Int::new(c"nostr.max_filters", 50);
pub static MAX_EVENT_BYTES: Int = Int::new(c"nostr.max_event_bytes", 262_144);
pub static MAX_BATCH: Int = Int::new(c"nostr.max_batch", 1000);
pub static MAX_LOCKS_PER_BATCH: Int = Int::new(c"nostr.max_locks_per_batch", 0);
pub static RELAY_URL: Str = Str::new(c"nostr.relay_url");
pub static HOUSEKEEPING_INTERVAL: Int = Int::new(c"nostr.housekeeping_interval", 60);
pub static HOUSEKEEPING_BATCH: Int = Int::new(c"nostr.housekeeping_batch", 1000);
pub static TRANSIT_RETENTION: Int = Int::new(c"nostr.transit_retention", 300);
pub static RETENTION: Str = Str::new(c"nostr.retention");
pub static WRITE_POLICY: Str = Str::new(c"nostr.write_policy");

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

/// An integer as `GetConfigOption` shows it: plain, or in seconds with a
/// unit (`300` for seconds is shown `5min`).
fn parse_int(text: &str) -> Option<i32> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '-')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: i64 = number.parse().ok()?;
    let scale = match unit.trim() {
        "" | "s" => 1,
        "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    i32::try_from(n.checked_mul(scale)?).ok()
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
    // Superuser only: relay policy, which no ordinary session may loosen for
    // itself (an ALTER DATABASE/ROLE ... SET by a superuser still applies).
    let policy = |setting: &'static Int, short, min, max| {
        setting.register(short, c"", min, max, GucContext::Suset, GucFlags::default());
    };
    policy(
        &MAX_FUTURE_SECONDS,
        c"NIP-22: how far ahead of now created_at may be.",
        0,
        i32::MAX,
    );
    policy(
        &MAX_PAST_SECONDS,
        c"NIP-22: how far behind now created_at may be (0: no limit).",
        0,
        i32::MAX,
    );
    policy(&MIN_POW, c"NIP-13: minimum proof-of-work difficulty in bits.", 0, 256);
    policy(&MAX_LIMIT, c"Cap on each filter's limit.", 1, 1_000_000);
    policy(&MAX_FILTERS, c"Filters allowed in one req or count call.", 1, 10_000);
    policy(
        &MAX_EVENT_BYTES,
        c"Largest canonical event accepted, in bytes.",
        512,
        1 << 30,
    );
    policy(&MAX_BATCH, c"Events per publish_batch call.", 1, 100_000);
    // Superuser only: it guards the lock table every session shares.
    MAX_LOCKS_PER_BATCH.register(
        c"Advisory locks one publish_batch may hold (0: an eighth of the lock table).",
        c"Events past it are answered 'error:' and can be sent again.",
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        RELAY_URL.name,
        c"This relay's URL, matched against NIP-62 vanish requests.",
        c"",
        &RELAY_URL.guc,
        GucContext::Suset,
        GucFlags::default(),
    );
    // Superuser only: the policy runs inside the publish rules, with the
    // extension owner's rights under publish_batch.
    GucRegistry::define_string_guc(
        WRITE_POLICY.name,
        c"Write policy: schema.name of a function (nostr.nostr_event, text, inet) RETURNS text called for each event.",
        c"It answers NULL to accept, 'shadow' to answer OK true without storing, or the refusal's message.",
        &WRITE_POLICY.guc,
        GucContext::Suset,
        GucFlags::default(),
    );
    register_housekeeping();
}

/// Housekeeping's settings (see `crate::housekeeping`). The interval is read
/// by the worker that starts the passes: server-wide (postgresql.conf or
/// ALTER SYSTEM, then a reload). The others are read by each pass, which
/// connects anew: per database too (ALTER DATABASE ... SET).
fn register_housekeeping() {
    HOUSEKEEPING_INTERVAL.register(
        c"Pause between housekeeping passes over every database (0: no passes).",
        c"Needs nostr_pg in shared_preload_libraries.",
        0,
        i32::MAX,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    HOUSEKEEPING_BATCH.register(
        c"Rows housekeeping removes per transaction.",
        c"",
        1,
        1_000_000,
        GucContext::Suset,
        GucFlags::default(),
    );
    TRANSIT_RETENTION.register(
        c"How long nostr.transit rows are kept after their transaction ended.",
        c"A gateway that lost its LISTEN connection for longer cannot fill the gap and says so.",
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    // SAFETY: the check hook is guarded and only reads the proposed value.
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            RETENTION.name,
            c"How long events are kept, by kind: e.g. '1:90d, 7:30d, *:1y' (empty: forever).",
            c"KINDS is a kind, a range like 30000-39999, or * for every other kind; AGE is a number of s, min, h, d, w or y, or forever.",
            &RETENTION.guc,
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
    retention::parse(&RETENTION.get().unwrap_or_default())
}

/// Seconds, as the unsigned count they are.
fn seconds(setting: &Int) -> u64 {
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

/// The write policy function's name, if set and non-empty.
pub fn write_policy() -> Option<String> {
    WRITE_POLICY.get()
}

/// The relay URL, if set and non-empty.
pub fn relay_url() -> Option<String> {
    RELAY_URL.get()
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
