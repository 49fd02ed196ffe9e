//! Reading events: `nostr.req` (NIP-01 REQ semantics), `nostr.count` (NIP-45),
//! `nostr.matches` (one event against filters) and `nostr.changes` (what a
//! notification names).
//!
//! Each filter becomes one or more index range scans in `created_at` order
//! with a LIMIT, driven by its most selective list: a tag condition (through
//! the ordered `nostr.event_tags` index), authors (and kinds), or kinds, one
//! scan per value, merged here. Postgres 15 cannot merge several `= ANY`
//! ranges of one btree in order, so one scan per value keeps "latest N" at
//! O(N) rows however many events match. SQL text comes from fixed fragments;
//! every value is a parameter.

use std::collections::HashSet;

use nostr_pg_core::filter::TagCondition;
use nostr_pg_core::{Filter, Filters};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::{SpiClient, SpiResult};
use pgrx::PgOid;

use crate::event_type::NostrEvent;
use crate::reject::raise_invalid;
use crate::rules::now;
use crate::settings;
use crate::spi_cache::{oid, read};

/// Above this many values a list is matched with `= ANY` in one scan.
const MAX_DRIVER_VALUES: usize = 64;

/// A bound parameter of a generated statement.
enum Param {
    Bytes(Vec<u8>),
    BytesList(Vec<Vec<u8>>),
    Int(i32),
    IntList(Vec<i32>),
    Big(i64),
    Text(String),
    TextList(Vec<String>),
}

impl Param {
    fn oid(&self) -> PgOid {
        match self {
            Param::Bytes(_) => oid::<Vec<u8>>(),
            Param::BytesList(_) => oid::<Vec<Vec<u8>>>(),
            Param::Int(_) => oid::<i32>(),
            Param::IntList(_) => oid::<Vec<i32>>(),
            Param::Big(_) => oid::<i64>(),
            Param::Text(_) => oid::<String>(),
            Param::TextList(_) => oid::<Vec<String>>(),
        }
    }

    fn datum(&self) -> DatumWithOid<'static> {
        match self {
            Param::Bytes(v) => v.clone().into(),
            Param::BytesList(v) => v.clone().into(),
            Param::Int(v) => (*v).into(),
            Param::IntList(v) => v.clone().into(),
            Param::Big(v) => (*v).into(),
            Param::Text(v) => v.clone().into(),
            Param::TextList(v) => v.clone().into(),
        }
    }
}

/// A statement under construction: WHERE conditions and their parameters.
#[derive(Default)]
struct Statement {
    conditions: Vec<String>,
    params: Vec<Param>,
}

impl Statement {
    fn add(&mut self, condition: &str, param: Param) {
        self.params.push(param);
        let n = self.params.len();
        self.conditions.push(condition.replace("$?", &format!("${n}")));
    }

    fn placeholder(&mut self, param: Param) -> String {
        self.params.push(param);
        format!("${}", self.params.len())
    }

    fn run_rows(&self, client: &SpiClient<'_>, sql: &str) -> SpiResult<Vec<Row>> {
        let types: Vec<PgOid> = self.params.iter().map(Param::oid).collect();
        let args: Vec<DatumWithOid<'_>> = self.params.iter().map(Param::datum).collect();
        let mut rows = Vec::new();
        for r in read(client, sql, &types, &args)? {
            let created_at: i64 = r.get(1)?.unwrap_or(0);
            let id: Vec<u8> = r.get(2)?.unwrap_or_default();
            if let Some(event) = r.get::<NostrEvent>(3)? {
                rows.push(Row { created_at, id, event });
            }
        }
        Ok(rows)
    }
}

struct Row {
    created_at: i64,
    id: Vec<u8>,
    event: NostrEvent,
}

/// The list a filter's scans are driven by.
enum Driver<'f> {
    None,
    Tag(&'f TagCondition),
    Authors,
    AuthorsKinds,
    Kinds,
}

fn choose_driver(f: &Filter) -> Driver<'_> {
    let small = |n: usize| n > 0 && n <= MAX_DRIVER_VALUES;
    if f.ids.is_some() {
        return Driver::None;
    }
    if let Some(t) = f.tags.iter().filter(|t| small(t.values.len())).min_by_key(|t| t.values.len()) {
        return Driver::Tag(t);
    }
    match (&f.authors, &f.kinds) {
        (Some(a), Some(k)) if small(a.len() * k.len()) => Driver::AuthorsKinds,
        (Some(a), _) if small(a.len()) => Driver::Authors,
        (None, Some(k)) if small(k.len()) => Driver::Kinds,
        _ => Driver::None,
    }
}

/// Adds the filter's conditions, except those the driver covers.
fn add_conditions(st: &mut Statement, f: &Filter, skip_tag: Option<&TagCondition>, skip_authors: bool, skip_kinds: bool, now: i64) {
    if let Some(ids) = &f.ids {
        st.add("e.id = ANY($?)", Param::BytesList(ids.iter().map(|i| i.to_vec()).collect()));
    }
    if let (Some(a), false) = (&f.authors, skip_authors) {
        st.add("e.pubkey = ANY($?)", Param::BytesList(a.iter().map(|i| i.to_vec()).collect()));
    }
    if let (Some(k), false) = (&f.kinds, skip_kinds) {
        st.add("e.kind = ANY($?)", Param::IntList(k.iter().map(|k| i32::from(*k)).collect()));
    }
    if let Some(s) = f.since {
        st.add("e.created_at >= $?", Param::Big(s));
    }
    if let Some(u) = f.until {
        st.add("e.created_at <= $?", Param::Big(u));
    }
    for t in &f.tags {
        if skip_tag.is_some_and(|s| std::ptr::eq(s, t)) {
            continue;
        }
        st.add("e.tags && $?", Param::TextList(t.index_keys()));
    }
    if let Some(q) = &f.search {
        st.add(
            "to_tsvector('simple', nostr.search_text(e.event)) @@ websearch_to_tsquery('simple', $?)",
            Param::Text(q.clone()),
        );
    }
    st.add("(e.expires_at IS NULL OR e.expires_at > $?)", Param::Big(now));
}

fn where_clause(st: &Statement) -> String {
    if st.conditions.is_empty() {
        "true".into()
    } else {
        st.conditions.join(" AND ")
    }
}

/// The events of one filter, newest first, lowest id on ties, at most `limit`.
fn run_filter(client: &SpiClient<'_>, f: &Filter, limit: i64, now: i64) -> SpiResult<Vec<Row>> {
    if f.is_empty_set() {
        return Ok(Vec::new());
    }
    let mut rows = Vec::new();
    match choose_driver(f) {
        Driver::Tag(tag) => {
            for key in tag.index_keys() {
                pg_sys::check_for_interrupts!();
                let mut st = Statement::default();
                let k = st.placeholder(Param::Text(key));
                let mut time = String::new();
                if let Some(s) = f.since {
                    time.push_str(&format!(" AND t.created_at >= {}", st.placeholder(Param::Big(s))));
                }
                if let Some(u) = f.until {
                    time.push_str(&format!(" AND t.created_at <= {}", st.placeholder(Param::Big(u))));
                }
                add_conditions(&mut st, f, Some(tag), false, false, now);
                let lim = st.placeholder(Param::Big(limit));
                let sql = format!(
                    "SELECT t.created_at, t.id, e.event FROM nostr.event_tags t JOIN nostr.events e ON e.id = t.id \
                     WHERE t.tag = {k}{time} AND {} ORDER BY t.created_at DESC, t.id LIMIT {lim}",
                    where_clause(&st)
                );
                rows.extend(st.run_rows(client, &sql)?);
            }
        }
        Driver::Authors | Driver::AuthorsKinds | Driver::Kinds => {
            let driver = choose_driver(f);
            let authors: Vec<Option<[u8; 32]>> = match (&driver, &f.authors) {
                (Driver::Kinds, _) | (_, None) => vec![None],
                (_, Some(a)) => a.iter().copied().map(Some).collect(),
            };
            let kinds: Vec<Option<u16>> = match (&driver, &f.kinds) {
                (Driver::Authors, _) | (_, None) => vec![None],
                (_, Some(k)) => k.iter().copied().map(Some).collect(),
            };
            for a in &authors {
                for k in &kinds {
                    pg_sys::check_for_interrupts!();
                    let mut st = Statement::default();
                    if let Some(a) = a {
                        st.add("e.pubkey = $?", Param::Bytes(a.to_vec()));
                    }
                    if let Some(k) = k {
                        st.add("e.kind = $?", Param::Int(i32::from(*k)));
                    }
                    add_conditions(&mut st, f, None, a.is_some(), k.is_some(), now);
                    rows.extend(select_events(client, &mut st, limit)?);
                }
            }
        }
        Driver::None => {
            let mut st = Statement::default();
            add_conditions(&mut st, f, None, false, false, now);
            rows.extend(select_events(client, &mut st, limit)?);
        }
    }
    Ok(order_and_limit(rows, limit))
}

fn select_events(client: &SpiClient<'_>, st: &mut Statement, limit: i64) -> SpiResult<Vec<Row>> {
    let lim = st.placeholder(Param::Big(limit));
    let sql = format!(
        "SELECT e.created_at, e.id, e.event FROM nostr.events e WHERE {} \
         ORDER BY e.created_at DESC, e.id LIMIT {lim}",
        where_clause(st)
    );
    st.run_rows(client, &sql)
}

/// Newest first, lowest id on ties, no duplicates, at most `limit`.
fn order_and_limit(mut rows: Vec<Row>, limit: i64) -> Vec<Row> {
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
        Ok(f) if f.0.len() > filter_cap() => raise_invalid(
            format!("too many filters (at most {})", filter_cap()),
            "nostr.req",
        ),
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
            all.extend(run_filter(client, f, limit, now)?);
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
        let mut one = Statement { conditions: Vec::new(), params: std::mem::take(&mut st.params) };
        add_conditions(&mut one, f, None, false, false, now);
        parts.push(format!("SELECT e.id FROM nostr.events e WHERE {}", where_clause(&one)));
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
