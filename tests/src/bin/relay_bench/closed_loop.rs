//! Many clients in a closed loop, as `nostr-bench req` drives a relay: every
//! client holds one connection (opened before the clock starts) and sends its
//! next request as soon as the answer to the previous one is complete: EOSE
//! for a REQ (then CLOSE), the COUNT reply for a COUNT. Shared by the `req`
//! and `count` workloads; the relay's CPU is metered over exactly the timed
//! window.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use serde_json::Value;

use crate::cpu::{CpuMeter, CpuUsed};
use crate::error::BenchError;
use crate::stats::Latencies;
use crate::ws::{self, Frame, Target};

/// Longest wait for the end of one answer before a client gives up.
const ANSWER_WAIT: Duration = Duration::from_secs(30);
/// Connections opened at once while setting up.
const OPEN_PARALLEL: usize = 32;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ask {
    Req,
    Count,
}

impl Ask {
    fn verb(self) -> &'static str {
        match self {
            Ask::Req => "REQ",
            Ask::Count => "COUNT",
        }
    }
}

/// How one request was answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// EOSE after this many events.
    Eose(u64),
    /// A COUNT reply (`None`: no integer count in it).
    Count(Option<u64>),
    /// CLOSED or NOTICE instead of an answer.
    Refused(String),
}

#[derive(Default)]
pub struct Outcome {
    pub latencies: Latencies,
    pub events: u64,
    pub errors: u64,
    pub failed_clients: u64,
    /// The last count a COUNT answered (the same filter every time).
    pub count: Option<u64>,
    pub secs: f64,
    pub cpu: Option<CpuUsed>,
}

impl Outcome {
    pub fn requests(&self) -> u64 {
        self.latencies.len() as u64
    }
}

/// The request frame: `["REQ"|"COUNT", sub, filter]`.
pub fn frame(ask: Ask, sub: &str, filter: &Value) -> String {
    Value::Array(vec![Value::from(ask.verb()), Value::from(sub), filter.clone()]).to_string()
}

/// Sends one request and reads until its answer is complete.
pub async fn ask_once(socket: &mut ws::Ws, ask: Ask, sub: &str, filter: &Value) -> Result<Answer, BenchError> {
    ws::send(socket, frame(ask, sub, filter)).await?;
    let mut events = 0;
    loop {
        let Some(reply) = ws::next_text(socket, ANSWER_WAIT).await? else {
            return Err(BenchError::Relay(format!(
                "closed the connection during a {}",
                ask.verb()
            )));
        };
        match ws::parse(&reply) {
            Frame::Event { sub: s, .. } if s == sub => events += 1,
            Frame::Eose { sub: s } if s == sub && ask == Ask::Req => return Ok(Answer::Eose(events)),
            Frame::Count { sub: s, count } if s == sub && ask == Ask::Count => return Ok(Answer::Count(count)),
            Frame::Closed { sub: s, message } if s == sub => return Ok(Answer::Refused(format!("CLOSED {message}"))),
            Frame::Notice(m) => return Ok(Answer::Refused(format!("NOTICE {m}"))),
            _ => {}
        }
    }
}

/// Opens `n` connections; fails if any cannot be opened (a relay that refuses
/// part of the clients would be measured on fewer of them).
pub async fn open(target: &Target, n: usize) -> Result<Vec<ws::Ws>, BenchError> {
    let results: Vec<Result<ws::Ws, BenchError>> = stream::iter(0..n)
        .map(|_| ws::connect(target, None, false))
        .buffer_unordered(OPEN_PARALLEL)
        .collect()
        .await;
    results.into_iter().collect()
}

async fn client(
    mut socket: ws::Ws,
    ask: Ask,
    filters: Arc<Vec<Value>>,
    offset: usize,
    stop: Arc<AtomicBool>,
) -> Result<Outcome, BenchError> {
    let mut out = Outcome::default();
    let mut n = 0usize;
    let mut reported = false;
    while !stop.load(Ordering::Relaxed) {
        let Some(filter) = filters.get((offset + n) % filters.len().max(1)) else {
            break;
        };
        let sub = format!("b{n}");
        let started = Instant::now();
        let answer = ask_once(&mut socket, ask, &sub, filter).await?;
        out.latencies.push(started.elapsed());
        match answer {
            Answer::Eose(events) => {
                out.events += events;
                ws::send(&mut socket, format!(r#"["CLOSE","{sub}"]"#)).await?;
            }
            Answer::Count(count) => out.count = count.or(out.count),
            Answer::Refused(why) => {
                out.errors += 1;
                if !reported {
                    eprintln!("relay_bench: {} answered {why}", ask.verb());
                    reported = true;
                }
            }
        }
        n += 1;
    }
    Ok(out)
}

/// Runs every socket as a closed-loop client for `duration`; client c starts
/// at filter c and cycles through the list.
pub async fn run(
    sockets: Vec<ws::Ws>,
    ask: Ask,
    filters: Arc<Vec<Value>>,
    duration: Duration,
    pids: &[u32],
) -> Result<Outcome, BenchError> {
    let stop = Arc::new(AtomicBool::new(false));
    let meter = CpuMeter::start(pids)?;
    let started = Instant::now();
    let tasks: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(c, socket)| tokio::spawn(client(socket, ask, filters.clone(), c, stop.clone())))
        .collect();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = Outcome::default();
    for t in tasks {
        match t.await {
            Ok(Ok(o)) => {
                total.events += o.events;
                total.errors += o.errors;
                total.count = o.count.or(total.count);
                total.latencies.extend(o.latencies);
            }
            Ok(Err(e)) => {
                eprintln!("relay_bench: {} client failed: {e}", ask.verb());
                total.failed_clients += 1;
            }
            Err(e) => {
                eprintln!("relay_bench: {} client task: {e}", ask.verb());
                total.failed_clients += 1;
            }
        }
    }
    total.secs = started.elapsed().as_secs_f64();
    total.cpu = Some(meter.stop()?);
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_frames() {
        let f = serde_json::json!({"#t": ["nostr"], "limit": 10});
        assert_eq!(
            frame(Ask::Req, "b0", &f),
            r##"["REQ","b0",{"#t":["nostr"],"limit":10}]"##
        );
        assert_eq!(
            frame(Ask::Count, "b1", &f),
            r##"["COUNT","b1",{"#t":["nostr"],"limit":10}]"##
        );
    }
}
