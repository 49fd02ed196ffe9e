//! Reading events: `nostr.req` (NIP-01 REQ semantics), `nostr.count` (NIP-45),
//! `nostr.matches` (one event against filters) and `nostr.changes` (what a
//! notification names). How each filter is planned is in [`plan`].

mod plan;
mod statement;

use std::collections::HashSet;

use nostr_pg_core::{Filter, Filters};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::PgOid;

use crate::event_type::NostrEvent;
use crate::reject::raise_invalid;
use crate::rules::now;
use crate::settings;
use crate::spi_cache::{oid, read};
use statement::{Param, Row, Statement};

pub use plan::UNSEARCHED_KINDS_SQL;

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
fn req_rows(filters: &str) -> Vec<Row> {
    let filters = parse_filters(filters);
    let max = i64::from(settings::MAX_LIMIT.get());
    let now = now();
    let result = Spi::connect(|client| {
        let mut all = Vec::new();
        for f in &filters.0 {
            pg_sys::check_for_interrupts!();
            let limit = f.limit.map_or(max, |l| i64::try_from(l).unwrap_or(max).min(max));
            all.extend(plan::run_filter(client, f, limit, now)?);
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
/// newest first with the lowest id first on equal timestamps.
#[pg_extern(stable, strict, parallel_safe)]
fn req(filters: &str) -> SetOfIterator<'static, NostrEvent> {
    SetOfIterator::new(req_rows(filters).into_iter().map(|r| r.event))
}

/// Like `req`, as canonical event JSON (what a relay sends in `EVENT`).
#[pg_extern(stable, strict, parallel_safe)]
fn req_json(filters: &str) -> SetOfIterator<'static, String> {
    SetOfIterator::new(req_rows(filters).into_iter().map(|r| r.event.canonical_json()))
}

/// NIP-45 COUNT: distinct events matching any filter (limits ignored).
#[pg_extern(stable, strict, parallel_safe)]
fn count(filters: &str) -> i64 {
    let filters = parse_filters(filters);
    let now = now();
    let mut st = Statement::default();
    let mut parts = Vec::new();
    for f in filters.0.iter().filter(|f| !f.never_matches()) {
        let mut one = Statement {
            conditions: Vec::new(),
            params: std::mem::take(&mut st.params),
        };
        parts.push(plan::count_query(&mut one, f, now));
        st.params = one.params;
    }
    if parts.is_empty() {
        return 0;
    }
    let sql = format!("SELECT count(*) FROM ({}) matched", parts.join(" UNION "));
    let types: Vec<PgOid> = st.params.iter().map(Param::oid).collect();
    let args: Vec<DatumWithOid<'_>> = st.params.iter().map(Param::datum).collect();
    let result = Spi::connect(|client| read(client, &sql, &types, &args)?.first().get_one::<i64>());
    match result {
        Ok(n) => n.unwrap_or(0),
        Err(e) => raise_invalid(format!("count failed: {e}"), "nostr.count"),
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

/// Canonical JSON of the stored and ephemeral events with `lo <= seq <= hi`
/// (what a `nostr_events` notification names), in sequence order.
#[pg_extern(stable, strict, parallel_safe)]
fn changes(lo: i64, hi: i64) -> SetOfIterator<'static, String> {
    let result = Spi::connect(|client| {
        let b = oid::<i64>();
        let rows = read(
            client,
            "SELECT event FROM (SELECT seq, event FROM nostr.events WHERE seq BETWEEN $1 AND $2 \
             AND (expires_at IS NULL OR expires_at > $3) \
             UNION ALL SELECT seq, event FROM nostr.ephemeral_events WHERE seq BETWEEN $1 AND $2) c ORDER BY seq",
            &[b, b, b],
            &[lo.into(), hi.into(), now().into()],
        )?;
        let mut out = Vec::new();
        for r in rows {
            if let Some(e) = r.get::<NostrEvent>(1)? {
                out.push(e.canonical_json());
            }
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    });
    match result {
        Ok(rows) => SetOfIterator::new(rows),
        Err(e) => raise_invalid(format!("changes failed: {e}"), "nostr.changes"),
    }
}
