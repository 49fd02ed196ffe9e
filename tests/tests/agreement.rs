//! One semantics, three implementations: for random events and random
//! filters, the core matcher (`nostr_pg_core`), the SQL `nostr.req_json`
//! (and a REQ through the gateway, which runs it) and the live fanout agree
//! exactly: the same events, in the same order.
//!
//! Expected REQ results are computed from what is actually stored (kind
//! classes decide that), with the core's `Filter::matches`, per-filter
//! limits, union without duplicates, newest first and lowest id on ties.
//! Expected live results are the events that got `OK true` (as new, not as
//! duplicates), in publish order, replaced or deleted ones included: each
//! publish waits for its OK, and by then its event is queued to every
//! matching subscription of the gateway.
//! The cases come from a fixed seed (`NOSTR_PG_AGREEMENT_SEED` explores others).
//! `search` is left out: the database uses full-text search, the live path
//! an approximation, and they are documented to differ.
//! A bounded number of cases, each in the same database, emptied between.

mod support;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use e2e::relay::{Client, Gateway};
use e2e::{now, TestDb};
use nostr_pg_core::hex;
use nostr_pg_core::sign::Keys;
use nostr_pg_core::{Event, Filters};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use serde_json::{json, Value};
use support::*;

const KINDS: [u16; 6] = [1, 7, 0, 10002, 30023, 20001];
const LETTERS: [&str; 4] = ["e", "p", "t", "xx"];
const KEYS: usize = 3;
const FILTER_SETS: usize = 4;

fn value(i: usize) -> String {
    match i % 4 {
        0 => "a".into(),
        1 => "b".into(),
        2 => "a\u{0}b".into(),
        _ => "v".repeat(300),
    }
}

#[derive(Debug, Clone)]
struct EventSpec {
    key: usize,
    kind: usize,
    dt: i64,
    tags: Vec<(usize, usize)>,
}

#[derive(Debug, Clone)]
struct FilterSpec {
    ids: Option<Vec<usize>>,
    authors: Option<Vec<usize>>,
    kinds: Option<Vec<usize>>,
    tag: Option<(usize, Vec<usize>)>,
    since: Option<i64>,
    until: Option<i64>,
    limit: Option<u64>,
}

fn event_spec() -> impl Strategy<Value = EventSpec> {
    (
        0..KEYS,
        0..KINDS.len(),
        0..8i64,
        prop::collection::vec((0..LETTERS.len(), 0..4usize), 0..3),
    )
        .prop_map(|(key, kind, dt, tags)| EventSpec { key, kind, dt, tags })
}

fn filter_spec() -> impl Strategy<Value = FilterSpec> {
    let list = |n: usize| prop::option::weighted(0.3, prop::collection::vec(0..n, 0..3));
    (
        list(40),
        // One author index past the keys in use: an author with no events.
        list(KEYS + 1),
        list(KINDS.len()),
        prop::option::weighted(0.4, (0..3usize, prop::collection::vec(0..4usize, 0..3))),
        prop::option::weighted(0.3, 0..9i64),
        prop::option::weighted(0.3, 0..9i64),
        prop::option::weighted(0.5, 0..6u64),
    )
        .prop_map(|(ids, authors, kinds, tag, since, until, limit)| FilterSpec {
            ids,
            authors,
            kinds,
            tag,
            since,
            until,
            limit,
        })
}

fn case_strategy() -> impl Strategy<Value = (Vec<EventSpec>, Vec<Vec<FilterSpec>>)> {
    (
        prop::collection::vec(event_spec(), 1..25),
        prop::collection::vec(prop::collection::vec(filter_spec(), 1..3), FILTER_SETS),
    )
}

fn build_events(specs: &[EventSpec], keys: &[Keys], t0: i64, case: usize) -> Vec<Event> {
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let tags = s
                .tags
                .iter()
                .map(|(l, v)| vec![LETTERS[*l].to_owned(), value(*v)])
                .collect();
            keys[s.key].sign(t0 + s.dt, KINDS[s.kind], tags, &format!("case {case} event {i}"))
        })
        .collect()
}

fn build_filter(f: &FilterSpec, events: &[Event], keys: &[Keys], t0: i64) -> Value {
    let mut obj = serde_json::Map::new();
    if let Some(ids) = &f.ids {
        // Indices past the events name an id nobody has.
        let ids: Vec<String> = ids
            .iter()
            .map(|i| {
                events
                    .get(*i)
                    .map_or_else(|| format!("{i:064x}"), |e| hex::encode(&e.id))
            })
            .collect();
        obj.insert("ids".into(), json!(ids));
    }
    if let Some(a) = &f.authors {
        let a: Vec<String> = a
            .iter()
            .map(|i| {
                keys.get(*i)
                    .map_or_else(|| "ee".repeat(32), |k| hex::encode(&k.pubkey()))
            })
            .collect();
        obj.insert("authors".into(), json!(a));
    }
    if let Some(k) = &f.kinds {
        obj.insert("kinds".into(), json!(k.iter().map(|i| KINDS[*i]).collect::<Vec<_>>()));
    }
    if let Some((letter, values)) = &f.tag {
        obj.insert(
            format!("#{}", LETTERS[*letter]),
            json!(values.iter().map(|v| value(*v)).collect::<Vec<_>>()),
        );
    }
    if let Some(s) = f.since {
        obj.insert("since".into(), json!(t0 + s));
    }
    if let Some(u) = f.until {
        obj.insert("until".into(), json!(t0 + u));
    }
    if let Some(l) = f.limit {
        obj.insert("limit".into(), json!(l));
    }
    Value::Object(obj)
}

/// NIP-01 REQ over `stored`, by the core matcher.
fn core_req(stored: &[Event], filters: &Filters, max_limit: u64) -> Vec<String> {
    let mut picked: Vec<&Event> = Vec::new();
    for f in &filters.0 {
        let mut hits: Vec<&Event> = stored.iter().filter(|e| f.matches(e)).collect();
        hits.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        let limit = f.limit.unwrap_or(max_limit).min(max_limit);
        picked.extend(hits.into_iter().take(usize::try_from(limit).unwrap_or(usize::MAX)));
    }
    picked.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
    let mut seen = HashSet::new();
    picked
        .into_iter()
        .filter(|e| seen.insert(e.id))
        .map(|e| hex::encode(&e.id))
        .collect()
}

fn ids_of(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

struct World {
    db: TestDb,
    gw: Gateway,
    keys: Vec<Keys>,
}

async fn run_case(w: &World, case: usize, specs: &[EventSpec], filter_specs: &[Vec<FilterSpec>]) -> Result<(), String> {
    let admin = w.db.client().await;
    admin
        .batch_execute(
            // nostr.events alone: its truncate trigger empties event_tags.
            "TRUNCATE nostr.events; TRUNCATE nostr.transit, nostr.deleted_ids, \
             nostr.deleted_addresses, nostr.vanished",
        )
        .await
        .map_err(|e| format!("truncate: {e:?}"))?;
    let t0 = now() - 100_000 + (case as i64) * 20;
    let events = build_events(specs, &w.keys, t0, case);
    let filter_sets: Vec<Value> = filter_specs
        .iter()
        .map(|set| Value::Array(set.iter().map(|f| build_filter(f, &events, &w.keys, t0)).collect()))
        .collect();

    // Live subscriptions first, then a sentinel subscription that tells
    // when the fanout has caught up.
    let mut live = Client::connect(&w.gw.url).await;
    for (i, set) in filter_sets.iter().enumerate() {
        let filters: Vec<Value> = set.as_array().cloned().unwrap_or_default();
        let got = live
            .req(&format!("live{i}"), &filters)
            .await
            .map_err(|f| format!("live REQ refused: {f}"))?;
        if !got.is_empty() {
            return Err(format!("events left over from an earlier case: {got:?}"));
        }
    }
    let sentinel_tag = format!("sentinel-{case}");
    live.req("sentinel", &[json!({"#t": [sentinel_tag]})])
        .await
        .map_err(|f| format!("{f}"))?;

    let mut publisher = Client::connect(&w.gw.url).await;
    let mut accepted: Vec<&Event> = Vec::new();
    for e in &events {
        let f = publisher.publish(&e.canonical_json()).await;
        let duplicate = f[3].as_str().is_some_and(|m| m.starts_with("duplicate:"));
        if f[2] == true && !duplicate {
            accepted.push(e);
        }
    }
    let stored: Vec<Event> = admin
        .query("SELECT event::text FROM nostr.events", &[])
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .filter_map(|r| Event::parse(&r.get::<_, String>(0)).ok())
        .collect();

    for (i, set) in filter_sets.iter().enumerate() {
        let text = set.to_string();
        let filters = Filters::parse(&text).map_err(|e| e.to_string())?;
        let want = core_req(&stored, &filters, 500);
        let sql: Vec<String> = admin
            .query("SELECT e FROM nostr.req_json($1::text) AS e", &[&text])
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .filter_map(|r| Event::parse(&r.get::<_, String>(0)).ok())
            .map(|e| hex::encode(&e.id))
            .collect();
        if sql != want {
            return Err(format!(
                "SQL req disagrees with the core for {text}:\n sql  {sql:?}\n core {want:?}"
            ));
        }
        let filters_list: Vec<Value> = set.as_array().cloned().unwrap_or_default();
        let via_gw = ids_of(
            &publisher
                .req(&format!("q{i}"), &filters_list)
                .await
                .map_err(|f| format!("{f}"))?,
        );
        if via_gw != want {
            return Err(format!(
                "gateway REQ disagrees with the core for {text}:\n gw   {via_gw:?}\n core {want:?}"
            ));
        }
        publisher.send(&json!(["CLOSE", format!("q{i}")])).await;
    }

    // The sentinel: once it arrives, every earlier live event has too.
    let sentinel = w.keys[0].sign(
        now(),
        9999,
        vec![vec!["t".into(), sentinel_tag.clone()]],
        &format!("sentinel {case}"),
    );
    let sentinel_id = hex::encode(&sentinel.id);
    if publisher.publish(&sentinel.canonical_json()).await[2] != true {
        return Err("sentinel refused".into());
    }
    let mut got: HashMap<String, Vec<String>> = HashMap::new();
    loop {
        let f = live
            .try_recv(Duration::from_secs(15))
            .await
            .ok_or("the sentinel never arrived")?;
        if f[0] != "EVENT" {
            continue;
        }
        let sub = f[1].as_str().unwrap_or_default().to_owned();
        let id = f[2]["id"].as_str().unwrap_or_default().to_owned();
        if sub == "sentinel" {
            break;
        }
        if id != sentinel_id {
            got.entry(sub).or_default().push(id);
        }
    }
    for (i, set) in filter_sets.iter().enumerate() {
        let filters = Filters::parse(&set.to_string()).map_err(|e| e.to_string())?;
        // Live delivery ignores `limit` (NIP-01: it shapes the stored part).
        let want: Vec<String> = accepted
            .iter()
            .filter(|e| filters.matches(e))
            .map(|e| hex::encode(&e.id))
            .collect();
        let have = got.remove(&format!("live{i}")).unwrap_or_default();
        if have != want {
            return Err(format!(
                "live fanout disagrees with the core for {set}:\n live {have:?}\n core {want:?}"
            ));
        }
    }
    Ok(())
}

#[test]
fn core_sql_and_fanout_agree_on_random_events_and_filters() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let world = rt.block_on(async {
        let db = TestDb::new("agreement").await;
        let gw = Gateway::start(&db.url, &["--config", &ConfigFile::new(UNLIMITED).arg()]).await;
        World {
            db,
            gw,
            keys: (0..KEYS).map(|i| Keys::from_seed(&format!("agree-{i}"))).collect(),
        }
    });
    let cases = std::env::var("NOSTR_PG_AGREEMENT_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    // A fixed seed: the same cases on every run (set the variable to explore).
    let seed: u64 = std::env::var("NOSTR_PG_AGREEMENT_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20261202);
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases,
        max_shrink_iters: 8,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes));
    let counter = std::sync::atomic::AtomicUsize::new(0);
    let result = runner.run(&case_strategy(), |(specs, filters)| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let started = std::time::Instant::now();
        let r = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(30), run_case(&world, n, &specs, &filters))
                .await
                .unwrap_or_else(|_| Err("case timed out".into()))
        });
        if let Err(e) = &r {
            eprintln!("case {n} failed after {:?}: {e}", started.elapsed());
        }
        r.map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    println!("{} cases x {FILTER_SETS} filter sets agreed", counter.into_inner());
    rt.block_on(async move { drop(world) });
}
