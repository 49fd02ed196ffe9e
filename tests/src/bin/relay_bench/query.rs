//! Workload 2, queries: for each case, REQ → EOSE latency with one client
//! (what a user waits for on an idle relay), then throughput and latency with
//! 32 clients in a closed loop (each sends its next REQ when EOSE arrives).
//! The `mix` case cycles through every case at 32 clients.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::args::Args;
use crate::cpu::{self, CpuMeter};
use crate::error::BenchError;
use crate::queryset;
use crate::record::Record;
use crate::stats::Latencies;
use crate::ws::{self, Frame, Target};

const EOSE_WAIT: Duration = Duration::from_secs(30);
/// Requests of the result-size check that precedes each case.
const CHECK_REQUESTS: usize = 20;
/// The warm-up pass: this many clients share one pass over a case's
/// requests, for at most this long.
const WARM_CLIENTS: usize = 4;
const WARM_LIMIT: Duration = Duration::from_secs(20);

#[derive(Default)]
struct ClientStats {
    latencies: Latencies,
    events: u64,
    errors: u64,
}

/// One closed-loop client: REQ, read to EOSE, CLOSE, repeat until `stop`.
async fn client(
    target: Target,
    queries: Arc<Vec<Value>>,
    offset: usize,
    stop: Arc<AtomicBool>,
    max_requests: usize,
) -> Result<ClientStats, BenchError> {
    let mut socket = ws::connect(&target, None, false).await?;
    let mut stats = ClientStats::default();
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) && n < max_requests {
        let Some(filters) = queries.get((offset + n) % queries.len().max(1)) else {
            break;
        };
        let sub = format!("q{n}");
        let mut frame = vec![Value::from("REQ"), Value::from(sub.clone())];
        if let Value::Array(fs) = filters {
            frame.extend(fs.iter().cloned());
        }
        let text = Value::Array(frame).to_string();
        let started = Instant::now();
        ws::send(&mut socket, text).await?;
        loop {
            let Some(reply) = ws::next_text(&mut socket, EOSE_WAIT).await? else {
                return Err(BenchError::Relay("closed the connection during a REQ".into()));
            };
            match ws::parse(&reply) {
                Frame::Event { sub: s, .. } if s == sub => stats.events += 1,
                Frame::Eose { sub: s } if s == sub => break,
                Frame::Closed { sub: s, message } if s == sub => {
                    stats.errors += 1;
                    eprintln!("relay_bench: CLOSED {message}");
                    break;
                }
                Frame::Notice(m) => {
                    stats.errors += 1;
                    eprintln!("relay_bench: NOTICE {m}");
                    break;
                }
                _ => {}
            }
        }
        stats.latencies.push(started.elapsed());
        ws::send(&mut socket, format!(r#"["CLOSE","{sub}"]"#)).await?;
        n += 1;
    }
    Ok(stats)
}

struct Phase {
    stats: ClientStats,
    requests: u64,
    secs: f64,
    failed_clients: u64,
}

async fn phase(
    target: &Target,
    queries: Arc<Vec<Value>>,
    clients: usize,
    duration: Duration,
    max_requests: usize,
) -> Phase {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let spread = queries.len() / clients.max(1);
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            tokio::spawn(client(
                target.clone(),
                queries.clone(),
                c * spread,
                stop.clone(),
                max_requests,
            ))
        })
        .collect();
    // Clients end at `max_requests` or when the timer stops them, whichever
    // comes first.
    let timer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            stop.store(true, Ordering::Relaxed);
        })
    };
    let mut total = ClientStats::default();
    let mut failed = 0;
    for t in tasks {
        match t.await {
            Ok(Ok(s)) => {
                total.events += s.events;
                total.errors += s.errors;
                total.latencies.extend(s.latencies);
            }
            Ok(Err(e)) => {
                eprintln!("relay_bench: query client failed: {e}");
                failed += 1;
            }
            Err(e) => {
                eprintln!("relay_bench: query client task: {e}");
                failed += 1;
            }
        }
    }
    timer.abort();
    let secs = started.elapsed().as_secs_f64();
    let requests = total.latencies.len() as u64;
    Phase {
        stats: total,
        requests,
        secs,
        failed_clients: failed,
    }
}

pub async fn run(args: &Args) -> Result<(), BenchError> {
    let target = Target::parse(args.req("url")?)?;
    let relay = args.req("relay")?;
    let out = args.req("out")?;
    let round: u32 = args.num("round", 1)?;
    let clients: usize = args.num("clients", 32)?;
    let single_secs: f64 = args.num("single-seconds", 3.0)?;
    let loaded_secs: f64 = args.num("seconds", 5.0)?;
    let only = args.all("case");
    let pids = cpu::parse_pids(args.opt("pids").unwrap_or(""))?;
    let cases = queryset::load(args.req("queries")?)?;

    let mut all: Vec<Value> = Vec::new();
    let longest = cases.values().map(Vec::len).max().unwrap_or(0);
    for i in 0..longest {
        all.extend(cases.values().filter_map(|v| v.get(i).cloned()));
    }
    let mut plan: Vec<(String, Arc<Vec<Value>>, bool)> =
        cases.into_iter().map(|(name, qs)| (name, Arc::new(qs), true)).collect();
    plan.push(("mix".into(), Arc::new(all), false));

    for (name, queries, single) in plan {
        if !only.is_empty() && !only.contains(&name) {
            continue;
        }
        let mut r = Record::new(relay, "query", &name, round);
        if single {
            // The same first requests on every relay, run to completion, so
            // result sizes can be compared (a slow relay would otherwise be
            // judged on a shorter prefix of the list).
            let check = phase(&target, queries.clone(), 1, EOSE_WAIT, CHECK_REQUESTS).await;
            if check.requests == CHECK_REQUESTS as u64 {
                r.set("check_events", check.stats.events as f64);
            }
            // A warm-up pass over every request of the case, so every relay
            // is measured with warm caches: the timed phases cycle through
            // the whole list, and a relay whose data other relays' imports
            // pushed out of the page cache would otherwise be timed on disk
            // reads. Bounded, for relays that take seconds per request.
            let warm_clients = WARM_CLIENTS.min(queries.len()).max(1);
            let _warm = phase(
                &target,
                queries.clone(),
                warm_clients,
                WARM_LIMIT,
                queries.len().div_ceil(warm_clients),
            )
            .await;
            let mut p = phase(
                &target,
                queries.clone(),
                1,
                Duration::from_secs_f64(single_secs),
                usize::MAX,
            )
            .await;
            r.latencies("c1_", &mut p.stats.latencies, true)
                .set("c1_reqs_per_s", p.requests as f64 / p.secs.max(1e-9))
                .set("events_per_req", p.stats.events as f64 / (p.requests as f64).max(1.0))
                .set("c1_errors", (p.stats.errors + p.failed_clients) as f64);
        }
        let meter = CpuMeter::start(&pids)?;
        let mut p = phase(
            &target,
            queries,
            clients,
            Duration::from_secs_f64(loaded_secs),
            usize::MAX,
        )
        .await;
        meter.stop()?.record(&mut r, p.requests);
        r.set("clients", clients as f64)
            .set("reqs_per_s", p.requests as f64 / p.secs.max(1e-9))
            .set("errors", (p.stats.errors + p.failed_clients) as f64)
            .latencies("loaded_", &mut p.stats.latencies, !single);
        if !single {
            r.set("events_per_req", p.stats.events as f64 / (p.requests as f64).max(1.0));
        }
        r.append(out)?;
    }
    Ok(())
}
