//! Workload 4, idle connections: open N WebSockets (spread over several
//! 127.0.0.x source addresses, so neither ephemeral ports nor a per-IP cap of
//! the relay are what is measured), hold them, read the relay process's RSS,
//! then check that a sample of them still answers a REQ.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use tokio::sync::Mutex;

use crate::args::Args;
use crate::error::BenchError;
use crate::record::Record;
use crate::ws::{self, Frame, Target};

/// Resident set size of a process in MiB, from /proc.
pub fn rss_mib(pid: u32) -> Result<f64, BenchError> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(BenchError::io(format!("read {path}")))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .ok_or_else(|| BenchError::Relay(format!("no VmRSS in {path}")))
}

/// Raises this process's open-file limit to its hard limit.
fn raise_nofile() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => eprintln!("relay_bench: open-file limit {n}"),
        Err(e) => eprintln!("relay_bench: cannot raise the open-file limit: {e}"),
    }
}

async fn probe(socket: &mut ws::Ws) -> Result<(), BenchError> {
    ws::send(socket, r#"["REQ","probe",{"kinds":[1],"limit":1}]"#.to_owned()).await?;
    loop {
        match ws::next_text(socket, Duration::from_secs(10)).await? {
            None => return Err(BenchError::Relay("closed an idle connection".into())),
            Some(t) if matches!(ws::parse(&t), Frame::Eose { .. }) => return Ok(()),
            Some(_) => {}
        }
    }
}

pub async fn run(args: &Args) -> Result<(), BenchError> {
    let target = Target::parse(args.req("url")?)?;
    let relay = args.req("relay")?;
    let out = args.req("out")?;
    let round: u32 = args.num("round", 1)?;
    let pid: u32 = args.num("pid", 0)?;
    let n: usize = args.num("connections", 10_000)?;
    let parallel: usize = args.num("parallel", 64)?;
    let hold: f64 = args.num("hold-seconds", 5.0)?;
    let sources = ws::sources(args.num("sources", 8)?);
    let probes: usize = args.num("probes", 100)?;
    raise_nofile();

    let rss_before = if pid > 0 { rss_mib(pid)? } else { 0.0 };
    let started = Instant::now();
    let opened = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let failures: usize = stream::iter(0..n)
        .map(|i| {
            let target = target.clone();
            let source = sources.get(i % sources.len().max(1)).copied();
            let opened = opened.clone();
            let first_error = first_error.clone();
            async move {
                match ws::connect(&target, source, true).await {
                    Ok(s) => {
                        opened.lock().await.push(s);
                        0
                    }
                    Err(e) => {
                        first_error.lock().await.get_or_insert_with(|| e.to_string());
                        1
                    }
                }
            }
        })
        .buffer_unordered(parallel.max(1))
        .fold(0, |acc, f| async move { acc + f })
        .await;
    let open_secs = started.elapsed().as_secs_f64();
    if let Some(e) = first_error.lock().await.as_ref() {
        eprintln!("relay_bench: {failures} connections failed, the first with: {e}");
    }
    tokio::time::sleep(Duration::from_secs_f64(hold)).await;
    let rss_held = if pid > 0 { rss_mib(pid)? } else { 0.0 };

    let mut sockets = std::mem::take(&mut *opened.lock().await);
    let held = sockets.len();
    let step = (held / probes.max(1)).max(1);
    let mut probe_failures = 0u64;
    let mut probed = 0u64;
    for socket in sockets.iter_mut().step_by(step).take(probes) {
        probed += 1;
        if let Err(e) = probe(socket).await {
            if probe_failures == 0 {
                eprintln!("relay_bench: probe failed: {e}");
            }
            probe_failures += 1;
        }
    }
    drop(sockets);
    Record::new(relay, "connections", "idle", round)
        .set("requested", n as f64)
        .set("opened", held as f64)
        .set("failed", failures as f64)
        .set("open_seconds", open_secs)
        .set("probed", probed as f64)
        .set("probe_failures", probe_failures as f64)
        .set("rss_before_mib", rss_before)
        .set("rss_held_mib", rss_held)
        .set(
            "rss_per_conn_kib",
            if held > 0 {
                (rss_held - rss_before) * 1024.0 / held as f64
            } else {
                0.0
            },
        )
        .append(out)
}
