//! Workload `req`, the shape of `nostr-bench req -c 200 --limit 10`: many
//! clients, each connection sends a REQ for a popular `#t` tag with a small
//! limit, waits for EOSE, closes it and sends the next. Measures REQs/s,
//! REQ → EOSE latency, and the relay's CPU per 1,000 REQs.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::args::Args;
use crate::closed_loop::{self, Ask};
use crate::cpu;
use crate::error::BenchError;
use crate::record::Record;
use crate::ws::Target;

/// `req --url U --relay R [--clients 200] [--limit 10] [--tag nostr]...
/// [--seconds 10] [--pids P:P] [--round N] --out FILE`
pub async fn run(args: &Args) -> Result<(), BenchError> {
    let target = Target::parse(args.req("url")?)?;
    let relay = args.req("relay")?;
    let out = args.req("out")?;
    let round: u32 = args.num("round", 1)?;
    let clients: usize = args.num("clients", 200)?;
    let limit: u64 = args.num("limit", 10)?;
    let seconds: f64 = args.num("seconds", 10.0)?;
    let pids = cpu::parse_pids(args.opt("pids").unwrap_or(""))?;
    let mut tags = args.all("tag");
    if tags.is_empty() {
        // `nostr` is on about 30% of gen_events' events.
        tags.push("nostr".into());
    }
    let filters: Vec<_> = tags.iter().map(|t| json!({"#t": [t], "limit": limit})).collect();

    let sockets = closed_loop::open(&target, clients).await?;
    let mut o = closed_loop::run(
        sockets,
        Ask::Req,
        Arc::new(filters),
        Duration::from_secs_f64(seconds),
        &pids,
    )
    .await?;
    let requests = o.requests();
    let mut r = Record::new(relay, "req", &format!("t_limit{limit}"), round);
    r.set("reqs_per_s", requests as f64 / o.secs.max(1e-9))
        .set("requests", requests as f64)
        .set("events_per_req", o.events as f64 / (requests as f64).max(1.0))
        .set("errors", (o.errors + o.failed_clients) as f64)
        .set("clients", clients as f64)
        .set("seconds", o.secs)
        .latencies("", &mut o.latencies, true);
    if let Some(used) = o.cpu {
        used.record(&mut r, requests);
    }
    r.append(out)
}
