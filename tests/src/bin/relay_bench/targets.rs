//! The targets for this 2-core machine, checked against nostr_pg's
//! numbers (and, for ingest, the best peer's).

use serde::Serialize;

use crate::summary::Summary;

#[derive(Debug, Serialize)]
pub struct Verdict {
    pub target: String,
    pub measured: String,
    /// None when the run did not measure it.
    pub met: Option<bool>,
}

const SINGLE_FILTER_CASES: [&str; 7] = [
    "ids",
    "authors_kinds",
    "p_tag",
    "e_tag",
    "t_popular",
    "t_rare",
    "kinds_since",
];

fn best(s: &Summary, relay: &str, workload: &str, metric: &str) -> Option<(f64, String)> {
    s.cells
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{workload}/")))
        .filter_map(|(k, _)| s.get(k, relay, metric).map(|v| (v, k.clone())))
        .max_by(|a, b| a.0.total_cmp(&b.0))
}

pub fn check(s: &Summary, main: &str) -> Vec<Verdict> {
    let mut out = Vec::new();
    let mut push = |target: &str, measured: String, met: Option<bool>| {
        out.push(Verdict {
            target: target.to_owned(),
            measured,
            met,
        });
    };

    let ours = best(s, main, "ingest", "accepted_per_s");
    let peer = s
        .relays
        .iter()
        .filter(|r| r.as_str() != main)
        .filter_map(|r| best(s, r, "ingest", "accepted_per_s").map(|(v, k)| (v, format!("{r} {k}"))))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match &ours {
        Some((v, k)) => push(
            "ingest ≥ 8,000 events/s through the gateway",
            format!("{v:.0}/s ({k})"),
            Some(*v >= 8000.0),
        ),
        None => push(
            "ingest ≥ 8,000 events/s through the gateway",
            "not measured".into(),
            None,
        ),
    }
    match (&ours, &peer) {
        (Some((v, _)), Some((p, pk))) => push(
            "ingest ≥ 2× the best peer",
            format!("{:.2}× ({v:.0}/s vs {p:.0}/s, {pk})", v / p.max(1e-9)),
            Some(*v >= 2.0 * p),
        ),
        _ => push("ingest ≥ 2× the best peer", "not measured".into(), None),
    }

    for case in SINGLE_FILTER_CASES {
        let key = format!("query/{case}");
        let v = s.get(&key, main, "c1_p99_ms");
        push(
            &format!("query {case}: p99 ≤ 5 ms"),
            v.map_or("not measured".into(), |v| format!("{v:.2} ms")),
            v.map(|v| v <= 5.0),
        );
    }
    let v = s.get("query/mix", main, "reqs_per_s");
    push(
        "queries ≥ 3,000 REQs/s at 32 clients (mix)",
        v.map_or("not measured".into(), |v| format!("{v:.0}/s")),
        v.map(|v| v >= 3000.0),
    );

    // The nostr-bench-style REQ loop against the fastest peer of the run.
    let req_key = s.cells.keys().find(|k| k.starts_with("req/")).cloned();
    let ours = req_key.as_deref().and_then(|k| s.get(k, main, "reqs_per_s"));
    let peer = req_key.as_deref().and_then(|k| {
        s.relays
            .iter()
            .filter(|r| r.as_str() != main)
            .filter_map(|r| s.get(k, r, "reqs_per_s").map(|v| (v, r.clone())))
            .max_by(|a, b| a.0.total_cmp(&b.0))
    });
    match (ours, peer) {
        (Some(v), Some((p, name))) => push(
            "REQ loop (nostr-bench req style) ≥ the fastest peer's REQs/s",
            format!("{:.2}× ({v:.0}/s vs {p:.0}/s, {name})", v / p.max(1e-9)),
            Some(v >= p),
        ),
        _ => push(
            "REQ loop (nostr-bench req style) ≥ the fastest peer's REQs/s",
            "not measured".into(),
            None,
        ),
    }
    let count_key = s.cells.keys().find(|k| k.starts_with("count/")).cloned();
    let v = count_key
        .as_deref()
        .and_then(|k| s.get(k, main, "p50_ms").zip(s.get(k, main, "count")));
    push(
        "COUNT of a popular tag ≤ 50 ms (p50)",
        v.map_or("not measured".into(), |(ms, n)| format!("{ms:.1} ms for {n:.0} events")),
        v.map(|(ms, _)| ms <= 50.0),
    );

    let p99 = s.get("fanout/live", main, "p99_ms");
    let frac = s.get("fanout/live", main, "delivered_fraction");
    let subs = s.get("fanout/live", main, "subscribers");
    push(
        "fanout p99 ≤ 20 ms, 1,000 subscribers at 500 events/s",
        match (p99, frac, subs) {
            (Some(p), Some(f), Some(n)) => format!("{p:.1} ms, {:.2}% delivered, {n:.0} subscribers", f * 100.0),
            _ => "not measured".into(),
        },
        p99.zip(frac).map(|(p, f)| p <= 20.0 && f >= 0.999),
    );

    let opened = s.get("connections/idle", main, "opened");
    let rss = s.get("connections/idle", main, "rss_held_mib");
    push(
        "10,000 idle connections, gateway RSS < 250 MB",
        match (opened, rss) {
            (Some(o), Some(r)) => format!("{o:.0} open, {:.0} MB RSS", r * 1.048_576),
            _ => "not measured".into(),
        },
        opened.zip(rss).map(|(o, r)| o >= 10_000.0 && r * 1.048_576 < 250.0),
    );

    let v = s.get("import/publish_batch", main, "events_per_s");
    push(
        "import ≥ 15,000 verified events/s",
        v.map_or("not measured".into(), |v| format!("{v:.0}/s")),
        v.map(|v| v >= 15_000.0),
    );
    out
}
