//! `report`: the records of one run as a table on stdout, `summary.json` for
//! machines, and `report.md` with the machine, date, commit, targets and the
//! latency plot.

use std::fmt::Write as _;

use crate::args::Args;
use crate::error::BenchError;
use crate::plot;
use crate::record::Record;
use crate::summary::Summary;
use crate::targets;

/// (metric, label, higher is better). `None` for "should be equal".
type Column = (&'static str, &'static str, Option<bool>);

/// CPU-seconds per 1,000 operations: the relay's processes, then the load
/// generator's (which shares the cores, so it is shown, not compared).
fn cpu_columns(per: &'static str) -> [Column; 2] {
    match per {
        "events" => [
            ("relay_cpu_s_per_1k", "relay CPU s/1k events", Some(false)),
            ("bench_cpu_s_per_1k", "client CPU s/1k events", None),
        ],
        "COUNTs" => [
            ("relay_cpu_s_per_1k", "relay CPU s/1k COUNTs", Some(false)),
            ("bench_cpu_s_per_1k", "client CPU s/1k COUNTs", None),
        ],
        _ => [
            ("relay_cpu_s_per_1k", "relay CPU s/1k REQs", Some(false)),
            ("bench_cpu_s_per_1k", "client CPU s/1k REQs", None),
        ],
    }
}

fn columns(workload: &str, case: &str) -> Vec<Column> {
    let mut cols = match (workload, case) {
        ("import", _) => vec![("events_per_s", "events/s", Some(true))],
        ("ingest", _) => vec![
            ("accepted_per_s", "accepted/s", Some(true)),
            ("ok_p50_ms", "OK p50 ms", Some(false)),
            ("ok_p99_ms", "OK p99 ms", Some(false)),
            ("rejected", "rejected", Some(false)),
        ],
        ("query", "mix") => vec![
            ("reqs_per_s", "REQs/s @32", Some(true)),
            ("loaded_p50_ms", "p50 ms @32", Some(false)),
            ("loaded_p99_ms", "p99 ms @32", Some(false)),
            ("events_per_req", "events/REQ", None),
            ("errors", "errors", Some(false)),
        ],
        ("req", _) => vec![
            ("clients", "clients", None),
            ("reqs_per_s", "REQs/s", Some(true)),
            ("p50_ms", "REQ→EOSE p50 ms", Some(false)),
            ("p99_ms", "REQ→EOSE p99 ms", Some(false)),
            ("events_per_req", "events/REQ", None),
            ("errors", "errors", Some(false)),
        ],
        ("count", _) => vec![
            ("count", "count", None),
            ("counts_per_s", "COUNTs/s", Some(true)),
            ("p50_ms", "COUNT p50 ms", Some(false)),
            ("p99_ms", "COUNT p99 ms", Some(false)),
            ("errors", "errors", Some(false)),
        ],
        ("query", _) => vec![
            ("c1_p50_ms", "p50 ms @1", Some(false)),
            ("c1_p99_ms", "p99 ms @1", Some(false)),
            ("reqs_per_s", "REQs/s @32", Some(true)),
            ("loaded_p99_ms", "p99 ms @32", Some(false)),
            ("events_per_req", "events/REQ", None),
            ("check_events", "events in check", None),
            ("errors", "errors @32", Some(false)),
        ],
        ("fanout", _) => vec![
            ("p50_ms", "delivery p50 ms", Some(false)),
            ("p99_ms", "delivery p99 ms", Some(false)),
            ("delivered_per_s", "delivered/s", Some(true)),
            ("delivered_fraction", "delivered fraction", Some(true)),
        ],
        ("connections", _) => vec![
            ("opened", "open", Some(true)),
            ("failed", "failed", Some(false)),
            ("rss_held_mib", "RSS MiB", Some(false)),
            ("rss_per_conn_kib", "KiB/conn", Some(false)),
        ],
        _ => Vec::new(),
    };
    match (workload, case) {
        ("ingest", _) => cols.extend(cpu_columns("events")),
        ("query", "mix") | ("req", _) => cols.extend(cpu_columns("REQs")),
        ("count", _) => cols.extend(cpu_columns("COUNTs")),
        _ => {}
    }
    cols
}

fn fmt(v: Option<f64>) -> String {
    match v {
        None => "–".into(),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

/// Rows of the table: label cells, then per relay its value, then for each
/// peer the ratio nostr_pg/peer.
fn rows(s: &Summary, main: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let peers: Vec<&String> = s.relays.iter().filter(|r| r.as_str() != main).collect();
    let mut header = vec!["workload/case".to_owned(), "metric".to_owned()];
    header.extend(s.relays.iter().cloned());
    header.extend(peers.iter().map(|p| format!("{main}/{p}")));
    let order = ["import", "ingest", "query", "req", "count", "fanout", "connections"];
    let mut keys: Vec<&String> = s.cells.keys().collect();
    keys.sort_by_key(|k| {
        let w = k.split('/').next().unwrap_or("");
        (order.iter().position(|o| *o == w).unwrap_or(order.len()), (*k).clone())
    });
    let mut out = Vec::new();
    for key in keys {
        let (workload, case) = key.split_once('/').unwrap_or((key, ""));
        // A peer that returns a different number of events per REQ answered a
        // different question; its speed is not comparable.
        let differs_in = |k: &str, peer: &str| match (s.get(k, main, "check_events"), s.get(k, peer, "check_events")) {
            (Some(a), Some(b)) => (a - b).abs() > 0.05 * a.max(b),
            _ => false,
        };
        let differs = |peer: &str| {
            if case == "mix" {
                s.cells
                    .keys()
                    .filter(|k| k.starts_with("query/"))
                    .any(|k| differs_in(k, peer))
            } else {
                differs_in(key, peer)
            }
        };
        // A relay that does not support the workload (COUNT) says so in
        // every cell, rather than showing zeros or blanks.
        let unsupported = |relay: &str| s.get(key, relay, "unsupported").is_some_and(|v| v > 0.0);
        let value = |relay: &str, metric: &str| {
            if unsupported(relay) {
                "unsupported".to_owned()
            } else {
                fmt(s.get(key, relay, metric))
            }
        };
        for (metric, label, better) in columns(workload, case) {
            let mut row = vec![key.clone(), label.to_owned()];
            let ours = s.get(key, main, metric).filter(|_| !unsupported(main));
            row.extend(s.relays.iter().map(|r| value(r, metric)));
            for p in &peers {
                let theirs = s.get(key, p, metric).filter(|_| !unsupported(p));
                let ratio = match (ours, theirs) {
                    (Some(a), Some(b)) if b != 0.0 => {
                        let r = a / b;
                        let mark = match better {
                            Some(true) if r >= 1.0 => " ✓",
                            Some(false) if r <= 1.0 => " ✓",
                            Some(_) => " ✗",
                            None => "",
                        };
                        let warn = if differs(p) { " ⚠" } else { "" };
                        format!("{r:.2}×{mark}{warn}")
                    }
                    _ => "–".into(),
                };
                row.push(ratio);
            }
            out.push(row);
        }
    }
    (header, out)
}

fn text_table(header: &[String], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .chain(header.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| if i < 2 { format!("{c:<w$}") } else { format!("{c:>w$}") })
            .collect::<Vec<_>>()
            .join("  ")
    };
    let mut s = line(header) + "\n";
    for r in rows {
        s += &line(r);
        s += "\n";
    }
    s
}

fn md_table(header: &[String], rows: &[Vec<String>]) -> String {
    let mut s = format!("| {} |\n|{}\n", header.join(" | "), "---|".repeat(header.len()));
    for r in rows {
        let _infallible = writeln!(s, "| {} |", r.join(" | "));
    }
    s
}

fn machine() -> Vec<(String, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or("unknown".into(), |kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    vec![
        ("CPU".into(), format!("{model} ({cores} cores available)")),
        ("memory".into(), mem),
        ("kernel".into(), kernel),
    ]
}

/// `report --results FILE --out DIR [--main nostr_pg] [--meta key=value]...`
pub fn run(args: &Args) -> Result<(), BenchError> {
    let results = args.req("results")?;
    let dir = args.req("out")?;
    let main = args.opt("main").unwrap_or("nostr_pg");
    std::fs::create_dir_all(dir).map_err(BenchError::io(format!("create {dir}")))?;
    let records = Record::read_all(results)?;
    let summary = Summary::build(&records, main);
    let verdicts = targets::check(&summary, main);
    let (header, body) = rows(&summary, main);

    println!("{}", text_table(&header, &body));
    println!(
        "✓ nostr_pg better; ⚠ the peer returned a different number of events for the same 20 REQs (not comparable); \
         CPU s/1k: CPU-seconds per 1,000 operations (relay = all its processes, nostr_pg = gateway + Postgres)\n"
    );
    for v in &verdicts {
        let mark = match v.met {
            Some(true) => "MET    ",
            Some(false) => "NOT MET",
            None => "—      ",
        };
        println!("{mark}  {}: {}", v.target, v.measured);
    }

    let meta: Vec<(String, String)> = args
        .all("meta")
        .iter()
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .chain(machine())
        .collect();
    let json = serde_json::json!({
        "meta": meta.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        "summary": &summary,
        "targets": &verdicts,
    });
    let json_path = format!("{dir}/summary.json");
    let text = serde_json::to_string_pretty(&json).map_err(BenchError::json("encode summary"))?;
    std::fs::write(&json_path, text).map_err(BenchError::io(format!("write {json_path}")))?;

    let png = format!("{dir}/latency.png");
    let plotted = match plot::draw(&summary, &png) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("relay_bench: no plot: {e}");
            false
        }
    };

    let mut md = String::from("# nostr_pg relay benchmark\n\n");
    for (k, v) in &meta {
        let _infallible = writeln!(md, "- **{k}**: {v}");
    }
    md += "\nValues are medians over rounds; ratios are nostr_pg / peer (✓ = nostr_pg better; \
           ⚠ = the peer returned a different number of events for the same first 20 REQs of the case, so its speed answers a different question). \
           `@1` is one client (latency on an idle relay), `@32` is 32 clients in a closed loop. \
           `CPU s/1k` is CPU-seconds per 1,000 events, REQs or COUNTs during the timed phase: `relay` counts every process of the relay \
           given by PID (nostr_pg: the gateway and all Postgres processes of its cluster), `client` is relay_bench itself, \
           which shares the cores.\n\n";
    md += "## Targets (nostr_pg)\n\n| target | measured | met |\n|---|---|---|\n";
    for v in &verdicts {
        let met = match v.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "–",
        };
        let _infallible = writeln!(md, "| {} | {} | {met} |", v.target, v.measured);
    }
    md += "\n## Results\n\n";
    md += &md_table(&header, &body);
    if plotted {
        md += "\n## Latency distributions\n\n![latency](latency.png)\n";
    }
    let md_path = format!("{dir}/report.md");
    std::fs::write(&md_path, md).map_err(BenchError::io(format!("write {md_path}")))?;
    eprintln!(
        "relay_bench: wrote {md_path}, {json_path}{}",
        if plotted { format!(", {png}") } else { String::new() }
    );
    Ok(())
}
