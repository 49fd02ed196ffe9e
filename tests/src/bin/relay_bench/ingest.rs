//! Workload 1, ingest: K publishers send fresh kind-1 notes (signed before the
//! clock starts) and count accepted OKs. `--window 1` waits for each OK before
//! the next EVENT; a larger window pipelines.

use std::sync::Arc;

use crate::args::Args;
use crate::cpu::{self, CpuMeter};
use crate::error::BenchError;
use crate::events::{self, Plan};
use crate::publish;
use crate::record::Record;
use crate::ws::Target;

const TOPICS: [&str; 6] = ["nostr", "bitcoin", "dev", "art", "news", "music"];

pub async fn run(args: &Args) -> Result<(), BenchError> {
    let target = Target::parse(args.req("url")?)?;
    let relay = args.req("relay")?;
    let out = args.req("out")?;
    let round: u32 = args.num("round", 1)?;
    let count: usize = args.num("events", 20_000)?;
    let publishers: usize = args.num("publishers", 32)?;
    let window: usize = args.num("window", 1)?;
    let authors: usize = args.num("authors", 1_000)?;
    let pids = cpu::parse_pids(args.opt("pids").unwrap_or(""))?;
    let case = args
        .opt("case")
        .unwrap_or(if window > 1 { "pipelined" } else { "wait_ok" })
        .to_owned();

    let label = events::unique_label(&format!("ingest-{relay}"));
    eprintln!("relay_bench: signing {count} events for {relay} ingest/{case}");
    let keys = events::keys(&label, authors);
    let plans = (0..count)
        .map(|i| Plan {
            author: (i * 7919) % authors,
            kind: 1,
            tags: vec![events::tag(&["t", TOPICS[i % TOPICS.len()]])],
            content: format!("ingest {label} note {i}: gm nostr, postgres all the way down"),
        })
        .collect();
    let signed = events::sign_all(&keys, plans);
    let items: Arc<Vec<(String, String)>> = Arc::new(signed.into_iter().map(|s| (s.id, s.frame)).collect());

    let meter = CpuMeter::start(&pids)?;
    let mut o = publish::publish(&target, items, publishers, window, false).await?;
    let used = meter.stop()?;
    let secs = o.elapsed.as_secs_f64().max(1e-9);
    let rejected: u64 = o.rejected.values().sum();
    let mut r = Record::new(relay, "ingest", &case, round);
    r.set("accepted_per_s", o.accepted as f64 / secs)
        .set("sent", o.sent as f64)
        .set("accepted", o.accepted as f64)
        .set("rejected", rejected as f64)
        .set("failed_connections", o.failed_connections as f64)
        .set("publishers", publishers as f64)
        .set("window", window as f64)
        .set("seconds", secs)
        .latencies("ok_", &mut o.latencies, true);
    used.record(&mut r, o.accepted);
    for (prefix, n) in &o.rejected {
        eprintln!("relay_bench: {relay} rejected {n} as `{prefix}`");
    }
    r.append(out)
}
