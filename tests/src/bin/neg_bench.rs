//! Measures a NIP-77 reconciliation against a gateway: time, round trips
//! and bytes exchanged, for a client set that differs from the relay's by a
//! chosen fraction in both directions.
//!
//! `neg_bench --relay ws://HOST:PORT --file FILE [--differ-every N]`
//!
//! FILE is JSON Lines of the events the relay holds (for example what
//! `nostr-pg-admin export` wrote). The client's set is that file less every
//! Nth event (the relay has them, the client lacks them), plus as many made-up
//! ids the relay lacks; N is 100 by default, a 1% difference each way. Only
//! the reconciliation runs (NEG-OPEN, NEG-MSG...); no events move.

use std::io::{BufRead, BufReader};
use std::time::Instant;

use e2e::arg;
use futures_util::{SinkExt, StreamExt};
use negentropy::{Id, Negentropy, NegentropyStorageVector};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite::Message;

/// The client's largest message, as rust-nostr's client uses.
const FRAME_SIZE_LIMIT: u64 = 60_000;

fn die(msg: &str) -> ! {
    eprintln!("neg_bench: {msg}\nusage: neg_bench --relay ws://HOST:PORT --file FILE [--differ-every N]");
    std::process::exit(2)
}

fn items(path: &str, every: usize) -> (NegentropyStorageVector, usize, usize) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| die(&format!("{path}: {e}")));
    let mut storage = NegentropyStorageVector::new();
    let (mut kept, mut dropped) = (0, 0);
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.unwrap_or_else(|e| die(&format!("{path}: {e}")));
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| die(&format!("line {}: {e}", i + 1)));
        let created_at = v["created_at"].as_u64().unwrap_or(0);
        if i % every == 0 {
            dropped += 1;
            // One the relay lacks, near the dropped one in time.
            let fake: [u8; 32] = Sha256::digest(format!("neg_bench {i}")).into();
            insert(&mut storage, created_at, fake);
            continue;
        }
        let id = v["id"]
            .as_str()
            .and_then(nostr_pg_core::hex::decode_fixed::<32>)
            .unwrap_or_else(|| die(&format!("line {}: no id", i + 1)));
        insert(&mut storage, created_at, id);
        kept += 1;
    }
    if let Err(e) = storage.seal() {
        die(&format!("seal: {e}"));
    }
    (storage, kept, dropped)
}

fn insert(storage: &mut NegentropyStorageVector, created_at: u64, id: [u8; 32]) {
    if let Err(e) = storage.insert(created_at, Id::from_byte_array(id)) {
        die(&format!("insert: {e}"));
    }
}

#[tokio::main]
async fn main() {
    let relay = arg("--relay").unwrap_or_else(|| die("--relay is required"));
    let path = arg("--file").unwrap_or_else(|| die("--file is required"));
    let every = match arg("--differ-every").map(|v| v.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if n > 1 => n,
        Some(_) => die("--differ-every: a number above 1"),
    };
    let (storage, kept, dropped) = items(&path, every);
    let mut neg = Negentropy::owned(storage, FRAME_SIZE_LIMIT).unwrap_or_else(|e| die(&format!("{e}")));
    let (mut ws, _) = tokio_tungstenite::connect_async(relay.as_str())
        .await
        .unwrap_or_else(|e| die(&format!("connect {relay}: {e}")));

    let started = Instant::now();
    let first = neg.initiate().unwrap_or_else(|e| die(&format!("{e}")));
    let mut out_frame = json!(["NEG-OPEN", "bench", {}, hex::encode(first)]).to_string();
    let (mut sent, mut received, mut rounds) = (0usize, 0usize, 0usize);
    let (mut have, mut need) = (Vec::new(), Vec::new());
    let mut first_answer = None;
    loop {
        sent += out_frame.len();
        rounds += 1;
        if let Err(e) = ws.send(Message::text(out_frame.clone())).await {
            die(&format!("send: {e}"));
        }
        let reply: Value = loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                    if v[0] == "NEG-MSG" || v[0] == "NEG-ERR" {
                        received += t.len();
                        break v;
                    }
                }
                Some(Ok(_)) => {}
                other => die(&format!("connection ended: {other:?}")),
            }
        };
        first_answer.get_or_insert_with(|| started.elapsed());
        if reply[0] == "NEG-ERR" {
            die(&format!("relay: {reply}"));
        }
        let msg = hex::decode(reply[2].as_str().unwrap_or("")).unwrap_or_else(|e| die(&format!("{e}")));
        match neg.reconcile_with_ids(&msg, &mut have, &mut need) {
            Ok(Some(next)) => out_frame = json!(["NEG-MSG", "bench", hex::encode(next)]).to_string(),
            Ok(None) => break,
            Err(e) => die(&format!("reconcile: {e}")),
        }
    }
    let took = started.elapsed();
    if let Err(e) = ws.send(Message::text(json!(["NEG-CLOSE", "bench"]).to_string())).await {
        eprintln!("NEG-CLOSE: {e}");
    }
    println!(
        "client set {} ({} shared, {} only here); relay lacks {}, client lacks {}",
        kept + dropped,
        kept,
        dropped,
        have.len(),
        need.len()
    );
    println!(
        "reconciled in {:.3} s ({} round trips; first answer after {:.3} s, which includes the relay reading its items); \
         sent {} bytes, received {} bytes",
        took.as_secs_f64(),
        rounds,
        first_answer.unwrap_or_default().as_secs_f64(),
        sent,
        received
    );
}
