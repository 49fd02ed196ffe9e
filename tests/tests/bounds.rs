//! Bounds on what one publish batch holds in the server's shared lock table:
//! the largest batches the limits allow leave room for every other session,
//! and events a batch has no lock room for are answered `error:` and sent
//! again by the gateway.
// Test helpers expect freely: a failed expectation is a failed test (the
// workspace's expect_used lint is for code clients and the database reach).
#![allow(clippy::expect_used)]

mod support;

use std::time::Instant;

use e2e::relay::{Client, Gateway};
use e2e::{backend_pid, connect, now, publish, stored_count, TestDb};
use nostr_pg_core::batch::is_deferred;
use nostr_pg_core::hex;
use nostr_pg_core::sign::{tags, Keys};
use sha2::{Digest, Sha256};
use support::*;

/// The gateway's largest event has 2,500 tags (`limits.max_event_tags`); the
/// extension takes up to 1,000 events per call (`nostr.max_batch`).
const MAX_EVENT_TAGS: usize = 2500;
const MAX_BATCH: usize = 1000;
/// Deletions of 2,500 tags in one batch. With one lock per tag, 40 of them
/// would need 100,000 locks, nearly twice the lock table of the project's
/// cluster (256 × 222 backends); a full gateway batch (200) would need
/// 500,000. Locks no longer depend on tags, so 40 show the same as 200 at a
/// fifth of the time (indexing 2,500 tags an event is what costs here).
const DELETIONS: usize = 40;

async fn advisory_locks(observer: &tokio_postgres::Client, pid: i32) -> i64 {
    observer
        .query_one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = $1",
            &[&pid],
        )
        .await
        .expect("pg_locks")
        .get(0)
}

/// `publish_batch` in `c`'s open transaction: (accepted, message) per event.
async fn publish_batch(c: &tokio_postgres::Client, events: &[String]) -> Vec<(bool, String)> {
    c.query("SELECT accepted, message FROM nostr.publish_batch($1)", &[&events])
        .await
        .expect("publish_batch")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// While `holder`'s transaction holds a full batch's locks, another session
/// takes two thousand locks of its own and publishes: the table has room.
async fn others_still_work(db: &TestDb, label: &str) {
    let other = db.client().await;
    other
        .batch_execute("BEGIN; SELECT count(pg_advisory_xact_lock(g)) FROM generate_series(1, 2000) g")
        .await
        .unwrap_or_else(|e| panic!("{label}: another session's locks: {e}"));
    let event = Keys::from_seed("bystander").sign(now(), 1, vec![], label);
    let (ok, msg) = publish(&other, &event.canonical_json()).await;
    assert!(ok, "{label}: another session's publish: {msg}");
    other.batch_execute("COMMIT").await.expect("commit bystander");
}

#[tokio::test]
async fn the_largest_batches_leave_the_lock_table_to_others() {
    let db = TestDb::new("lock_bound").await;
    let holder = db.client().await;
    let observer = db.client().await;
    let pid = backend_pid(&holder).await;
    let t = now() - 100;

    // Authors with a note each, then a deletion each of 2,500 `e` tags: the
    // note and 2,499 ids nobody published.
    let authors: Vec<Keys> = (0..DELETIONS)
        .map(|i| Keys::from_seed(&format!("lock-bound-{i}")))
        .collect();
    let notes: Vec<String> = authors
        .iter()
        .map(|k| k.sign(t, 1, vec![], "to be deleted").canonical_json())
        .collect();
    assert!(publish_batch(&holder, &notes).await.iter().all(|(ok, _)| *ok));
    let mut n = 0u64;
    let deletions: Vec<String> = authors
        .iter()
        .zip(&notes)
        .map(|(k, note)| {
            let note_id = serde_json::from_str::<serde_json::Value>(note).expect("json")["id"]
                .as_str()
                .expect("id")
                .to_owned();
            let mut e_tags = vec![vec!["e".to_owned(), note_id]];
            e_tags.extend((1..MAX_EVENT_TAGS).map(|_| {
                n += 1;
                vec!["e".to_owned(), hex::encode(&Sha256::digest(n.to_le_bytes()))]
            }));
            k.sign(t + 1, 5, e_tags, "").canonical_json()
        })
        .collect();
    holder.batch_execute("BEGIN").await.expect("begin");
    let started = Instant::now();
    let verdicts = publish_batch(&holder, &deletions).await;
    let took = started.elapsed();
    assert!(
        verdicts.iter().all(|(ok, m)| *ok && m.is_empty()),
        "{:?}",
        verdicts.first()
    );
    let locks = advisory_locks(&observer, pid).await;
    assert!(locks <= 2 * DELETIONS as i64, "{locks} advisory locks");
    others_still_work(&db, "deletions").await;
    holder.batch_execute("COMMIT").await.expect("commit");
    let notes_left: i64 = observer
        .query_one("SELECT count(*) FROM nostr.events WHERE kind = 1", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(notes_left, 1, "every note deleted; the bystander's stays");
    println!(
        "{DELETIONS} deletions x {MAX_EVENT_TAGS} e tags: {locks} advisory locks, {:.2} s",
        took.as_secs_f64()
    );

    // nostr.max_batch addressable events, three locks each (id, author,
    // address): at most 3,000, or fewer and the rest deferred when the lock
    // table is small; whatever was deferred goes through when sent again.
    let mut pending: Vec<String> = (0..MAX_BATCH)
        .map(|i| {
            Keys::from_seed(&format!("lock-bound-addr-{i}"))
                .sign(t, 30023, tags(&[&["d", "post"]]), "")
                .canonical_json()
        })
        .collect();
    let mut rounds = 0;
    while !pending.is_empty() {
        rounds += 1;
        holder.batch_execute("BEGIN").await.expect("begin");
        let started = Instant::now();
        let verdicts = publish_batch(&holder, &pending).await;
        let took = started.elapsed();
        let locks = advisory_locks(&observer, pid).await;
        assert!(locks <= 3 * pending.len() as i64, "{locks} advisory locks");
        others_still_work(&db, "addressable").await;
        holder.batch_execute("COMMIT").await.expect("commit");
        let mut deferred = Vec::new();
        for (event, (ok, msg)) in pending.iter().zip(&verdicts) {
            if is_deferred(msg) {
                deferred.push(event.clone());
            } else {
                assert!(*ok && msg.is_empty(), "{msg}");
            }
        }
        assert!(deferred.len() < pending.len(), "no progress");
        println!(
            "{} addressable events: {locks} advisory locks, {} deferred, {:.2} s",
            pending.len(),
            deferred.len(),
            took.as_secs_f64()
        );
        pending = deferred;
    }
    let stored: i64 = observer
        .query_one("SELECT count(*) FROM nostr.events WHERE kind = 30023", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(stored, MAX_BATCH as i64, "after {rounds} rounds");
}

#[tokio::test]
async fn the_gateway_sends_deferred_events_again() {
    let db = TestDb::new("lock_defer").await;
    // Room for eight events of two locks each in one batch.
    let admin = connect(&e2e::cluster_url()).await;
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} SET nostr.max_locks_per_batch = 16",
            db.name
        ))
        .await
        .expect("alter database");
    // One batch of exactly these 40 events: it closes when the 40th arrives
    // (the window only bounds a failure).
    let config = ConfigFile::new(&format!(
        "{UNLIMITED}[publish]\nbatch_window_us = 30000000\nbatch_max_events = 40\n"
    ));
    let gw = Gateway::start(&db.url, &["--config", &config.arg()]).await;
    let mut c = Client::connect(&gw.url).await;
    let events: Vec<_> = (0..40)
        .map(|i| Keys::from_seed(&format!("defer-{i}")).sign(now(), 1, vec![], "hi"))
        .collect();
    for e in &events {
        c.send_text(&format!(r#"["EVENT",{}]"#, e.canonical_json())).await;
    }
    let mut answered = 0;
    while answered < events.len() {
        let f = c.recv().await;
        if f[0] == "OK" {
            assert!(f[2] == true && f[3] == "", "{f}");
            answered += 1;
        }
    }
    let deferred = metric(&gw.http_url(), "nostr_gateway_events_deferred_total").await;
    let batches = metric(&gw.http_url(), "nostr_gateway_publish_batch_size_count").await;
    // 40 → 32 → 24 → 16 → 8 left over after each call: 5 calls.
    assert_eq!((deferred, batches), (32.0 + 24.0 + 16.0 + 8.0, 5.0));
    let stored = stored_count(&db.client().await).await;
    assert_eq!(stored, 40);
}
