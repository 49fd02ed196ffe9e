//! relay_bench: drives any Nostr relay over real WebSockets and writes one
//! JSON record per measurement; `report` turns a run's records into a table,
//! JSON, a markdown report and a latency plot. `tests/bench/run.sh` starts the
//! relays (nostr_pg and its peers) and calls these subcommands; see
//! `tests/bench/README.md`.
//!
//! Subcommands (all flags `--name value`):
//! - `ingest`      workload 1: K publishers, wait-for-OK or pipelined
//! - `queries`     builds the REQ set from the dataset file (once per dataset)
//! - `query`       workload 2: REQ → EOSE at 1 and at 32 clients
//! - `req`         `nostr-bench req`-style: 200 clients, `#t` REQ, limit 10
//! - `count`       NIP-45 COUNT of a popular tag (or "not supported")
//! - `fanout`      workload 3: live subscribers, fixed publish rate
//! - `connections` workload 4: idle WebSockets, relay RSS
//! - `import-ws`   workload 5 for peers: a JSONL file over WebSocket
//! - `peer-spec`   checks `--peer NAME=ws://HOST:PORT[,PID...]` for run.sh
//! - `record`      appends a measurement taken by run.sh (e.g. load_events)
//! - `report`      table, summary.json, report.md, latency.png
//!
//! Events are signed before any clock starts; every workload records what the
//! relay answered (accepted, rejected by prefix, errors), not only timings.
//! With `--pids`, the timed workloads also record the CPU time of the relay's
//! processes and of relay_bench itself (`cpu.rs`).

mod args;
mod closed_loop;
mod conns;
mod count;
mod cpu;
mod error;
mod events;
mod fanout;
mod import_ws;
mod ingest;
mod peer;
mod plot;
mod publish;
mod query;
mod queryset;
mod record;
mod report;
mod req_loop;
mod stats;
mod summary;
mod targets;
mod ws;

use args::Args;
use error::BenchError;
use record::Record;

const USAGE: &str =
    "relay_bench ingest|queries|query|req|count|fanout|connections|import-ws|peer-spec|record|report --flag value ...";

/// `record --relay R --workload W --case C [--round N] --metric name=value... --out FILE`
fn record(args: &Args) -> Result<(), BenchError> {
    let mut r = Record::new(
        args.req("relay")?,
        args.req("workload")?,
        args.req("case")?,
        args.num("round", 1)?,
    );
    for kv in args.all("metric") {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| BenchError::Usage(format!("--metric {kv}: expected name=value")))?;
        let v: f64 = v
            .parse()
            .map_err(|_| BenchError::Usage(format!("--metric {kv}: not a number")))?;
        r.set(k, v);
    }
    r.append(args.req("out")?)
}

async fn dispatch(command: &str, args: &Args) -> Result<(), BenchError> {
    match command {
        "ingest" => ingest::run(args).await,
        "queries" => queryset::run(args),
        "query" => query::run(args).await,
        "req" => req_loop::run(args).await,
        "count" => count::run(args).await,
        "peer-spec" => peer::run(args),
        "fanout" => fanout::run(args).await,
        "connections" => conns::run(args).await,
        "import-ws" => import_ws::run(args).await,
        "record" => record(args),
        "report" => report::run(args),
        other => Err(BenchError::Usage(format!("unknown subcommand `{other}`; {USAGE}"))),
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = argv.split_first() else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    let result = Args::parse(rest).and_then(|args| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(BenchError::io("tokio runtime"))?;
        runtime.block_on(dispatch(command, &args))
    });
    if let Err(e) = result {
        eprintln!("relay_bench {command}: {e}");
        std::process::exit(if matches!(e, BenchError::Usage(_)) { 2 } else { 1 });
    }
}
