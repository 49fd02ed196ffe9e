//! Latency of "latest N events with tag X" and related reads, per index
//! arrangement, on a loaded database.
//!
//! `index_bench --database-url URL [--out DIR] [--label L] [--only a,b] [--runs N] [--warmup N] [--max-seconds S]`
//!
//! The statements are in `tests/bench/index_queries.sql`. The bench first
//! discovers its values in the data (the most popular tag of each letter, the
//! ones nearest 10,000 and 10 events, the most active author, the newest
//! timestamp, a few ids), then for each case PREPAREs the statement, runs it
//! `--warmup` times (so the plan cache has settled on a custom or a generic
//! plan, as it does in a long-lived backend), times `--runs` executions (or
//! as many as fit in `--max-seconds`) and saves `EXPLAIN (ANALYZE, BUFFERS)`
//! of one more. For `nostr.req`/`nostr.count` the plans of the statements the
//! function runs inside are captured with auto_explain.
//!
//! Output: one text file per case in `--out` (default tests/bench/results),
//! and a Markdown table of p50/p99 in `--out/summary-<label>.md`. `--only`
//! keeps the cases whose name starts with one of the given prefixes
//! (`baseline`, `gin`, `side`, `rum`, `exp`, `req`, `count`); `rum` cases need the RUM
//! index described in the SQL file, `exp_tag_kind` the table made by
//! `tests/bench/exp_setup.sql`, and are skipped without them.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use e2e::arg;
use futures_util::future::poll_fn;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, SimpleQueryMessage};

mod cases;

use cases::{cases, Case, Found, Lit};

const QUERIES: &str = include_str!("../../../bench/index_queries.sql");

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// One named statement of the SQL file.
struct Statement {
    types: String,
    text: String,
}

fn parse_queries(src: &str) -> HashMap<String, Statement> {
    let mut out = HashMap::new();
    for section in src.split("-- name: ").skip(1) {
        let (header, body) = section.split_once('\n').unwrap_or((section, ""));
        let (name, types) = header.split_once(' ').unwrap_or((header, "()"));
        // The statement ends at its last semicolon; comments after it belong
        // to the next section.
        let text = body.rsplit_once(';').map_or(body, |(s, _)| s).trim().to_owned();
        out.insert(
            name.trim().to_owned(),
            Statement {
                types: types.trim().to_owned(),
                text,
            },
        );
    }
    out
}

struct Db {
    client: Client,
    notices: mpsc::UnboundedReceiver<String>,
}

async fn connect(url: &str) -> Res<Db> {
    let (client, mut conn) = gateway::db::tls::connect(url).await?;
    let (tx, notices) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(msg) = poll_fn(|cx| conn.poll_message(cx)).await {
            match msg {
                Ok(AsyncMessage::Notice(n)) => {
                    if tx.send(n.message().to_owned()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("index_bench: connection: {e}");
                    break;
                }
            }
        }
    });
    Ok(Db { client, notices })
}

/// Rows of a simple query as text columns.
async fn rows(c: &Client, sql: &str) -> Res<Vec<Vec<String>>> {
    let mut out = Vec::new();
    for m in c.simple_query(sql).await? {
        if let SimpleQueryMessage::Row(r) = m {
            out.push((0..r.len()).map(|i| r.get(i).unwrap_or("").to_owned()).collect());
        }
    }
    Ok(out)
}

async fn discover(c: &Client, q: &HashMap<String, Statement>) -> Res<Found> {
    let text = |name: &str| {
        q.get(name)
            .map(|s| s.text.clone())
            .ok_or(format!("no statement {name}"))
    };
    let tags = rows(c, &text("discover_tags")?)
        .await?
        .into_iter()
        .filter_map(|r| match r.as_slice() {
            [name, tag, n] => Some((name.clone(), tag.clone(), n.parse().unwrap_or(0))),
            _ => None,
        })
        .collect();
    let authors: Vec<(String, i64)> = rows(c, &text("discover_authors")?)
        .await?
        .into_iter()
        .filter_map(|r| Some((r.first()?.clone(), r.get(1)?.parse().unwrap_or(0))))
        .collect();
    let (Some(author), Some(quiet_author)) = (authors.first().cloned(), authors.get(1).cloned()) else {
        return Err("no events".into());
    };
    let newest = rows(c, &text("discover_time")?)
        .await?
        .first()
        .and_then(|r| r.first()?.parse().ok())
        .ok_or("no events")?;
    let ids = rows(c, &text("discover_ids")?)
        .await?
        .into_iter()
        .filter_map(|r| r.first().cloned())
        .collect();
    Ok(Found {
        tags,
        author,
        quiet_author,
        newest,
        ids,
    })
}

struct Timing {
    n: usize,
    p50: f64,
    p99: f64,
    mean: f64,
    max: f64,
    first: f64,
    rows: usize,
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    let n = sorted.len();
    let i = ((n as f64 * q).ceil() as usize).clamp(1, n.max(1)) - 1;
    sorted.get(i).map_or(0.0, ms)
}

fn ms(d: &Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct Settings {
    runs: usize,
    warmup: usize,
    max: Duration,
}

async fn run_case(db: &mut Db, st: &Statement, case: &Case, s: &Settings) -> Res<(Timing, String)> {
    let c = &db.client;
    c.batch_execute("DEALLOCATE ALL").await?;
    let types = if st.types == "()" {
        String::new()
    } else {
        st.types.clone()
    };
    c.batch_execute(&format!("PREPARE bench_q {types} AS {}", st.text))
        .await?;
    let args = case.args.iter().map(Lit::sql).collect::<Vec<_>>().join(", ");
    let exec = if args.is_empty() {
        "EXECUTE bench_q".to_owned()
    } else {
        format!("EXECUTE bench_q({args})")
    };

    let mut first = None;
    let mut result = Vec::new();
    let warm_start = Instant::now();
    for _ in 0..s.warmup.max(1) {
        let t = Instant::now();
        result = rows(c, &exec).await?;
        first.get_or_insert(t.elapsed());
        if warm_start.elapsed() > s.max {
            break;
        }
    }
    let mut times = Vec::with_capacity(s.runs);
    let started = Instant::now();
    while times.len() < s.runs && (times.is_empty() || started.elapsed() < s.max) {
        let t = Instant::now();
        rows(c, &exec).await?;
        times.push(t.elapsed());
    }
    let mean = times.iter().map(ms).sum::<f64>() / times.len().max(1) as f64;
    times.sort();
    let returned = match (case.statement, result.first().and_then(|r| r.first())) {
        ("req" | "count" | "exp_count_side" | "exp_probe", Some(n)) => n.parse().unwrap_or(0),
        _ => result.len(),
    };
    let timing = Timing {
        n: times.len(),
        p50: percentile(&times, 0.5),
        p99: percentile(&times, 0.99),
        mean,
        max: times.last().map_or(0.0, ms),
        first: first.as_ref().map_or(0.0, ms),
        rows: returned,
    };

    let mut report = String::new();
    let plan = rows(c, &format!("EXPLAIN (ANALYZE, BUFFERS) {exec}")).await?;
    for line in plan {
        let _ = writeln!(report, "{}", line.first().map_or("", String::as_str));
    }
    if matches!(case.statement, "req" | "count") {
        while db.notices.try_recv().is_ok() {}
        c.batch_execute(
            "LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; SET auto_explain.log_analyze = on; \
             SET auto_explain.log_buffers = on; SET auto_explain.log_nested_statements = on; \
             SET auto_explain.log_level = 'notice'",
        )
        .await?;
        rows(c, &exec).await?;
        c.batch_execute("SET auto_explain.log_min_duration = -1").await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _ = writeln!(report, "\n-- statements run inside the function (auto_explain):");
        while let Ok(n) = db.notices.try_recv() {
            let _ = writeln!(report, "{n}\n");
        }
    }
    Ok((timing, report))
}

fn num(name: &str, default: usize) -> usize {
    arg(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() -> Res<()> {
    let Some(url) = arg("--database-url") else {
        eprintln!("usage: index_bench --database-url URL [--out DIR] [--label L] [--only a,b] [--runs N] [--warmup N] [--max-seconds S]");
        std::process::exit(2);
    };
    let out = arg("--out").unwrap_or_else(|| "tests/bench/results".into());
    let label = arg("--label").unwrap_or_else(|| "run".into());
    let only: Vec<String> = arg("--only")
        .map(|s| s.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let settings = Settings {
        runs: num("--runs", 200),
        warmup: num("--warmup", 20),
        max: Duration::from_secs(num("--max-seconds", 20) as u64),
    };
    std::fs::create_dir_all(&out)?;
    let queries = parse_queries(QUERIES);
    let mut db = connect(&url).await?;

    let t = Instant::now();
    let found = discover(&db.client, &queries).await?;
    println!("discovery took {:.1} s", t.elapsed().as_secs_f64());
    for (name, tag, n) in &found.tags {
        println!("  {name:<10} {tag} ({n} events)");
    }
    println!(
        "  author     {} ({} events); newest {}; {} ids",
        found.author.0,
        found.author.1,
        found.newest,
        found.ids.len()
    );
    let has_rum = !rows(
        &db.client,
        "SELECT 1 FROM pg_indexes WHERE schemaname = 'nostr' AND indexname = 'events_tags_rum'",
    )
    .await?
    .is_empty();
    let has_exp = !rows(
        &db.client,
        "SELECT 1 FROM pg_tables WHERE schemaname = 'bench' AND tablename = 'event_tags_k'",
    )
    .await?
    .is_empty();

    let mut summary = format!(
        "# index_bench {label}\n\n{} events stored; runs {} (after {} warm-up), at most {} s per case. Latency in ms, client side.\n\n\
         | case | what | rows | n | p50 | p99 | mean | max | first |\n|---|---|---|---|---|---|---|---|---|\n",
        rows(&db.client, "SELECT count(*) FROM nostr.events").await?.first().and_then(|r| r.first().cloned()).unwrap_or_default(),
        settings.runs,
        settings.warmup,
        settings.max.as_secs(),
    );
    for case in cases(&found) {
        if !only.is_empty() && !only.iter().any(|p| case.name.starts_with(p.as_str())) {
            continue;
        }
        if (case.statement.starts_with("rum") && !has_rum) || (case.statement == "exp_tag_kind" && !has_exp) {
            continue;
        }
        let Some(st) = queries.get(case.statement) else {
            continue;
        };
        let (t, plan) = match run_case(&mut db, st, &case, &settings).await {
            Ok(r) => r,
            Err(e) => {
                println!("{:<40} failed: {e}", case.name);
                continue;
            }
        };
        println!(
            "{:<44} rows {:>4}  n {:>3}  p50 {:>9.3}  p99 {:>9.3}  max {:>9.3} ms   {}",
            case.name, t.rows, t.n, t.p50, t.p99, t.max, case.what
        );
        let _ = writeln!(
            summary,
            "| {} | {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
            case.name, case.what, t.rows, t.n, t.p50, t.p99, t.mean, t.max, t.first
        );
        let args = case.args.iter().map(Lit::sql).collect::<Vec<_>>().join(", ");
        let body = format!(
            "-- {} ({})\n-- statement {} {}:\n{}\n-- arguments: {args}\n-- n {} p50 {:.3} ms p99 {:.3} ms mean {:.3} ms max {:.3} ms first {:.3} ms rows {}\n\n{plan}",
            case.name, case.what, case.statement, st.types, st.text, t.n, t.p50, t.p99, t.mean, t.max, t.first, t.rows
        );
        std::fs::write(
            format!("{out}/{label}-{}.txt", case.name.replace(['/', ' '], "_")),
            body,
        )?;
    }
    std::fs::write(format!("{out}/summary-{label}.md"), summary)?;
    Ok(())
}
