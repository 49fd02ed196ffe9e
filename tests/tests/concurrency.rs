//! Publish rules under concurrency, from separate connections (separate
//! backends), where only locks and indexes can keep the rules true.
// Test helpers expect freely: a failed expectation is a failed test (the
// workspace's expect_used lint is for code clients and the database reach).
#![allow(clippy::expect_used)]

use e2e::{now, publish, TestDb};
use nostr_pg_core::hex;
use nostr_pg_core::sign::{tags, Keys};

/// Opens a transaction on each client, publishes in both, and commits both,
/// so the two publishes truly overlap.
async fn overlapping(db: &TestDb, first: &str, second: &str) -> ((bool, String), (bool, String)) {
    let a = db.client().await;
    let b = db.client().await;
    a.batch_execute("BEGIN").await.expect("begin a");
    b.batch_execute("BEGIN").await.expect("begin b");
    let ra = publish(&a, first).await;
    // b blocks on a's locks until a commits; run it concurrently.
    let second = second.to_owned();
    let pending = tokio::spawn(async move {
        let r = publish(&b, &second).await;
        b.batch_execute("COMMIT").await.expect("commit b");
        r
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    a.batch_execute("COMMIT").await.expect("commit a");
    let rb = pending.await.expect("join");
    (ra, rb)
}

async fn stored_ids(db: &TestDb, sql: &str) -> Vec<String> {
    let c = db.client().await;
    c.query(sql, &[])
        .await
        .expect("query")
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

#[tokio::test]
async fn two_replaceable_versions_at_once_keep_the_newest() {
    let db = TestDb::new("replace_race").await;
    let keys = Keys::from_seed("race-replace");
    let t = now() - 100;
    let older = keys.sign(t, 10002, vec![], "older");
    let newer = keys.sign(t + 1, 10002, vec![], "newer");
    // Newer commits first, then the older one must be refused...
    let (ra, rb) = overlapping(&db, &newer.canonical_json(), &older.canonical_json()).await;
    assert!(ra.0, "{ra:?}");
    assert!(!rb.0 && rb.1.starts_with("duplicate:"), "{rb:?}");
    // ...and in the other order the older one is replaced.
    let db2 = TestDb::new("replace_race2").await;
    let (ra, rb) = overlapping(&db2, &older.canonical_json(), &newer.canonical_json()).await;
    assert!(ra.0 && rb.0, "{ra:?} {rb:?}");
    for d in [&db, &db2] {
        let ids = stored_ids(d, "SELECT encode(id, 'hex') FROM nostr.events WHERE kind = 10002").await;
        assert_eq!(ids, vec![hex::encode(&newer.id)]);
    }
}

#[tokio::test]
async fn deletion_racing_insert_never_leaves_the_event() {
    let keys = Keys::from_seed("race-delete");
    let t = now() - 100;
    let note = keys.sign(t, 1, vec![], "to be deleted");
    let deletion = keys.sign(t + 1, 5, tags(&[&["e", &hex::encode(&note.id)]]), "");
    for (label, first, second) in [("insert_first", &note, &deletion), ("delete_first", &deletion, &note)] {
        let db = TestDb::new(label).await;
        let (ra, rb) = overlapping(&db, &first.canonical_json(), &second.canonical_json()).await;
        let ids = stored_ids(&db, "SELECT encode(id, 'hex') FROM nostr.events").await;
        assert_eq!(ids, vec![hex::encode(&deletion.id)], "{label}: {ra:?} {rb:?}");
    }
}

#[tokio::test]
async fn the_same_event_from_two_connections_is_stored_once() {
    let db = TestDb::new("dup_race").await;
    let e = Keys::from_seed("race-dup").sign(now(), 1, vec![], "twice");
    let (ra, rb) = overlapping(&db, &e.canonical_json(), &e.canonical_json()).await;
    assert!(ra.0, "{ra:?}");
    assert!(!rb.0 && rb.1.starts_with("duplicate:"), "{rb:?}");
}

#[tokio::test]
async fn one_notification_per_transaction_names_its_rows() {
    use futures_util::StreamExt;
    let db = TestDb::new("notify").await;
    let (listener, mut conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stream = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
    tokio::spawn(stream.for_each(move |m| {
        if let Ok(tokio_postgres::AsyncMessage::Notification(n)) = m {
            let _ = tx.send(n.payload().to_owned());
        }
        futures_util::future::ready(())
    }));
    listener.batch_execute("LISTEN nostr_events").await.expect("listen");

    let keys = Keys::from_seed("notify");
    let events: Vec<String> = (0..20)
        .map(|i| {
            keys.sign(now(), if i == 7 { 20001 } else { 1 }, vec![], &format!("n{i}"))
                .canonical_json()
        })
        .collect();
    let c = db.client().await;
    let rows = c
        .query("SELECT accepted FROM nostr.publish_batch($1)", &[&events])
        .await
        .expect("batch");
    assert!(rows.iter().all(|r| r.get::<_, bool>(0)));

    let payload = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
        .await
        .expect("a notification")
        .expect("payload");
    let (lo, hi) = payload.split_once(':').expect("lo:hi");
    let (lo, hi): (i64, i64) = (lo.parse().expect("lo"), hi.parse().expect("hi"));
    let named: Vec<String> = c
        .query("SELECT c FROM nostr.changes($1, $2) c", &[&lo, &hi])
        .await
        .expect("changes")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        named, events,
        "the range names every event, the ephemeral one included, in order"
    );
    // Exactly one notification for the transaction.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(rx.try_recv().is_err(), "a second notification arrived");
}
