//! Fanout latency across test hosts: a database host and three gateway
//! hosts in network namespaces (`e2e::multihost`), each gateway's path to
//! the database delayed by D ms each way. One client publishes on gateway 1
//! at a steady rate; subscribers on gateways 2 and 3 take every event. Each
//! delivery's publish→delivery time is measured on one clock (all clients
//! are in this process), and the quantiles are printed per delay.
//!
//! `hosts_bench [--delays 0,5] [--rate 100] [--seconds 20] [--subscribers 5]`
//!
//! `--subscribers` is per gateway (2 and 3). Needs root and iproute2,
//! `NOSTR_PG_GATEWAY_BIN` (the gateway to run), `delay_relay` beside this
//! binary, and nostr_pg installed in `$PG_BIN`'s PostgreSQL (the database
//! is started with `pg_config/cluster.sh`). `tests/bench/hosts.sh` builds
//! and runs it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use e2e::multihost::{Plan, Site};
use e2e::relay::Client;
use e2e::{arg, now};
use futures_util::{SinkExt, StreamExt};
use nostr_pg_core::hex;
use nostr_pg_core::sign::Keys;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// No rate limits in the way of the measurement.
const CONFIG: &str = "[limits]\n\
    events_per_second_per_ip = 1000000.0\n\
    event_burst_per_ip = 1000000.0\n\
    events_per_second_per_pubkey = 1000000.0\n\
    event_burst_per_pubkey = 1000000.0\n\
    reqs_per_second_per_ip = 1000000.0\n\
    req_burst_per_ip = 1000000.0\n\
    frames_per_second_per_connection = 1000000.0\n\
    frame_burst_per_connection = 1000000.0\n";
/// Longest wait for the last deliveries after the last publish.
const DRAIN: Duration = Duration::from_secs(30);

fn die(msg: &str) -> ! {
    eprintln!("hosts_bench: {msg}\nusage: hosts_bench [--delays 0,5] [--rate 100] [--seconds 20] [--subscribers 5]");
    std::process::exit(2)
}

fn num<T: std::str::FromStr>(name: &str, default: T) -> T
where
    T::Err: std::fmt::Display,
{
    arg(name).map_or(default, |v| v.parse().unwrap_or_else(|e| die(&format!("{name}: {e}"))))
}

/// Send times by event id.
type Sent = Arc<Mutex<HashMap<String, Instant>>>;

fn sent_at(sent: &Sent, id: &str) -> Option<Instant> {
    sent.lock().unwrap_or_else(PoisonError::into_inner).get(id).copied()
}

/// Nearest-rank quantile of sorted milliseconds.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    let rank = ((n as f64 * q).ceil() as usize).clamp(1, n);
    sorted.get(rank - 1).copied().unwrap_or(f64::NAN)
}

struct Outcome {
    events: usize,
    deliveries: Vec<f64>,
    expected: usize,
    oks: Vec<f64>,
}

/// One subscriber: the latency of each of `events` ids it receives (ms),
/// until it has them all, or [`DRAIN`] after `done` was set.
async fn subscribe(
    mut client: Client,
    sent: Sent,
    events: usize,
    tag: String,
    ready: tokio::sync::mpsc::Sender<()>,
    mut done: tokio::sync::watch::Receiver<bool>,
) -> Vec<f64> {
    client
        .req("live", &[json!({"kinds": [1], "#t": [tag]})])
        .await
        .unwrap_or_else(|f| die(&format!("REQ closed: {f}")));
    let _ = ready.send(()).await;
    let mut out = Vec::with_capacity(events);
    let mut deadline = tokio::time::Instant::now() + Duration::from_secs(24 * 3600);
    let mut draining = false;
    while out.len() < events && tokio::time::Instant::now() < deadline {
        tokio::select! {
            f = client.try_recv(DRAIN) => {
                let Some(f) = f else { break };
                let received = Instant::now();
                if f[0] != "EVENT" || f[1] != "live" {
                    continue;
                }
                if let Some(at) = sent_at(&sent, f[2]["id"].as_str().unwrap_or_default()) {
                    out.push(received.duration_since(at).as_secs_f64() * 1e3);
                }
            }
            _ = done.wait_for(|d| *d), if !draining => {
                // Publishing is over: from now on only the stragglers.
                draining = true;
                deadline = tokio::time::Instant::now() + DRAIN;
            }
        }
    }
    out
}

async fn measure(site: &Site, rate: f64, seconds: f64, per_gateway: usize, round: usize) -> Outcome {
    let keys = Keys::from_seed("hosts_bench");
    let tag = format!("bench{round}-{}", std::process::id());
    let events = (rate * seconds).round().max(1.0) as usize;
    // Signed before the clock starts.
    let signed: Vec<(String, String)> = (0..events)
        .map(|i| {
            let e = keys.sign(now(), 1, vec![vec!["t".into(), tag.clone()]], &format!("fanout {i}"));
            (hex::encode(&e.id), format!(r#"["EVENT",{}]"#, e.canonical_json()))
        })
        .collect();
    let sent: Sent = Arc::default();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(per_gateway * 2);
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let mut subscribers = Vec::new();
    for gw in [site.gateway(2), site.gateway(3)] {
        for _ in 0..per_gateway {
            let client = Client::connect(&gw.url).await;
            subscribers.push(tokio::spawn(subscribe(
                client,
                Arc::clone(&sent),
                events,
                tag.clone(),
                ready_tx.clone(),
                done_rx.clone(),
            )));
        }
    }
    drop(ready_tx);
    for _ in 0..per_gateway * 2 {
        ready_rx
            .recv()
            .await
            .unwrap_or_else(|| die("a subscriber ended before EOSE"));
    }
    // Open loop: EVENTs leave on the clock; OKs are read as they arrive by
    // another task (timing them when the next send happens would add up to
    // one tick).
    let (ws, _) = tokio_tungstenite::connect_async_with_config(&site.gateway(1).url, None, true)
        .await
        .unwrap_or_else(|e| die(&format!("connect to gateway 1: {e}")));
    let (mut sink, mut stream) = ws.split();
    let ok_reader = tokio::spawn({
        let sent = Arc::clone(&sent);
        async move {
            let mut oks = Vec::with_capacity(events);
            while oks.len() < events {
                let msg = match tokio::time::timeout(DRAIN, stream.next()).await {
                    Ok(Some(Ok(Message::Text(t)))) => t,
                    Ok(Some(Ok(_))) => continue,
                    _ => die("OKs missing"),
                };
                let received = Instant::now();
                let f: Value = serde_json::from_str(msg.as_str()).unwrap_or_default();
                if f[0] != "OK" {
                    continue;
                }
                if f[2] != true {
                    die(&format!("refused: {f}"));
                }
                if let Some(at) = sent_at(&sent, f[1].as_str().unwrap_or_default()) {
                    oks.push(received.duration_since(at).as_secs_f64() * 1e3);
                }
            }
            oks
        }
    });
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for (id, frame) in &signed {
        ticker.tick().await;
        sent.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.clone(), Instant::now());
        sink.send(Message::text(frame.clone()))
            .await
            .unwrap_or_else(|e| die(&format!("publish: {e}")));
    }
    let oks = ok_reader.await.unwrap_or_else(|e| die(&format!("OK reader: {e}")));
    done_tx.send_replace(true);
    let mut deliveries = Vec::new();
    for s in subscribers {
        deliveries.extend(s.await.unwrap_or_else(|e| die(&format!("subscriber: {e}"))));
    }
    Outcome {
        events,
        expected: events * per_gateway * 2,
        deliveries,
        oks,
    }
}

fn main() {
    let delays: Vec<u64> = arg("--delays")
        .unwrap_or_else(|| "0,5".into())
        .split(',')
        .map(|d| d.trim().parse().unwrap_or_else(|e| die(&format!("--delays: {e}"))))
        .collect();
    let rate: f64 = num("--rate", 100.0);
    let seconds: f64 = num("--seconds", 20.0);
    let per_gateway: usize = num("--subscribers", 5);
    if rate <= 0.0 || seconds <= 0.0 || per_gateway == 0 {
        die("--rate, --seconds and --subscribers must be above 0");
    }
    let relay_bin = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("delay_relay")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| die("delay_relay is not beside this binary (cargo build --bin delay_relay)"));
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| die(&format!("runtime: {e}")));
    println!(
        "fanout publish->delivery across 3 hosts: publisher on gateway 1, {per_gateway} subscribers on each of gateways 2 and 3, {rate} events/s for {seconds} s"
    );
    println!(
        "{:>9} {:>7} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}",
        "delay_ms", "events", "delivered", "missing", "p50_ms", "p95_ms", "p99_ms", "max_ms", "ok_p50", "ok_p99"
    );
    for (round, &delay) in delays.iter().enumerate() {
        runtime.block_on(async {
            let plan = Plan {
                delays_ms: &[delay, delay, delay],
                config: CONFIG,
                relay_bin: &relay_bin,
            };
            let site = Site::start(&plan)
                .await
                .unwrap_or_else(|e| die(&format!("cannot make the hosts: {}", e.0)));
            let mut o = measure(&site, rate, seconds, per_gateway, round).await;
            o.deliveries.sort_by(f64::total_cmp);
            o.oks.sort_by(f64::total_cmp);
            let d = &o.deliveries;
            println!(
                "{:>9} {:>7} {:>10} {:>8} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>9.2} {:>9.2}",
                delay,
                o.events,
                d.len(),
                o.expected.saturating_sub(d.len()),
                quantile(d, 0.50),
                quantile(d, 0.95),
                quantile(d, 0.99),
                d.last().copied().unwrap_or(f64::NAN),
                quantile(&o.oks, 0.50),
                quantile(&o.oks, 0.99),
            );
        });
    }
}
