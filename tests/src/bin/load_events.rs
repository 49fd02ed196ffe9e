//! Publishes events from a JSONL file (one event per line, as written by
//! `gen_events`) through `nostr.publish_batch`, and reports the ingest rate.
//!
//! `load_events --database-url URL --file FILE [--batch B] [--connections C] [--limit N]`
//!
//! Batches of B lines go, in file order, to whichever of the C connections is
//! free. Every 100,000 events it prints the rate of that slice and the batch
//! latencies, so the rate at a given table size can be read off; at the end
//! the overall rate and the verdicts (accepted, and rejections by prefix).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::arg;
use gateway::db::tls::Target;
use tokio::sync::mpsc;

const REPORT_EVERY: u64 = 100_000;

#[derive(Default)]
struct Stats {
    events: u64,
    accepted: u64,
    rejected: BTreeMap<String, u64>,
    /// Start of the current 100k slice, and its batch latencies.
    slice_start: Option<Instant>,
    slice_events: u64,
    slice_batches: Vec<Duration>,
}

impl Stats {
    fn record(&mut self, results: &[(bool, String)], took: Duration, now: Instant) {
        for (accepted, message) in results {
            if *accepted {
                self.accepted += 1;
            } else {
                let prefix = message.split(':').next().unwrap_or("").to_owned();
                *self.rejected.entry(prefix).or_default() += 1;
            }
        }
        let before = self.events;
        self.events += results.len() as u64;
        self.slice_events += results.len() as u64;
        self.slice_batches.push(took);
        if self.events / REPORT_EVERY > before / REPORT_EVERY {
            let start = self.slice_start.unwrap_or(now);
            let secs = now.duration_since(start).as_secs_f64().max(1e-9);
            self.slice_batches.sort();
            let pick = |q: f64| {
                let n = self.slice_batches.len();
                let i = ((n as f64 * q).ceil() as usize).clamp(1, n.max(1)) - 1;
                self.slice_batches.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
            };
            println!(
                "events {:>9}: last {} at {:>7.0} events/s; batch p50 {:.1} ms, p99 {:.1} ms",
                self.events,
                self.slice_events,
                self.slice_events as f64 / secs,
                pick(0.5),
                pick(0.99),
            );
            self.slice_start = Some(now);
            self.slice_events = 0;
            self.slice_batches.clear();
        }
    }
}

fn num(name: &str, default: usize) -> usize {
    match arg(name).map(|v| v.parse::<usize>()) {
        Some(Ok(v)) if v > 0 => v,
        Some(_) => die(&format!("{name}: expected a positive number")),
        None => default,
    }
}

fn die(msg: &str) -> ! {
    eprintln!(
        "load_events: {msg}\nusage: load_events --database-url URL --file FILE [--batch B] [--connections C] [--limit N]"
    );
    std::process::exit(2)
}

/// Reads the file on a blocking thread and queues batches of `batch` lines.
fn read_batches(path: String, batch: usize, limit: usize, tx: mpsc::Sender<Vec<String>>) -> std::io::Result<()> {
    let reader = BufReader::with_capacity(1 << 20, std::fs::File::open(&path)?);
    let mut current = Vec::with_capacity(batch);
    for line in reader.lines().take(limit) {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        current.push(line);
        if current.len() == batch {
            let full = std::mem::replace(&mut current, Vec::with_capacity(batch));
            if tx.blocking_send(full).is_err() {
                return Ok(());
            }
        }
    }
    if !current.is_empty() {
        let _unsent_only_if_workers_failed = tx.blocking_send(current);
    }
    Ok(())
}

async fn worker(
    target: Target,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Vec<String>>>>,
    stats: Arc<Mutex<Stats>>,
) -> Result<(), tokio_postgres::Error> {
    let (client, conn) = target.connect().await?;
    let conn = tokio::spawn(conn);
    let stmt = client
        .prepare("SELECT accepted, message FROM nostr.publish_batch($1::text[])")
        .await?;
    loop {
        let batch = rx.lock().await.recv().await;
        let Some(batch) = batch else { break };
        let started = Instant::now();
        let rows = client.query(&stmt, &[&batch]).await?;
        let done = Instant::now();
        let results: Vec<(bool, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        if let Ok(mut s) = stats.lock() {
            s.record(&results, done - started, done);
        }
    }
    drop(client);
    match conn.await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}

#[tokio::main]
async fn main() {
    let url = arg("--database-url").unwrap_or_else(|| die("--database-url is required"));
    let target = Target::parse(&url).unwrap_or_else(|e| die(&e.to_string()));
    let file = arg("--file").unwrap_or_else(|| die("--file is required"));
    let batch = num("--batch", 500);
    let connections = num("--connections", 2);
    let limit = num("--limit", usize::MAX);
    println!("load_events: {file} in batches of {batch} over {connections} connections");

    let (tx, rx) = mpsc::channel(connections * 2);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let started = Instant::now();
    let stats = Arc::new(Mutex::new(Stats {
        slice_start: Some(started),
        ..Stats::default()
    }));
    let reader = tokio::task::spawn_blocking(move || read_batches(file, batch, limit, tx));
    let workers: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(worker(target.clone(), rx.clone(), stats.clone())))
        .collect();

    let mut failed = false;
    for w in workers {
        match w.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                match e.as_db_error() {
                    Some(db) => eprintln!("load_events: {}: {} ({:?})", db.severity(), db.message(), db.code()),
                    None => eprintln!("load_events: connection failed: {e}"),
                }
                failed = true;
            }
            Err(e) => {
                eprintln!("load_events: worker panicked: {e}");
                failed = true;
            }
        }
    }
    match reader.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            eprintln!("load_events: reading the file: {e}");
            failed = true;
        }
        Err(e) => {
            eprintln!("load_events: reader panicked: {e}");
            failed = true;
        }
    }

    let secs = started.elapsed().as_secs_f64();
    if let Ok(s) = stats.lock() {
        println!(
            "load_events: {} events in {:.1} s, {:.0} events/s; accepted {}, rejected {}",
            s.events,
            secs,
            s.events as f64 / secs.max(1e-9),
            s.accepted,
            s.events - s.accepted
        );
        for (prefix, n) in &s.rejected {
            println!("  rejected {prefix}: {n}");
        }
    }
    if failed {
        std::process::exit(1);
    }
}
