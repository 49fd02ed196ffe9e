//! Backups: a populated relay dumped with `pg_dump` (plain format restored
//! with `psql`, custom format with `pg_restore`) into an empty database, and
//! copied with `pg_basebackup` into a new cluster, comes back as the same
//! relay: every table's rows, the `seq` values and the sequence position, the
//! canonical events byte for byte; a gateway on the copy serves the same
//! answers, accepts new events and still refuses deleted events, replaced
//! versions and vanished authors.
// Test helpers expect freely: a failed expectation is a failed test (the
// workspace's expect_used lint is for code clients and the database reach).
#![allow(clippy::expect_used)]

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use e2e::cluster::OwnCluster;
use e2e::relay::{ids, Client, Gateway};
use e2e::{connect, now, TestDb};
use nostr_pg_core::hex;
use serde_json::json;
use support::population::{populate, Population};

/// Tables whose rows a backup must keep (the live-delivery tables are
/// transient and left out of dumps on purpose).
const TABLES: [&str; 5] = ["events", "event_tags", "deleted_ids", "deleted_addresses", "vanished"];

/// Settings under which the publish rules would refuse most of the
/// population (too old, no proof of work): a restore must not apply them.
const HOSTILE_SETTINGS: &str = "-c nostr.min_pow=40 -c nostr.max_past_seconds=60";

/// What a backup must give back, read with SQL.
#[derive(Debug)]
struct Snapshot {
    /// Per table: name, rows, md5 of every row's text form in order.
    tables: Vec<(String, i64, String)>,
    /// md5 of the canonical events, in id order.
    events: String,
    /// md5 of `seq:id` in seq order.
    seqs: String,
    /// The sequence: last_value, is_called.
    sequence: (i64, bool),
    /// Answers to the population's filters, as canonical JSON.
    answers: Vec<String>,
}

async fn snapshot(url: &str, pop: &Population) -> Snapshot {
    let db = connect(url).await;
    let mut tables = Vec::new();
    for table in TABLES {
        let row = db
            .query_one(
                &format!(
                    "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM nostr.{table} t"
                ),
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("{table}: {e}"));
        tables.push((table.to_owned(), row.get(0), row.get(1)));
    }
    let one = |sql: &'static str| {
        let db = &db;
        async move { db.query_one(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e}")) }
    };
    let events = one("SELECT md5(string_agg(event::text, E'\\n' ORDER BY id)) FROM nostr.events")
        .await
        .get(0);
    let seqs = one("SELECT md5(string_agg(seq || ':' || encode(id, 'hex'), ',' ORDER BY seq)) FROM nostr.events")
        .await
        .get(0);
    let row = one("SELECT last_value, is_called FROM nostr.event_seq").await;
    let sequence = (row.get(0), row.get(1));
    let mut answers = Vec::new();
    for filter in &pop.filters {
        let row = db
            .query_one(
                "SELECT coalesce(string_agg(e::text, E'\\n'), '') FROM nostr.req($1::text) e",
                &[&json!([filter]).to_string()],
            )
            .await
            .unwrap_or_else(|e| panic!("req {filter}: {e}"));
        answers.push(row.get(0));
    }
    Snapshot {
        tables,
        events,
        seqs,
        sequence,
        answers,
    }
}

/// `after` equals `before`, compared part by part for a readable failure.
fn assert_same(after: &Snapshot, before: &Snapshot, pop: &Population, what: &str) {
    assert_eq!(after.tables, before.tables, "{what}: tables");
    assert_eq!(after.events, before.events, "{what}: canonical events");
    assert_eq!(after.seqs, before.seqs, "{what}: seq values");
    assert_eq!(after.sequence, before.sequence, "{what}: sequence position");
    for ((a, b), filter) in after.answers.iter().zip(&before.answers).zip(&pop.filters) {
        assert_eq!(a, b, "{what}: answer to {filter}");
    }
}

fn pg_tool(name: &str) -> PathBuf {
    let bin = std::env::var("PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into());
    PathBuf::from(bin).join(name)
}

/// Runs a Postgres client program; panics with its output if it fails.
fn run(program: &str, args: &[&str]) {
    let out = Command::new(pg_tool(program))
        .args(args)
        .env("PGOPTIONS", HOSTILE_SETTINGS)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn file_size(path: &str) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).expect("dump file")
}

/// A dump file in the temp dir, removed on drop.
struct DumpFile(String);

impl DumpFile {
    fn new(name: &str) -> DumpFile {
        let path = std::env::temp_dir().join(format!("nostr_pg-{name}-{}", std::process::id()));
        DumpFile(path.to_string_lossy().into_owned())
    }
}

impl Drop for DumpFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The copy is the same relay: a gateway on it serves what the original
/// served, accepts a new event and delivers it live, and refuses what the
/// original refused. Returns the new event's `seq`.
async fn relay_works(url: &str, pop: &Population, before: &Snapshot) -> i64 {
    let gw = Gateway::start(url, &[]).await;
    let mut c = Client::connect(&gw.url).await;
    for (filter, answer) in pop.filters.iter().zip(&before.answers) {
        let served = c.req("q", std::slice::from_ref(filter)).await.expect("req");
        let want: Vec<String> = answer
            .lines()
            .map(|e| serde_json::from_str::<serde_json::Value>(e).expect("event json"))
            .map(|e| e["id"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(ids(&served), want, "{filter}");
    }
    let (ok, msg) = ok_frame(&c.publish(&pop.stored.canonical_json()).await);
    assert!(ok && msg.starts_with("duplicate:"), "a restored event: {msg}");
    for (why, event) in &pop.refused_again {
        let (ok, msg) = ok_frame(&c.publish(&event.canonical_json()).await);
        assert!(!ok && msg.starts_with("blocked:"), "an event {why}: {msg}");
    }

    let mut sub = Client::connect(&gw.url).await;
    sub.req("live", &[json!({"kinds": [1], "since": now() - 60})])
        .await
        .expect("req");
    let fresh = pop.keys[0].sign(now(), 1, vec![], "after the restore");
    let (ok, msg) = ok_frame(&c.publish(&fresh.canonical_json()).await);
    assert!(ok && msg.is_empty(), "a new event: {msg}");
    assert_eq!(sub.next_event("live").await["id"], hex::encode(&fresh.id).as_str());
    connect(url)
        .await
        .query_one(
            "SELECT seq FROM nostr.events WHERE id = decode($1, 'hex')",
            &[&hex::encode(&fresh.id)],
        )
        .await
        .expect("the new event's seq")
        .get(0)
}

fn ok_frame(frame: &serde_json::Value) -> (bool, String) {
    (
        frame[2].as_bool().unwrap_or(false),
        frame[3].as_str().unwrap_or_default().to_owned(),
    )
}

fn log_snapshot(label: &str, s: &Snapshot) {
    let tables: Vec<String> = s.tables.iter().map(|(t, n, _)| format!("{t} {n}")).collect();
    eprintln!(
        "{label}: {}; events md5 {}; seq md5 {}; sequence {:?}",
        tables.join(", "),
        s.events,
        s.seqs,
        s.sequence
    );
}

/// These tests run on clusters that do not preload the extension: its
/// housekeeping worker would remove the expired events of the population at
/// a moment of its own, and the copies are compared row for row.
#[tokio::test]
async fn pg_dump_and_restore_give_back_the_same_relay() {
    let own = OwnCluster::start_preloading("backup-dump", false);
    let source = TestDb::on_cluster(&own.url, "backup_source", Some("CREATE EXTENSION nostr_pg")).await;
    let pop = populate(&source.client().await, 2400).await;
    let before = snapshot(&source.url, &pop).await;
    log_snapshot("source", &before);
    assert!(before.tables.iter().all(|(_, n, _)| *n > 0), "{before:?}");

    // Plain format, restored with psql (stopping at the first error).
    let plain = DumpFile::new("dump.sql");
    run("pg_dump", &["--format=plain", "--file", &plain.0, &source.url]);
    let target = TestDb::on_cluster(&own.url, "backup_plain", None).await;
    let started = Instant::now();
    run(
        "psql",
        &["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", &plain.0, "-d", &target.url],
    );
    eprintln!(
        "plain dump {} bytes, restored with psql in {:?}",
        file_size(&plain.0),
        started.elapsed()
    );
    let after = snapshot(&target.url, &pop).await;
    log_snapshot("plain dump restored with psql", &after);
    assert_same(&after, &before, &pop, "plain dump restored with psql");

    // Custom format, restored with pg_restore by two parallel jobs (the
    // tables load in any order, each in its own session).
    let custom = DumpFile::new("dump.custom");
    run("pg_dump", &["--format=custom", "--file", &custom.0, &source.url]);
    let target2 = TestDb::on_cluster(&own.url, "backup_custom", None).await;
    let started = Instant::now();
    run(
        "pg_restore",
        &["--exit-on-error", "--jobs=2", "-d", &target2.url, &custom.0],
    );
    eprintln!(
        "custom dump {} bytes, restored with pg_restore in {:?}",
        file_size(&custom.0),
        started.elapsed()
    );
    let after = snapshot(&target2.url, &pop).await;
    log_snapshot("custom dump restored with pg_restore", &after);
    assert_same(&after, &before, &pop, "custom dump restored with pg_restore");

    // Live-delivery state is not part of a dump.
    let transit: i64 = target2
        .client()
        .await
        .query_one("SELECT count(*) FROM nostr.transit", &[])
        .await
        .expect("transit")
        .get(0);
    assert_eq!(transit, 0);

    // The sequence goes on where it stood: the next event gets the next seq.
    for url in [&target.url, &target2.url] {
        let seq = relay_works(url, &pop, &before).await;
        assert_eq!(seq, before.sequence.0 + 1, "numbered after the restored events");
    }
}

#[tokio::test]
async fn a_base_backup_serves_the_same_events() {
    let own = OwnCluster::start_preloading("basebackup-source", false);
    let pop = populate(&connect(&own.url).await, 300).await;
    let before = snapshot(&own.url, &pop).await;
    log_snapshot("cluster", &before);
    let copy = own.base_backup("basebackup-copy");
    drop(own);
    let mut after = snapshot(&copy.url, &pop).await;
    log_snapshot("pg_basebackup copy", &after);
    // A sequence is logged ahead of its use (up to 32 values), and a copy
    // recovered from WAL starts where the log says: it may skip, never
    // repeat, numbers.
    assert!(after.sequence.0 >= before.sequence.0, "{after:?}");
    after.sequence = before.sequence;
    assert_same(&after, &before, &pop, "pg_basebackup copy");
    let seq = relay_works(&copy.url, &pop, &before).await;
    assert!(seq > before.sequence.0, "numbered after the copied events");
}
