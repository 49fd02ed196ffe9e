//! Reading events: `nostr.req` (NIP-01 REQ semantics), `nostr.count` (NIP-45)
//! and `nostr.matches` (one event against filters). How each filter is
//! planned is in [`plan`]. (What a live notification names is read with the
//! SQL function `nostr.changes`, in `sql/schema.sql`.)
//!
//! `req`, `req_json` and `count` take an optional list of viewers: when it is
//! given, events of the restricted kinds (`nostr_pg_core::access`) are only
//! read when they involve one of the viewers, and that condition is part of
//! each filter's query, so a page is never cut short by events the reader
//! may not see.

pub(crate) mod count;
mod plan;
mod statement;

use std::collections::HashSet;

use nostr_pg_core::{hex, Filter, Filters};
use pgrx::prelude::*;

use crate::event_type::NostrEvent;
use crate::reject::raise_invalid;
use crate::rules::now;
use crate::settings;
use statement::Row;

pub use plan::unsearched_kinds_sql;

/// Who is reading, when reads of restricted kinds are restricted: their
/// authenticated pubkeys (possibly none).
pub struct Viewers(pub Vec<[u8; 32]>);

fn parse_viewers(viewers: Option<Vec<Option<String>>>, funcname: &'static str) -> Option<Viewers> {
    let list = viewers?;
    let mut keys = Vec::with_capacity(list.len());
    for v in list.into_iter().flatten() {
        match hex::decode_fixed::<32>(&v) {
            Some(k) => keys.push(k),
            None => raise_invalid(
                format!("viewer {v:?} is not a 64-character lowercase hex pubkey"),
                funcname,
            ),
        }
    }
    Some(Viewers(keys))
}

/// Newest first, lowest id on ties, no duplicates, at most `limit`.
pub(crate) fn order_and_limit(mut rows: Vec<Row>, limit: i64) -> Vec<Row> {
    rows.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.id.cmp(&b.id)));
    let mut seen = HashSet::new();
    rows.retain(|r| seen.insert(r.id.clone()));
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    rows
}

fn parse_filters(filters: &str) -> Filters {
    let parsed = Filters::parse(filters)
        .or_else(|list_err| Filter::parse(filters).map(|f| Filters(vec![f])).map_err(|_| list_err));
    match parsed {
        Ok(f) if f.0.len() > filter_cap() => {
            raise_invalid(format!("too many filters (at most {})", filter_cap()), "nostr.req")
        }
        Ok(f) => f,
        Err(e) => raise_invalid(e.to_string(), "nostr.req"),
    }
}

fn filter_cap() -> usize {
    usize::try_from(settings::MAX_FILTERS.get()).unwrap_or(1)
}

/// The events a REQ with `filters` returns, in REQ order.
fn req_rows(filters: &str, viewers: Option<&Viewers>) -> Vec<Row> {
    let filters = parse_filters(filters);
    let max = i64::from(settings::MAX_LIMIT.get());
    let now = now();
    let result = Spi::connect(|client| {
        let mut all = Vec::new();
        for f in &filters.0 {
            pg_sys::check_for_interrupts!();
            let limit = f.limit.map_or(max, |l| i64::try_from(l).unwrap_or(max).min(max));
            all.extend(plan::run_filter(client, f, limit, now, viewers)?);
        }
        Ok::<_, pgrx::spi::SpiError>(order_and_limit(all, i64::MAX))
    });
    match result {
        Ok(rows) => rows,
        Err(e) => raise_invalid(format!("query failed: {e}"), "nostr.req"),
    }
}

/// NIP-01 REQ: `filters` is a JSON array of filter objects (or one object).
/// Per-filter limit (capped by `nostr.max_limit`), union without duplicates,
/// newest first with the lowest id first on equal timestamps. `viewers`
/// (hex pubkeys), when not NULL, restricts the restricted kinds to events
/// involving one of them.
#[pg_extern(stable, parallel_safe)]
fn req(
    filters: Option<&str>,
    viewers: default!(Option<Vec<Option<String>>>, "NULL"),
) -> SetOfIterator<'static, NostrEvent> {
    let Some(filters) = filters else {
        return SetOfIterator::new(Vec::new());
    };
    let viewers = parse_viewers(viewers, "nostr.req");
    SetOfIterator::new(req_rows(filters, viewers.as_ref()).into_iter().map(|r| r.event))
}

/// Like `req`, as canonical event JSON (what a relay sends in `EVENT`).
#[pg_extern(stable, parallel_safe)]
fn req_json(
    filters: Option<&str>,
    viewers: default!(Option<Vec<Option<String>>>, "NULL"),
) -> SetOfIterator<'static, String> {
    let Some(filters) = filters else {
        return SetOfIterator::new(Vec::new());
    };
    let viewers = parse_viewers(viewers, "nostr.req_json");
    SetOfIterator::new(
        req_rows(filters, viewers.as_ref())
            .into_iter()
            .map(|r| r.event.canonical_json()),
    )
}

/// NIP-45 COUNT: distinct events matching any filter (limits ignored), with
/// the same `viewers` restriction as `req`. How it is counted: [`count`].
#[pg_extern(stable, parallel_safe)]
fn count(filters: Option<&str>, viewers: default!(Option<Vec<Option<String>>>, "NULL")) -> Option<i64> {
    let filters = parse_filters(filters?);
    let viewers = parse_viewers(viewers, "nostr.count");
    let now = now();
    match Spi::connect(|client| count::run(client, &filters.0, now, viewers.as_ref())) {
        Ok(n) => Some(n),
        Err(e) => raise_invalid(format!("count failed: {e}"), "nostr.count"),
    }
}

/// How `filter` (one filter object) would be read: `nothing`, `unordered`,
/// `newest`, or `ordered(...)` naming the index fields that drive it. Like
/// EXPLAIN for the filter planner; used by the tests that check each plan.
#[pg_extern(stable, strict, parallel_safe)]
fn _filter_plan(filter: &str) -> String {
    let f = match Filter::parse(filter) {
        Ok(f) => f,
        Err(e) => raise_invalid(e.to_string(), "nostr._filter_plan"),
    };
    match Spi::connect(|client| plan::choose(client, &f).map(|p| p.label())) {
        Ok(label) => label,
        Err(e) => raise_invalid(format!("planning failed: {e}"), "nostr._filter_plan"),
    }
}

/// Whether `event` matches `filter` (a filter object, or an array of them).
/// Takes text: jsonb arguments are passed through text by a SQL overload, so
/// whatever jsonb holds reaches the core parser and gets its clean error.
#[pg_extern(immutable, strict, parallel_safe)]
fn matches(event: NostrEvent, filter: &str) -> bool {
    let filters = parse_filters(filter);
    filters.matches(&event.event())
}
