//! How one filter is read: the plan that keeps "latest N" cheap.
//!
//! Postgres 15 cannot merge several `= ANY` ranges of a btree in order, and
//! with generic (cached) plans it cannot tell a popular tag from a rare one.
//! So the choice is made here:
//!
//! - Each list in the filter (a tag condition, authors, kinds; tag values and
//!   authors combined with kinds when there are few) is a candidate *driver*:
//!   one ordered index range scan per value, `created_at DESC, id` order,
//!   `LIMIT n`, merged afterwards. Tags are scanned through the ordered side
//!   table `nostr.event_tags` ((tag, created_at) and (tag, kind, created_at)).
//! - When the filter has more than one candidate, or conditions a driver does
//!   not cover, each candidate's size is probed with capped counts
//!   (`LIMIT PROBE_CAP`, a few index pages each) and the smallest drives.
//! - When even the smallest reaches the cap and other conditions remain (two
//!   popular tags, a popular tag and a busy author), walking it in order could
//!   read millions of rows for few matches; the filter is then read with
//!   bitmap index intersections (GIN on tags, btrees) and sorted afterwards.

use nostr_pg_core::access::RESTRICTED_KINDS;
use nostr_pg_core::filter::TagCondition;
use nostr_pg_core::kind::UNSEARCHED;
use nostr_pg_core::{tags, Filter};
use pgrx::prelude::*;
use pgrx::spi::{SpiClient, SpiResult};

use super::statement::{where_clause, Param, Planning, Row, Statement};
use super::Viewers;

/// Above this many scans a driver is not used (its list becomes `= ANY`).
const MAX_SCANS: usize = 64;
/// Probes count at most this many rows per scan.
const PROBE_CAP: i64 = 1000;

/// The kinds full-text search does not index (`nostr_pg_core::kind::UNSEARCHED`)
/// as the SQL condition the planner needs: it must match the predicate of
/// `events_search_idx` in sql/schema.sql word for word, or the planner will
/// not use the index (a pg_test ties the two).
pub fn unsearched_kinds_sql() -> String {
    let list: Vec<String> = UNSEARCHED.iter().map(u16::to_string).collect();
    format!("e.kind NOT IN ({})", list.join(", "))
}

/// One ordered range scan: equality on these, then `created_at` order.
#[derive(Debug, Clone)]
struct Scan {
    tag: Option<String>,
    author: Option<[u8; 32]>,
    kind: Option<u16>,
}

/// A way to drive a filter, and what it covers of the filter.
#[derive(Debug, Clone)]
pub struct Driver<'f> {
    scans: Vec<Scan>,
    tag: Option<&'f TagCondition>,
    authors: bool,
    kinds: bool,
}

fn candidates(f: &Filter) -> Vec<Driver<'_>> {
    let fits = |n: usize| n > 0 && n <= MAX_SCANS;
    let kinds: Vec<u16> = f.kinds.clone().unwrap_or_default();
    let mut out = Vec::new();
    for t in &f.tags {
        let keys = t.index_keys();
        if fits(keys.len() * kinds.len()) {
            let scans = keys
                .iter()
                .flat_map(|k| {
                    kinds.iter().map(move |kind| Scan {
                        tag: Some(k.clone()),
                        author: None,
                        kind: Some(*kind),
                    })
                })
                .collect();
            out.push(Driver {
                scans,
                tag: Some(t),
                authors: false,
                kinds: true,
            });
        } else if fits(keys.len()) {
            let scans = keys
                .into_iter()
                .map(|k| Scan {
                    tag: Some(k),
                    author: None,
                    kind: None,
                })
                .collect();
            out.push(Driver {
                scans,
                tag: Some(t),
                authors: false,
                kinds: false,
            });
        }
    }
    if let Some(authors) = &f.authors {
        if fits(authors.len() * kinds.len()) {
            let scans = authors
                .iter()
                .flat_map(|a| {
                    kinds.iter().map(move |k| Scan {
                        tag: None,
                        author: Some(*a),
                        kind: Some(*k),
                    })
                })
                .collect();
            out.push(Driver {
                scans,
                tag: None,
                authors: true,
                kinds: true,
            });
        } else if fits(authors.len()) {
            let scans = authors
                .iter()
                .map(|a| Scan {
                    tag: None,
                    author: Some(*a),
                    kind: None,
                })
                .collect();
            out.push(Driver {
                scans,
                tag: None,
                authors: true,
                kinds: false,
            });
        }
    }
    if fits(kinds.len()) {
        let scans = kinds
            .iter()
            .map(|k| Scan {
                tag: None,
                author: None,
                kind: Some(*k),
            })
            .collect();
        out.push(Driver {
            scans,
            tag: None,
            authors: false,
            kinds: true,
        });
    }
    out
}

/// Whether the filter has conditions `d` does not apply through its index.
fn leaves_conditions(f: &Filter, d: &Driver<'_>) -> bool {
    let other_tags = f.tags.iter().any(|t| !d.tag.is_some_and(|dt| std::ptr::eq(dt, t)));
    other_tags || (f.authors.is_some() && !d.authors) || (f.kinds.is_some() && !d.kinds) || f.search.is_some()
}

/// The filter's conditions as WHERE fragments on `nostr.events e`, except
/// those the driver applies through its index.
fn add_conditions(st: &mut Statement, f: &Filter, d: Option<&Driver<'_>>, now: i64, viewers: Option<&Viewers>) {
    if let Some(ids) = &f.ids {
        st.add(
            "e.id = ANY($?)",
            Param::BytesList(ids.iter().map(|i| i.to_vec()).collect()),
        );
    }
    if let (Some(a), false) = (&f.authors, d.is_some_and(|d| d.authors)) {
        st.add(
            "e.pubkey = ANY($?)",
            Param::BytesList(a.iter().map(|i| i.to_vec()).collect()),
        );
    }
    if let (Some(k), false) = (&f.kinds, d.is_some_and(|d| d.kinds)) {
        st.add(
            "e.kind = ANY($?)",
            Param::IntList(k.iter().map(|k| i32::from(*k)).collect()),
        );
    }
    if let Some(s) = f.since {
        st.add("e.created_at >= $?", Param::Big(s));
    }
    if let Some(u) = f.until {
        st.add("e.created_at <= $?", Param::Big(u));
    }
    for t in &f.tags {
        if d.and_then(|d| d.tag).is_some_and(|dt| std::ptr::eq(dt, t)) {
            continue;
        }
        st.add("e.tags && $?", Param::TextList(t.index_keys()));
    }
    if let Some(q) = &f.search {
        st.conditions.push(unsearched_kinds_sql());
        st.add(
            "to_tsvector('simple', nostr.search_text(e.event)) @@ websearch_to_tsquery('simple', $?)",
            Param::Text(q.clone()),
        );
    }
    st.add("(e.expires_at IS NULL OR e.expires_at > $?)", Param::Big(now));
    if let Some(v) = viewers {
        restrict_to(st, v);
    }
}

/// Events of the restricted kinds only when authored by or `p`-tagging one of
/// the viewers (the SQL form of `nostr_pg_core::access::readable`).
fn restrict_to(st: &mut Statement, viewers: &Viewers) {
    let kinds = st.placeholder(Param::IntList(RESTRICTED_KINDS.iter().map(|k| i32::from(*k)).collect()));
    let authors = st.placeholder(Param::BytesList(viewers.0.iter().map(|k| k.to_vec()).collect()));
    let p_tags = st.placeholder(Param::TextList(
        viewers
            .0
            .iter()
            .map(|k| tags::key("p", &nostr_pg_core::hex::encode(k)))
            .collect(),
    ));
    st.conditions.push(format!(
        "(e.kind <> ALL({kinds}) OR e.pubkey = ANY({authors}) OR e.tags && {p_tags})"
    ));
}

/// Equality and time conditions of one scan, on the side table (`t.`) or on
/// `nostr.events` (`e.`).
fn scan_conditions(st: &mut Statement, scan: &Scan, f: &Filter) {
    let p = if scan.tag.is_some() { "t" } else { "e" };
    if let Some(tag) = &scan.tag {
        st.add("t.tag = $?", Param::Text(tag.clone()));
    }
    if let Some(a) = scan.author {
        st.add("e.pubkey = $?", Param::Bytes(a.to_vec()));
    }
    if let Some(k) = scan.kind {
        st.add(&format!("{p}.kind = $?"), Param::Int(i32::from(k)));
    }
    if scan.tag.is_some() {
        if let Some(s) = f.since {
            st.add("t.created_at >= $?", Param::Big(s));
        }
        if let Some(u) = f.until {
            st.add("t.created_at <= $?", Param::Big(u));
        }
    }
}

/// How many rows (up to the cap) one scan would walk.
fn probe(client: &SpiClient<'_>, scan: &Scan, f: &Filter) -> SpiResult<i64> {
    let mut st = Statement::default();
    scan_conditions(&mut st, scan, f);
    if scan.tag.is_none() {
        if let Some(s) = f.since {
            st.add("e.created_at >= $?", Param::Big(s));
        }
        if let Some(u) = f.until {
            st.add("e.created_at <= $?", Param::Big(u));
        }
    }
    let from = if scan.tag.is_some() {
        "nostr.event_tags t"
    } else {
        "nostr.events e"
    };
    let cap = st.placeholder(Param::Big(PROBE_CAP));
    let sql = format!(
        "SELECT count(*) FROM (SELECT 1 FROM {from} WHERE {} LIMIT {cap}) p",
        where_clause(&st)
    );
    st.run_count(client, &sql, Planning::Generic)
}

/// The smallest candidate, and whether any of its scans reached the cap.
/// Stops summing a candidate as soon as it is no better than the best so far.
fn cheapest<'f>(client: &SpiClient<'_>, f: &Filter, cands: Vec<Driver<'f>>) -> SpiResult<Option<(Driver<'f>, bool)>> {
    let mut best: Option<(Driver<'f>, i64, bool)> = None;
    for d in cands {
        let (mut total, mut capped) = (0i64, false);
        for scan in &d.scans {
            pg_sys::check_for_interrupts!();
            let n = probe(client, scan, f)?;
            total += n;
            capped |= n >= PROBE_CAP;
            if best.as_ref().is_some_and(|(_, b, _)| total >= *b) {
                break;
            }
        }
        if best.as_ref().is_none_or(|(_, b, _)| total < *b) {
            best = Some((d, total, capped));
        }
    }
    Ok(best.map(|(d, _, capped)| (d, capped)))
}

/// How one filter is read.
#[derive(Debug, Clone)]
pub enum Plan<'f> {
    /// The filter matches nothing (an empty list): no query at all.
    Nothing,
    /// Every condition in one statement, sorted afterwards (ids, search, or a
    /// driver too big to walk while other conditions remain).
    Unordered,
    /// One ordered range scan per value of the driving list.
    Ordered(Driver<'f>),
    /// No list at all: the newest events, walked in `created_at` order.
    Newest,
}

impl Plan<'_> {
    /// A short name for the plan, for `nostr._filter_plan` (and its tests):
    /// `nothing`, `unordered`, `newest`, or `ordered(<what drives>)` with the
    /// index fields of the scans, e.g. `ordered(tag,kind)`.
    pub fn label(&self) -> String {
        match self {
            Plan::Nothing => "nothing".into(),
            Plan::Unordered => "unordered".into(),
            Plan::Newest => "newest".into(),
            Plan::Ordered(d) => {
                let mut parts = Vec::new();
                if d.tag.is_some() {
                    parts.push("tag");
                }
                if d.authors {
                    parts.push("author");
                }
                if d.kinds {
                    parts.push("kind");
                }
                format!("ordered({})", parts.join(","))
            }
        }
    }
}

/// Chooses how to read `f` (probing index ranges when several drivers are
/// possible).
pub fn choose<'f>(client: &SpiClient<'_>, f: &'f Filter) -> SpiResult<Plan<'f>> {
    if f.is_empty_set() {
        return Ok(Plan::Nothing);
    }
    if f.ids.is_some() {
        // Primary-key lookups: few rows, whatever else the filter says.
        return Ok(Plan::Unordered);
    }
    let cands = candidates(f);
    Ok(match cands.as_slice() {
        [] if f.search.is_some() || !f.tags.is_empty() || f.authors.is_some() || f.kinds.is_some() => Plan::Unordered,
        [] => Plan::Newest,
        [only] if !leaves_conditions(f, only) => Plan::Ordered(only.clone()),
        _ => match cheapest(client, f, cands)? {
            Some((d, true)) if leaves_conditions(f, &d) => Plan::Unordered,
            Some((d, _)) => Plan::Ordered(d),
            None => Plan::Newest,
        },
    })
}

/// The events of one filter, newest first, lowest id on ties, at most `limit`.
pub fn run_filter(
    client: &SpiClient<'_>,
    f: &Filter,
    limit: i64,
    now: i64,
    viewers: Option<&Viewers>,
) -> SpiResult<Vec<Row>> {
    let mut rows = Vec::new();
    match choose(client, f)? {
        Plan::Nothing => return Ok(rows),
        Plan::Unordered => return unordered(client, f, limit, now, viewers),
        Plan::Ordered(d) => {
            for scan in &d.scans {
                pg_sys::check_for_interrupts!();
                rows.extend(ordered_scan(client, f, &d, scan, limit, now, viewers)?);
            }
        }
        Plan::Newest => {
            let none = Driver {
                scans: vec![],
                tag: None,
                authors: false,
                kinds: false,
            };
            let all = Scan {
                tag: None,
                author: None,
                kind: None,
            };
            rows.extend(ordered_scan(client, f, &none, &all, limit, now, viewers)?);
        }
    }
    Ok(super::order_and_limit(rows, limit))
}

/// One ordered range scan with a LIMIT, the other conditions as filters.
fn ordered_scan(
    client: &SpiClient<'_>,
    f: &Filter,
    d: &Driver<'_>,
    scan: &Scan,
    limit: i64,
    now: i64,
    viewers: Option<&Viewers>,
) -> SpiResult<Vec<Row>> {
    let mut st = Statement::default();
    scan_conditions(&mut st, scan, f);
    add_conditions(&mut st, f, Some(d), now, viewers);
    let lim = st.placeholder(Param::Big(limit));
    let sql = if scan.tag.is_some() {
        format!(
            "SELECT t.created_at, t.id, e.event FROM nostr.event_tags t JOIN nostr.events e ON e.id = t.id \
             WHERE {} ORDER BY t.created_at DESC, t.id LIMIT {lim}",
            where_clause(&st)
        )
    } else {
        format!(
            "SELECT e.created_at, e.id, e.event FROM nostr.events e WHERE {} \
             ORDER BY e.created_at DESC, e.id LIMIT {lim}",
            where_clause(&st)
        )
    };
    st.run_rows(client, &sql, Planning::Generic)
}

/// Every condition in one statement, matched by whatever indexes intersect
/// best, sorted afterwards. The `OFFSET 0` fence keeps the planner from
/// walking the `created_at` index in order for a LIMIT, which is the slow
/// plan when matches are rare; only ids and timestamps are sorted, and events
/// are fetched for the `limit` winners.
fn unordered(
    client: &SpiClient<'_>,
    f: &Filter,
    limit: i64,
    now: i64,
    viewers: Option<&Viewers>,
) -> SpiResult<Vec<Row>> {
    let mut st = Statement::default();
    add_conditions(&mut st, f, None, now, viewers);
    let lim = st.placeholder(Param::Big(limit));
    let sql = format!(
        "WITH m AS MATERIALIZED (\
           SELECT id, created_at FROM (SELECT e.id, e.created_at FROM nostr.events e WHERE {} OFFSET 0) f \
           ORDER BY created_at DESC, id LIMIT {lim}) \
         SELECT m.created_at, m.id, e.event FROM m JOIN nostr.events e ON e.id = m.id",
        where_clause(&st)
    );
    st.run_rows(client, &sql, Planning::ForValues)
}

/// The WHERE clause of a filter for COUNT (no driver: every condition).
pub fn count_query(st: &mut Statement, f: &Filter, now: i64, viewers: Option<&Viewers>) -> String {
    add_conditions(st, f, None, now, viewers);
    format!("SELECT e.id FROM nostr.events e WHERE {}", where_clause(st))
}
