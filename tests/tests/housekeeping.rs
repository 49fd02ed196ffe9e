//! Housekeeping runs inside PostgreSQL with no outside cron: the extension's
//! background worker removes expired events, old transit rows and events
//! past `nostr.retention`, in batches, in every database that has the
//! extension, counts its work in `nostr.housekeeping` and logs it; databases
//! without the extension (or that dropped it) cost it nothing and never make
//! it fail. Uses a cluster of its own (it restarts it and changes settings).
//!
//! Nothing waits for time to pass: events are published backdated (retention)
//! or expired in place, and the test waits for the worker's counters.
// Test helpers expect freely: a failed expectation is a failed test (the
// workspace's expect_used lint is for code clients and the database reach).
#![allow(clippy::expect_used)]

use std::time::Duration;

use e2e::cluster::OwnCluster;
use e2e::{connect, now, with_database};
use nostr_pg_core::sign::{tags, Keys};
use nostr_pg_core::Event;
use tokio_postgres::Client;

const DAY: i64 = 86_400;
const BATCH: i64 = 10;

async fn publish_all(c: &Client, events: &[Event]) {
    let json: Vec<String> = events.iter().map(Event::canonical_json).collect();
    let ok: i64 = c
        .query_one(
            "SELECT count(*) FILTER (WHERE accepted AND message = '') FROM nostr.publish_batch($1)",
            &[&json],
        )
        .await
        .expect("publish_batch")
        .get(0);
    assert_eq!(ok, events.len() as i64);
}

/// `(runs, batches, removed)` of one task in `nostr.housekeeping` (its row
/// appears with its first run).
async fn counters(c: &Client, task: &str) -> (i64, i64, i64) {
    c.query_opt(
        "SELECT runs, batches, removed FROM nostr.housekeeping WHERE task = $1",
        &[&task],
    )
    .await
    .expect("nostr.housekeeping")
    .map_or((0, 0, 0), |row| (row.get(0), row.get(1), row.get(2)))
}

async fn count(c: &Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.expect(sql).get(0)
}

/// The launcher's process id (None while none runs).
async fn launcher(c: &Client) -> Option<i32> {
    c.query_opt(
        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'nostr_pg housekeeping launcher'",
        &[],
    )
    .await
    .expect("pg_stat_activity")
    .map(|r| r.get(0))
}

/// Polls until `done` says yes; the bound only limits a failure.
async fn wait_for<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_worker_removes_garbage_in_batches_and_counts_it() {
    let own = OwnCluster::start("housekeeping");
    let admin = connect(&own.url).await;
    // Passes off while the garbage is laid out; small batches; transit rows
    // kept no time at all; kind 1 kept 30 days, everything else forever.
    for sql in [
        "ALTER SYSTEM SET nostr.housekeeping_interval = 0".to_owned(),
        format!("ALTER SYSTEM SET nostr.housekeeping_batch = {BATCH}"),
        "ALTER SYSTEM SET nostr.transit_retention = 0".to_owned(),
        "ALTER SYSTEM SET nostr.retention = '1:30d'".to_owned(),
        "CREATE DATABASE plain".to_owned(),
        "CREATE DATABASE dropped".to_owned(),
    ] {
        admin.batch_execute(&sql).await.expect(&sql);
    }
    // A restart, so the launcher surely starts with the interval at 0.
    own.ctl("stop");
    own.ctl("start");
    let admin = connect(&own.url).await;
    let first_launcher = launcher(&admin).await;
    assert!(first_launcher.is_some(), "the launcher runs");
    let dropped = connect(&with_database(&own.url, "dropped")).await;
    dropped
        .batch_execute("CREATE EXTENSION nostr_pg; DROP EXTENSION nostr_pg")
        .await
        .expect("create and drop the extension");

    let t = now();
    // 25 events that will expire, 25 old notes, 5 old reactions and a fresh
    // note: 56 transit rows.
    let later = (t + 3600).to_string();
    let expiring: Vec<Event> = (0..25)
        .map(|i| Keys::from_seed(&format!("hk-exp-{i}")).sign(t, 1, tags(&[&["expiration", &later]]), "soon"))
        .collect();
    let old_notes: Vec<Event> = (0..25)
        .map(|i| Keys::from_seed(&format!("hk-old-{i}")).sign(t - 40 * DAY, 1, vec![], "old"))
        .collect();
    let old_reactions: Vec<Event> = (0..5)
        .map(|i| Keys::from_seed(&format!("hk-react-{i}")).sign(t - 400 * DAY, 7, vec![], "+"))
        .collect();
    let fresh = Keys::from_seed("hk-fresh").sign(t, 1, vec![], "fresh");
    for events in [&expiring, &old_notes, &old_reactions, &vec![fresh]] {
        publish_all(&admin, events).await;
    }
    let transit = count(&admin, "SELECT count(*) FROM nostr.transit").await;
    assert_eq!(transit, 56);
    // Expired in place: the test cannot wait an hour.
    admin
        .batch_execute(
            "ALTER TABLE nostr.events DISABLE TRIGGER events_no_update;
             UPDATE nostr.events SET expires_at = 1 WHERE expires_at IS NOT NULL;
             ALTER TABLE nostr.events ENABLE TRIGGER events_no_update;",
        )
        .await
        .expect("expire");

    for sql in [
        "ALTER SYSTEM SET nostr.housekeeping_interval = '1s'",
        "SELECT pg_reload_conf()",
    ] {
        admin.batch_execute(sql).await.expect(sql);
    }
    // Two runs each: the garbage was all there before the first.
    wait_for("two housekeeping runs", || async {
        counters(&admin, "retention").await.0 >= 2
    })
    .await;

    // 25 rows in batches of 10: three batches in the first run (10, 10, 5),
    // then one empty batch a run.
    let (runs, batches, removed) = counters(&admin, "expired").await;
    assert_eq!((removed, batches), (25, runs + 2), "expired");
    let (runs, batches, removed) = counters(&admin, "retention").await;
    assert_eq!((removed, batches), (25, runs + 2), "retention");
    let (_, _, removed) = counters(&admin, "transit").await;
    assert_eq!(removed, transit, "transit");
    assert_eq!(count(&admin, "SELECT count(*) FROM nostr.transit").await, 0);
    let left: Vec<String> = admin
        .query(
            "SELECT nostr.content(event) FROM nostr.events ORDER BY kind, nostr.content(event)",
            &[],
        )
        .await
        .expect("left")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut want = vec!["fresh".to_owned()];
    want.extend(std::iter::repeat_n("+".to_owned(), 5));
    assert_eq!(left, want, "the fresh note and the reactions, which no rule names");

    // Its work is in the server log too, and the databases without the
    // extension (never created, or dropped) made nothing fail: the same
    // launcher, no pass that exited with an error.
    let log = std::fs::read_to_string(format!("{}/server.log", own.dir)).expect("server.log");
    assert!(
        log.contains("nostr_pg housekeeping in nostr: removed expired 25 in 3 batches"),
        "{log}"
    );
    let failed = log
        .lines()
        .filter(|l| l.contains("background worker \"nostr_pg housekeeping") && l.contains("exited"));
    assert_eq!(failed.count(), 0, "{log}");
    assert_eq!(launcher(&admin).await, first_launcher);
    drop(dropped);
}
