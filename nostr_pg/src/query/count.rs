//! NIP-45 COUNT: how many distinct stored events match a list of filters.
//!
//! The general form puts every filter's conditions on `nostr.events` in one
//! statement, and `UNION` keeps an event matched by two filters from being
//! counted twice. For a tag with hundreds of thousands of events that visits
//! every one of them in the heap (about 600 ms at 300,000 events).
//!
//! The counts clients ask for most (reactions and replies to a note,
//! followers of a pubkey, notes with a hashtag) are one filter with one tag
//! condition, maybe kinds and a time range. Those are counted from the
//! ordered side table `nostr.event_tags` instead, whose btrees hold every
//! field such a filter names, so an index-only scan answers without reading
//! events. Two things keep that count exact:
//! - each event has at most one side row per tag key (`Event::index_keys` is
//!   deduplicated), so one value counts rows and several count distinct ids;
//! - expired events keep their side rows until housekeeping removes them, so
//!   those still stored are counted again through the expiry index and
//!   subtracted (there are few: housekeeping purges them).

use nostr_pg_core::filter::TagCondition;
use nostr_pg_core::Filter;
use pgrx::spi::{SpiClient, SpiResult};

use super::statement::{Param, Planning, Statement};
use super::{plan, Viewers};

/// How a COUNT is answered.
#[derive(Debug, PartialEq, Eq)]
pub enum CountPlan<'f> {
    /// No filter can match anything.
    Nothing,
    /// One filter on one tag: counted from the tag side table's index.
    TagIndex(&'f Filter, &'f TagCondition),
    /// Every filter's conditions on the events, matches counted once.
    General(Vec<&'f Filter>),
}

/// Chooses how to count `filters`. Reads restricted to viewers always take
/// the general form: their condition is on the event's author and `p` tags.
pub fn choose<'f>(filters: &'f [Filter], viewers: Option<&Viewers>) -> CountPlan<'f> {
    let live: Vec<&Filter> = filters.iter().filter(|f| !f.never_matches()).collect();
    match live.as_slice() {
        [] => CountPlan::Nothing,
        [f] if viewers.is_none() => match one_tag(f) {
            Some(t) => CountPlan::TagIndex(f, t),
            None => CountPlan::General(live),
        },
        _ => CountPlan::General(live),
    }
}

/// The filter's only condition besides kinds and a time range, when that is
/// one tag condition.
fn one_tag(f: &Filter) -> Option<&TagCondition> {
    match f.tags.as_slice() {
        [t] if f.ids.is_none() && f.authors.is_none() && f.search.is_none() => Some(t),
        _ => None,
    }
}

/// Counts the events matching any of `filters` (limits are ignored).
pub fn run(client: &SpiClient<'_>, filters: &[Filter], now: i64, viewers: Option<&Viewers>) -> SpiResult<i64> {
    match choose(filters, viewers) {
        CountPlan::Nothing => Ok(0),
        CountPlan::TagIndex(f, t) => tag_index(client, f, t, now),
        CountPlan::General(live) => general(client, &live, now, viewers),
    }
}

fn tag_index(client: &SpiClient<'_>, f: &Filter, t: &TagCondition, now: i64) -> SpiResult<i64> {
    let mut st = Statement::default();
    let keys = st.placeholder(Param::TextList(t.index_keys()));
    let now = st.placeholder(Param::Big(now));
    let mut side = vec![format!("t.tag = ANY({keys})")];
    let mut expired = vec![format!("e.expires_at <= {now}"), format!("e.tags && {keys}")];
    if let Some(kinds) = &f.kinds {
        let p = st.placeholder(Param::IntList(kinds.iter().map(|k| i32::from(*k)).collect()));
        side.push(format!("t.kind = ANY({p})"));
        expired.push(format!("e.kind = ANY({p})"));
    }
    if let Some(s) = f.since {
        let p = st.placeholder(Param::Big(s));
        side.push(format!("t.created_at >= {p}"));
        expired.push(format!("e.created_at >= {p}"));
    }
    if let Some(u) = f.until {
        let p = st.placeholder(Param::Big(u));
        side.push(format!("t.created_at <= {p}"));
        expired.push(format!("e.created_at <= {p}"));
    }
    let counted = if t.values.len() == 1 {
        "count(*)"
    } else {
        "count(DISTINCT t.id)"
    };
    let sql = format!(
        "SELECT (SELECT {counted} FROM nostr.event_tags t WHERE {}) \
              - (SELECT count(*) FROM nostr.events e WHERE {})",
        side.join(" AND "),
        expired.join(" AND ")
    );
    st.run_count(client, &sql, Planning::Generic)
}

fn general(client: &SpiClient<'_>, filters: &[&Filter], now: i64, viewers: Option<&Viewers>) -> SpiResult<i64> {
    let mut st = Statement::default();
    let mut parts = Vec::new();
    for f in filters {
        let mut one = Statement {
            conditions: Vec::new(),
            params: std::mem::take(&mut st.params),
        };
        parts.push(plan::count_query(&mut one, f, now, viewers));
        st.params = one.params;
    }
    let sql = format!("SELECT count(*) FROM ({}) matched", parts.join(" UNION "));
    st.run_count(client, &sql, Planning::ForValues)
}
