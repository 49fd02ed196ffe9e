//! The query set: REQ filters drawn from the dataset itself, so every relay
//! answers exactly the same requests. Picking by event (not by distinct value)
//! weights authors and tags by how often they occur, as real traffic does:
//! active authors and popular tags are asked for more often.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};

use e2e::rng::Rng;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::args::Args;
use crate::error::BenchError;

/// Requests kept per case; clients cycle through them.
const PER_CASE: usize = 2_000;
/// Events sampled from the file to draw values from.
const RESERVOIR: usize = 50_000;
const LIMIT: u64 = 100;

#[derive(Deserialize)]
struct Ev {
    id: String,
    pubkey: String,
    created_at: i64,
    kind: u32,
    tags: Vec<Vec<String>>,
}

#[derive(Default)]
struct Pools {
    ids: Vec<String>,
    authors: Vec<String>,
    p: Vec<String>,
    e: Vec<String>,
    t_popular: Vec<String>,
    t_rare: Vec<String>,
    created: Vec<i64>,
}

fn tag_values<'a>(ev: &'a Ev, name: &'a str) -> impl Iterator<Item = &'a String> + 'a {
    ev.tags
        .iter()
        .filter(move |t| t.first().map(String::as_str) == Some(name))
        .filter_map(|t| t.get(1))
}

fn sample(path: &str, rng: &mut Rng) -> Result<Pools, BenchError> {
    let file = std::fs::File::open(path).map_err(BenchError::io(format!("open {path}")))?;
    let mut reservoir: Vec<Ev> = Vec::with_capacity(RESERVOIR);
    let mut seen = 0usize;
    for line in BufReader::with_capacity(1 << 20, file).lines() {
        let line = line.map_err(BenchError::io(format!("read {path}")))?;
        if line.trim().is_empty() {
            continue;
        }
        seen += 1;
        // Reservoir sampling: a uniform sample without holding the file.
        let slot = if reservoir.len() < RESERVOIR {
            Some(reservoir.len())
        } else {
            Some(rng.index(seen)).filter(|&j| j < RESERVOIR)
        };
        if let Some(j) = slot {
            let ev: Ev = serde_json::from_str(&line).map_err(BenchError::json(format!("event in {path}")))?;
            if j == reservoir.len() {
                reservoir.push(ev);
            } else if let Some(s) = reservoir.get_mut(j) {
                *s = ev;
            }
        }
    }
    let mut pools = Pools::default();
    for ev in &reservoir {
        pools.ids.push(ev.id.clone());
        if ev.kind == 1 {
            pools.authors.push(ev.pubkey.clone());
        }
        pools.created.push(ev.created_at);
        // Contact lists name hundreds of keys; they would swamp the p pool.
        if ev.kind != 3 {
            pools.p.extend(tag_values(ev, "p").cloned());
        }
        pools.e.extend(tag_values(ev, "e").cloned());
        for t in tag_values(ev, "t") {
            let rare = t
                .strip_prefix("tag")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if rare {
                pools.t_rare.push(t.clone())
            } else {
                pools.t_popular.push(t.clone())
            }
        }
    }
    pools.created.sort_unstable();
    eprintln!(
        "relay_bench: {seen} events in {path}; sampled {} (authors {}, p {}, e {}, t popular {}, t rare {})",
        reservoir.len(),
        pools.authors.len(),
        pools.p.len(),
        pools.e.len(),
        pools.t_popular.len(),
        pools.t_rare.len()
    );
    Ok(pools)
}

fn one(v: Value) -> Value {
    json!([v])
}

fn build(pools: &Pools, rng: &mut Rng) -> BTreeMap<String, Vec<Value>> {
    let mut cases: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let s = |rng: &mut Rng, v: &[String]| rng.pick(v).cloned().unwrap_or_default();
    // Recent `since` values: clients ask for what is new, here the newest
    // tenth of the data.
    let recent = |rng: &mut Rng| {
        let from = pools.created.len() * 9 / 10;
        let span = pools.created.len() - from;
        pools.created.get(from + rng.index(span)).copied().unwrap_or(0)
    };
    for _ in 0..PER_CASE {
        let ids: Vec<String> = (0..10).map(|_| s(rng, &pools.ids)).collect();
        cases
            .entry("ids".into())
            .or_default()
            .push(one(json!({"ids": ids, "limit": LIMIT})));
        cases.entry("authors_kinds".into()).or_default().push(one(
            json!({"authors": [s(rng, &pools.authors)], "kinds": [1], "limit": LIMIT}),
        ));
        cases
            .entry("p_tag".into())
            .or_default()
            .push(one(json!({"#p": [s(rng, &pools.p)], "limit": LIMIT})));
        cases
            .entry("e_tag".into())
            .or_default()
            .push(one(json!({"#e": [s(rng, &pools.e)], "limit": LIMIT})));
        cases
            .entry("t_popular".into())
            .or_default()
            .push(one(json!({"#t": [s(rng, &pools.t_popular)], "limit": LIMIT})));
        cases
            .entry("t_rare".into())
            .or_default()
            .push(one(json!({"#t": [s(rng, &pools.t_rare)], "limit": LIMIT})));
        cases
            .entry("kinds_since".into())
            .or_default()
            .push(one(json!({"kinds": [1], "since": recent(rng), "limit": LIMIT})));
        let authors: Vec<String> = (0..3).map(|_| s(rng, &pools.authors)).collect();
        cases.entry("multi".into()).or_default().push(json!([
            {"kinds": [0, 3], "authors": authors, "limit": LIMIT},
            {"#e": [s(rng, &pools.e)], "kinds": [7], "limit": LIMIT},
            {"#t": [s(rng, &pools.t_popular)], "kinds": [1], "limit": LIMIT},
        ]));
    }
    cases
}

/// `queries --dataset FILE --out FILE.json [--seed S]`
pub fn run(args: &Args) -> Result<(), BenchError> {
    let path = args.req("dataset")?;
    let out = args.req("out")?;
    let mut rng = Rng(args.num("seed", 7u64)?);
    let pools = sample(path, &mut rng)?;
    if pools.authors.is_empty() || pools.e.is_empty() || pools.t_rare.is_empty() || pools.p.is_empty() {
        return Err(BenchError::Usage(format!(
            "{path} has too few events to draw queries from"
        )));
    }
    let cases = build(&pools, &mut rng);
    let text = serde_json::to_string(&cases).map_err(BenchError::json("encode queries"))?;
    std::fs::write(out, text).map_err(BenchError::io(format!("write {out}")))?;
    eprintln!(
        "relay_bench: wrote {} cases of {PER_CASE} requests to {out}",
        cases.len()
    );
    Ok(())
}

pub fn load(path: &str) -> Result<BTreeMap<String, Vec<Value>>, BenchError> {
    let text = std::fs::read_to_string(path).map_err(BenchError::io(format!("read {path}")))?;
    serde_json::from_str(&text).map_err(BenchError::json(format!("queries in {path}")))
}
