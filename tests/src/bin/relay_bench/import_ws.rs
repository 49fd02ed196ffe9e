//! Workload 5 for relays without an in-database import: the JSONL file
//! published over WebSocket, pipelined on a few connections. (nostr_pg imports
//! through `nostr.publish_batch` with `load_events`; run.sh times that.)

use std::io::{BufRead, BufReader};
use std::sync::Arc;

use crate::args::Args;
use crate::error::BenchError;
use crate::publish;
use crate::record::Record;
use crate::ws::Target;

pub async fn run(args: &Args) -> Result<(), BenchError> {
    let target = Target::parse(args.req("url")?)?;
    let relay = args.req("relay")?;
    let out = args.req("out")?;
    let path = args.req("file")?;
    let connections: usize = args.num("connections", 4)?;
    let window: usize = args.num("window", 64)?;

    let file = std::fs::File::open(path).map_err(BenchError::io(format!("open {path}")))?;
    let mut items = Vec::new();
    for line in BufReader::with_capacity(1 << 20, file).lines() {
        let line = line.map_err(BenchError::io(format!("read {path}")))?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let id = line
            .find(r#""id":""#)
            .and_then(|at| line.get(at + 6..at + 6 + 64))
            .unwrap_or("")
            .to_owned();
        items.push((id, format!(r#"["EVENT",{line}]"#)));
    }
    eprintln!(
        "relay_bench: importing {} events into {relay} over WebSocket",
        items.len()
    );
    let o = publish::publish(&target, Arc::new(items), connections, window, true).await?;
    let secs = o.elapsed.as_secs_f64().max(1e-9);
    let rejected: u64 = o.rejected.values().sum();
    for (prefix, n) in &o.rejected {
        eprintln!("relay_bench: {relay} import rejected {n} as `{prefix}`");
    }
    Record::new(relay, "import", "websocket", 1)
        .set("events_per_s", o.sent as f64 / secs)
        .set("accepted", o.accepted as f64)
        .set("rejected", rejected as f64)
        .set("failed_connections", o.failed_connections as f64)
        .set("seconds", secs)
        .append(out)
}
