//! Publishing pre-built EVENT frames over K connections, each keeping up to W
//! events waiting for their OK (W = 1: publish, wait for OK, repeat).
//! Shared by the ingest workload (fresh events) and by importing a JSONL file
//! into a peer relay over WebSocket.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

use crate::error::BenchError;
use crate::stats::Latencies;
use crate::ws::{self, Frame, Target};

/// Longest wait for any OK before a connection is given up.
const OK_WAIT: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct Outcome {
    pub sent: u64,
    pub accepted: u64,
    pub rejected: BTreeMap<String, u64>,
    pub failed_connections: u64,
    pub latencies: Latencies,
    pub elapsed: Duration,
}

/// `(id, frame)` pairs; connection k publishes items k, k+K, k+2K, ...
pub async fn publish(
    target: &Target,
    items: Arc<Vec<(String, String)>>,
    connections: usize,
    window: usize,
    progress: bool,
) -> Result<Outcome, BenchError> {
    let connections = connections.max(1);
    let mut sockets = Vec::with_capacity(connections);
    for _ in 0..connections {
        sockets.push(ws::connect(target, None, false).await?);
    }
    let started = Instant::now();
    let tasks: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(k, socket)| {
            let items = items.clone();
            tokio::spawn(async move {
                one_connection(socket, items, k, connections, window.max(1), progress && k == 0).await
            })
        })
        .collect();
    let mut total = Outcome::default();
    for t in tasks {
        match t.await {
            Ok(Ok(o)) => merge(&mut total, o),
            Ok(Err(e)) => {
                eprintln!("relay_bench: publisher failed: {e}");
                total.failed_connections += 1;
            }
            Err(e) => {
                eprintln!("relay_bench: publisher task: {e}");
                total.failed_connections += 1;
            }
        }
    }
    total.elapsed = started.elapsed();
    Ok(total)
}

fn merge(total: &mut Outcome, o: Outcome) {
    total.sent += o.sent;
    total.accepted += o.accepted;
    for (k, v) in o.rejected {
        *total.rejected.entry(k).or_default() += v;
    }
    total.latencies.extend(o.latencies);
}

async fn one_connection(
    mut socket: ws::Ws,
    items: Arc<Vec<(String, String)>>,
    k: usize,
    stride: usize,
    window: usize,
    progress: bool,
) -> Result<Outcome, BenchError> {
    let mut out = Outcome::default();
    let mut waiting: HashMap<String, Instant> = HashMap::with_capacity(window * 2);
    let mut next = k;
    let mut last_report = Instant::now();
    loop {
        let mut fed = false;
        while waiting.len() < window && next < items.len() {
            let Some((id, frame)) = items.get(next) else { break };
            socket
                .feed(Message::text(frame.clone()))
                .await
                .map_err(BenchError::ws("send EVENT"))?;
            waiting.insert(id.clone(), Instant::now());
            next += stride;
            out.sent += 1;
            fed = true;
        }
        if fed {
            socket.flush().await.map_err(BenchError::ws("flush"))?;
        }
        if waiting.is_empty() {
            break;
        }
        let Some(text) = ws::next_text(&mut socket, OK_WAIT).await? else {
            return Err(BenchError::Relay(format!(
                "closed the connection with {} events unanswered",
                waiting.len()
            )));
        };
        match ws::parse(&text) {
            Frame::Ok { id, accepted, message } => {
                if let Some(sent_at) = waiting.remove(&id) {
                    out.latencies.push(sent_at.elapsed());
                    if accepted {
                        out.accepted += 1;
                    } else {
                        let prefix = message.split(':').next().unwrap_or("").to_owned();
                        *out.rejected.entry(prefix).or_default() += 1;
                    }
                }
            }
            Frame::Notice(m) => eprintln!("relay_bench: NOTICE {m}"),
            _ => {}
        }
        if progress && last_report.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "relay_bench: publishing, {} of {} sent on connection 0",
                out.sent,
                items.len() / stride
            );
            last_report = Instant::now();
        }
    }
    Ok(out)
}
