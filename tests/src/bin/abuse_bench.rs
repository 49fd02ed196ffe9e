//! abuse_bench: does one abusive client slow down a well-behaved one?
//!
//! `abuse_bench --relay ws://127.0.0.1:7777 [--seconds 20] [--scenario all]`
//!
//! A well-behaved client alternates a publish (waiting for its OK) and a
//! `REQ {"kinds":[1],"limit":20}` (waiting for EOSE), ten times a second,
//! first alone, then while
//! one abusive client runs each scenario:
//! - `req-flood`: REQs pipelined as fast as the socket takes them;
//! - `event-flood`: EVENTs pipelined as fast as the socket takes them;
//! - `never-reads`: subscribes to everything and never reads, while a second
//!   connection publishes 200 events/s for it to fall behind on.
//!
//! It prints p50/p99 of both latencies per phase and the p99 ratio against the
//! quiet phase (the target is at most 2). The abuser connects from 127.0.0.2,
//! so the gateway's per-IP limits apply to it alone: run once with the
//! default limits (what an operator gets) and once with them raised (what the
//! gateway's scheduling does without the limiter's help). Bounded: each phase runs
//! `--seconds`, every connection goes to the given (loopback) relay.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use e2e::relay::Client;
use futures_util::SinkExt;
use nostr_pg_core::sign::Keys;
use serde_json::json;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;

/// The well-behaved client's cycle: 10 publishes and 10 REQs per second.
const PACE: Duration = Duration::from_millis(100);

fn now() -> i64 {
    e2e::now()
}

struct Args {
    relay: String,
    seconds: u64,
    scenario: String,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        relay: String::new(),
        seconds: 20,
        scenario: "all".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--relay" => a.relay = value,
            "--seconds" => a.seconds = value.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--scenario" => a.scenario = value,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if a.relay.is_empty() {
        return Err("usage: abuse_bench --relay ws://HOST:PORT [--seconds N] [--scenario all|req-flood|event-flood|never-reads]".into());
    }
    Ok(a)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted.get(rank).copied().unwrap_or(f64::NAN)
}

/// Latencies (ms) of the well-behaved client's OKs and EOSEs over `secs`.
async fn well_behaved(relay: &str, secs: u64, seed: &str) -> (Vec<f64>, Vec<f64>) {
    let keys = Keys::from_seed(seed);
    let mut c = Client::connect(relay).await;
    let (mut oks, mut eoses) = (Vec::new(), Vec::new());
    let end = Instant::now() + Duration::from_secs(secs);
    let mut n = 0u64;
    // A person's client, not a script: one publish and one REQ per tick,
    // within the default per-IP and per-pubkey rates.
    let mut tick = tokio::time::interval(PACE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while Instant::now() < end {
        tick.tick().await;
        let e = keys.sign(now(), 1, vec![], &format!("{seed} {n}"));
        let t = Instant::now();
        let ok = c.publish(&e.canonical_json()).await;
        oks.push(t.elapsed().as_secs_f64() * 1e3);
        if ok[2] != true {
            eprintln!("abuse_bench: {seed}: publish refused: {ok}");
        }
        let t = Instant::now();
        let answer = c.req(&format!("q{n}"), &[json!({"kinds": [1], "limit": 20})]).await;
        eoses.push(t.elapsed().as_secs_f64() * 1e3);
        if let Err(closed) = answer {
            eprintln!("abuse_bench: {seed}: REQ refused: {closed}");
        }
        c.send(&json!(["CLOSE", format!("q{n}")])).await;
        n += 1;
    }
    c.close().await;
    oks.sort_by(f64::total_cmp);
    eoses.sort_by(f64::total_cmp);
    (oks, eoses)
}

/// A raw socket that only writes (the abuser never reads its answers). It
/// comes from 127.0.0.`host`, as an abuser is someone else: per-IP limits
/// then apply to it and not to the well-behaved client on 127.0.0.1.
async fn raw(relay: &str, host: u8) -> Option<tokio_tungstenite::WebSocketStream<TcpStream>> {
    let hostport = relay.strip_prefix("ws://")?.split('/').next()?;
    let addr: SocketAddr = tokio::net::lookup_host(hostport).await.ok()?.next()?;
    let socket = TcpSocket::new_v4().ok()?;
    if addr.ip().is_loopback() {
        socket.bind(SocketAddr::from(([127, 0, 0, host], 0))).ok()?;
    }
    let stream = socket.connect(addr).await.ok()?;
    stream.set_nodelay(true).ok()?;
    tokio_tungstenite::client_async(relay, stream)
        .await
        .ok()
        .map(|(ws, _)| ws)
}

async fn abuse(relay: String, scenario: String, secs: u64) {
    let end = Instant::now() + Duration::from_secs(secs);
    let keys = Keys::from_seed("abuser");
    match scenario.as_str() {
        "req-flood" | "event-flood" => {
            let Some(mut ws) = raw(&relay, 2).await else { return };
            let mut n = 0u64;
            while Instant::now() < end {
                let frame = if scenario == "req-flood" {
                    json!(["REQ", format!("f{}", n % 16), {"limit": 500}]).to_string()
                } else {
                    format!(
                        r#"["EVENT",{}]"#,
                        keys.sign(now(), 1, vec![], &format!("flood {n}")).canonical_json()
                    )
                };
                // A relay that stops reading us is doing its job: stop too.
                if tokio::time::timeout(Duration::from_secs(1), ws.send(Message::text(frame)))
                    .await
                    .map_or(true, |r| r.is_err())
                {
                    break;
                }
                n += 1;
            }
        }
        "never-reads" => {
            let Some(mut ws) = raw(&relay, 2).await else { return };
            let _ = ws.send(Message::text(json!(["REQ", "all", {}]).to_string())).await;
            // The feeder is a third party (its own address and rate limits).
            let Some(mut feeder) = raw(&relay, 3).await else { return };
            let mut n = 0u64;
            while Instant::now() < end {
                let e = keys.sign(now(), 1, vec![], &format!("{} feed {n} {}", "x".repeat(2000), n));
                let frame = format!(r#"["EVENT",{}]"#, e.canonical_json());
                if feeder.send(Message::text(frame)).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                n += 1;
            }
            drop(ws);
        }
        _ => {}
    }
}

#[tokio::main]
async fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let scenarios: Vec<String> = if a.scenario == "all" {
        vec!["req-flood".into(), "event-flood".into(), "never-reads".into()]
    } else {
        vec![a.scenario.clone()]
    };
    let (ok0, eose0) = well_behaved(&a.relay, a.seconds, "quiet").await;
    println!(
        "| phase | OK p50 ms | OK p99 ms | EOSE p50 ms | EOSE p99 ms | OK p99 ratio | EOSE p99 ratio | within 2x |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let row = |name: &str, ok: &[f64], eose: &[f64]| {
        let (r_ok, r_eose) = (
            percentile(ok, 99.0) / percentile(&ok0, 99.0),
            percentile(eose, 99.0) / percentile(&eose0, 99.0),
        );
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} | {:.2} | {r_ok:.2} | {r_eose:.2} | {} |",
            percentile(ok, 50.0),
            percentile(ok, 99.0),
            percentile(eose, 50.0),
            percentile(eose, 99.0),
            if r_ok <= 2.0 && r_eose <= 2.0 { "yes" } else { "no" }
        );
    };
    row("alone", &ok0, &eose0);
    for s in scenarios {
        let abuser = tokio::spawn(abuse(a.relay.clone(), s.clone(), a.seconds + 2));
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (ok, eose) = well_behaved(&a.relay, a.seconds, &format!("with-{s}")).await;
        abuser.abort();
        row(&format!("with {s}"), &ok, &eose);
    }
}
