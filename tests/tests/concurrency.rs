//! Publish rules under concurrency, from separate connections (separate
//! backends), where only locks and indexes can keep the rules true.
// Test helpers expect freely: a failed expectation is a failed test (the
// workspace's expect_used lint is for code clients and the database reach).
#![allow(clippy::expect_used)]

use e2e::{backend_pid, now, publish, wait_until_blocked, TestDb};
use nostr_pg_core::hex;
use nostr_pg_core::sign::{tags, Keys};

/// Opens a transaction on each client, publishes in both, and commits both,
/// so the two publishes truly overlap: the second is seen waiting on the
/// first one's locks before the first commits.
async fn overlapping(db: &TestDb, first: &str, second: &str) -> ((bool, String), (bool, String)) {
    let a = db.client().await;
    let b = db.client().await;
    let observer = db.client().await;
    let b_pid = backend_pid(&b).await;
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
    wait_until_blocked(&observer, b_pid).await;
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
    assert!(!rb.0 && rb.1.starts_with("blocked: have a newer version"), "{rb:?}");
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
        assert!(ra.0, "{label}: {ra:?}");
        let ids = stored_ids(&db, "SELECT encode(id, 'hex') FROM nostr.events").await;
        assert_eq!(ids, vec![hex::encode(&deletion.id)], "{label}: {ra:?} {rb:?}");
        if label == "delete_first" {
            assert!(!rb.0 && rb.1.starts_with("blocked: "), "{label}: {rb:?}");
        } else {
            assert!(rb.0, "{label}: {rb:?}");
        }
    }
}

/// A deletion by `a` tag locks its author, not each address: an addressable
/// event of that author published at the same moment still waits for it.
#[tokio::test]
async fn deletion_by_address_racing_insert_never_leaves_the_event() {
    let keys = Keys::from_seed("race-delete-a");
    let t = now() - 100;
    let article = keys.sign(t, 30023, tags(&[&["d", "post"]]), "to be deleted");
    let address = format!("30023:{}:post", hex::encode(&keys.pubkey()));
    let deletion = keys.sign(t + 1, 5, tags(&[&["a", &address]]), "");
    for (label, first, second) in [
        ("a_insert_first", &article, &deletion),
        ("a_delete_first", &deletion, &article),
    ] {
        let db = TestDb::new(label).await;
        let (ra, rb) = overlapping(&db, &first.canonical_json(), &second.canonical_json()).await;
        assert!(ra.0, "{label}: {ra:?}");
        let ids = stored_ids(&db, "SELECT encode(id, 'hex') FROM nostr.events").await;
        assert_eq!(ids, vec![hex::encode(&deletion.id)], "{label}: {ra:?} {rb:?}");
        if label == "a_delete_first" {
            assert!(!rb.0 && rb.1.starts_with("blocked: "), "{label}: {rb:?}");
        } else {
            assert!(rb.0, "{label}: {rb:?}");
        }
    }
}

#[tokio::test]
async fn the_same_event_from_two_connections_is_stored_once() {
    let db = TestDb::new("dup_race").await;
    let e = Keys::from_seed("race-dup").sign(now(), 1, vec![], "twice");
    let (ra, rb) = overlapping(&db, &e.canonical_json(), &e.canonical_json()).await;
    assert!(ra.0 && ra.1.is_empty(), "{ra:?}");
    // NIP-01: a duplicate was accepted before, so it is answered true.
    assert!(rb.0 && rb.1.starts_with("duplicate: "), "{rb:?}");
    let ids = stored_ids(&db, "SELECT encode(id, 'hex') FROM nostr.events").await;
    assert_eq!(ids, vec![hex::encode(&e.id)]);
}

#[tokio::test]
async fn one_notification_per_transaction_names_it() {
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
    let t = now() - 10;
    // A replaceable event and the version that replaces it, in one batch,
    // with an ephemeral one between: all three were accepted.
    let events: Vec<String> = vec![
        keys.sign(t, 10002, vec![], "v1").canonical_json(),
        keys.sign(t, 20001, vec![], "ephemeral").canonical_json(),
        keys.sign(t + 1, 10002, vec![], "v2").canonical_json(),
    ];
    let c = db.client().await;
    let xid: String = c
        .query_one(
            "WITH r AS MATERIALIZED (SELECT * FROM nostr.publish_batch($1)) \
             SELECT pg_current_xact_id()::text FROM r WHERE accepted LIMIT 1",
            &[&events],
        )
        .await
        .expect("batch")
        .get(0);
    let payload = next(&mut rx).await;
    assert_eq!(payload, xid, "the notification names the batch's transaction");
    let named: Vec<String> = c
        .query("SELECT event FROM nostr.changes(ARRAY[$1::text::xid8])", &[&payload])
        .await
        .expect("changes")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        named, events,
        "everything accepted, the replaced version included, in order"
    );

    // A later transaction's notification is the next one to arrive:
    // notifications come in commit order, so the batch sent exactly one.
    let later = keys.sign(t + 2, 1, vec![], "later").canonical_json();
    assert!(publish(&c, &later).await.0);
    let second = next(&mut rx).await;
    assert_ne!(second, payload, "a second notification for the batch");
    let named: Vec<String> = c
        .query("SELECT event FROM nostr.changes(ARRAY[$1::text::xid8])", &[&second])
        .await
        .expect("changes")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(named, vec![later]);
    // A refused event (a duplicate) notifies nothing; the next notification
    // is again the next accepted event's.
    let dup = publish(&c, &events[2]).await;
    assert!(dup.0 && dup.1.starts_with("duplicate: "), "{dup:?}");
    let third_event = keys.sign(t + 3, 1, vec![], "third").canonical_json();
    assert!(publish(&c, &third_event).await.0);
    let third = next(&mut rx).await;
    let named: Vec<String> = c
        .query("SELECT event FROM nostr.changes(ARRAY[$1::text::xid8])", &[&third])
        .await
        .expect("changes")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        named,
        vec![third_event],
        "the duplicate sent no notification of its own"
    );
}

async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(std::time::Duration::from_secs(30), rx.recv())
        .await
        .expect("a notification in time")
        .expect("payload")
}
