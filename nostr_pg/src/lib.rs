//! `nostr_pg`: a PostgreSQL extension that makes Nostr events SQL values.
//!
//! The event and filter logic lives in the pgrx-free `nostr_pg_core` crate; this
//! crate adapts it to Postgres:
//!
//! - [`event_type`]: the `nostr.nostr_event` type (input verifies id and
//!   signature; output is the canonical JSON) and its accessors; [`datum`]:
//!   how its values cross into Postgres.
//! - [`rules`]: the publish rules of every kind class, run by the insert trigger
//!   on `nostr.events`, so every path (relay, SQL, COPY) obeys them.
//! - [`trigger`]: the triggers on `nostr.events`; [`restore`]: how rows
//!   loaded from a dump get past the rules.
//! - [`publish`]: `nostr.publish` and `nostr.publish_batch`, which report a
//!   NIP-01 verdict per event instead of raising.
//! - [`query`]: `nostr.req`, `nostr.count`, `nostr.matches`, `nostr.changes`.
//! - [`notify`]: one `NOTIFY nostr_events` per transaction naming what it stored.
//! - [`settings`]: the `nostr.*` GUCs; [`retention`]: the format of
//!   `nostr.retention`.
//! - [`housekeeping`]: removing expired events, old transit rows and events
//!   past retention, in batches, by a background worker.
//! - [`moderation`]: bans, allow lists, blocked addresses (the tables of
//!   `sql/moderation.sql`) checked by the rules; [`policy`]: the operator's
//!   write policy function (`nostr.write_policy`).
//! - [`reject`]: verdicts, their NIP-01 prefixes and SQLSTATEs.
//!
//! The tables, indexes and triggers (`sql/schema.sql`) and the privileges
//! (`sql/privileges.sql`: who may publish, `nostr.grant_relay`,
//! `nostr.grant_reader`) are hand-written SQL in `sql/` at the top of the
//! repository, pulled in at build time.

use pgrx::prelude::*;

pub mod datum;
pub mod event_type;
pub mod housekeeping;
pub mod moderation;
pub mod notify;
pub mod policy;
pub mod publish;
pub mod query;
pub mod reject;
pub mod restore;
pub mod retention;
pub mod rules;
pub mod settings;
pub mod spi_cache;
pub mod trigger;

::pgrx::pg_module_magic!(name, version);

extension_sql_file!(
    "../../sql/schema.sql",
    name = "schema",
    requires = [
        event_type::nostr_event,
        event_type::_tags_json,
        event_type::search_text,
        query::req,
        query::count,
        query::matches,
        trigger::events_before_insert,
    ]
);
extension_sql_file!(
    "../../sql/housekeeping.sql",
    name = "housekeeping",
    requires = ["schema"]
);

extension_sql_file!(
    "../../sql/publish.sql",
    name = "publish",
    requires = ["schema", publish::_publish_batch]
);
extension_sql_file!(
    "../../sql/moderation.sql",
    name = "moderation",
    requires = [
        "schema",
        event_type::content,
        moderation::_invalidate_moderation,
        rules::_lock_author,
        rules::_lock_id,
    ]
);

// Grants and revokes, once every object they name exists.
extension_sql_file!("../../sql/privileges.sql", name = "privileges", finalize);
// A comment on every object, after all of them (and the grants) exist.
extension_sql_file!("../../sql/comments.sql", name = "comments", requires = ["privileges"]);

#[allow(non_snake_case)]
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    settings::register();
    datum::register_invalidation();
    moderation::register_invalidation();
    policy::register_invalidation();
    housekeeping::worker::register();
}

#[cfg(any(test, feature = "pg_test"))]
mod bounds_tests;
#[cfg(any(test, feature = "pg_test"))]
mod comments_tests;
#[cfg(any(test, feature = "pg_test"))]
mod count_tests;
#[cfg(any(test, feature = "pg_test"))]
mod housekeeping_tests;
#[cfg(any(test, feature = "pg_test"))]
mod moderation_tests;
#[cfg(any(test, feature = "pg_test"))]
mod publish_tests;
#[cfg(any(test, feature = "pg_test"))]
mod query_tests;
#[cfg(any(test, feature = "pg_test"))]
mod restore_tests;
#[cfg(any(test, feature = "pg_test"))]
mod test_sql;

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        // The canonical test vectors carry fixed timestamps: widen the window.
        vec!["nostr.max_future_seconds = 2000000000"]
    }
}
