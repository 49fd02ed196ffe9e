//! NIP-77 against a client nobody here wrote: the rust-nostr client
//! (nostr-sdk) reconciles its own store with the gateway in both
//! directions, and both end with the union. The relay's answers to NEG
//! frames it must refuse: too many records (`blocked:`), a bad message
//! (`invalid:`), a NEG-MSG for no open reconciliation (`closed:`).
// Test helpers expect freely: a failed expectation is a failed test (the
// workspace's expect_used lint is for code clients and the database reach).
#![allow(clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use e2e::relay::{Client as RawClient, Gateway};
use e2e::{now, stored_ids, TestDb};
use nostr_pg_core::hex;
use nostr_pg_core::sign::Keys as CoreKeys;
use nostr_sdk::prelude::*;
use serde_json::json;
use support::{ConfigFile, UNLIMITED};

/// Notes signed with the project's core: `n` of them from `from`, as
/// canonical JSON.
fn notes(seed: &str, from: usize, n: usize) -> Vec<String> {
    let keys = CoreKeys::from_seed(seed);
    let t = now() - 10_000;
    (from..from + n)
        .map(|i| {
            keys.sign(t + i as i64, 1, vec![], &format!("note {i}"))
                .canonical_json()
        })
        .collect()
}

fn ids_of(json: &[String]) -> BTreeSet<String> {
    json.iter()
        .map(|j| Event::from_json(j).expect("event").id.to_hex())
        .collect()
}

#[tokio::test]
async fn nostr_sdk_syncs_both_ways() {
    let db = TestDb::new("neg_sdk").await;
    let c = db.client().await;
    let config = ConfigFile::new(UNLIMITED);
    let gw = Gateway::start(&db.url, &["--config", &config.arg()]).await;

    // Relay only 0..300, both 300..400, client only 400..550.
    let all = notes("neg-sdk", 0, 550);
    let relay_side: Vec<String> = all[..400].to_vec();
    let client_side: Vec<String> = all[300..].to_vec();
    c.query("SELECT * FROM nostr.publish_batch($1)", &[&relay_side])
        .await
        .expect("publish_batch");
    let store = MemoryDatabase::with_opts(MemoryDatabaseOptions {
        events: true,
        max_events: None,
    });
    for json in &client_side {
        store
            .save_event(&Event::from_json(json).expect("event"))
            .await
            .expect("save");
    }
    let client = Client::builder().database(store).build();
    client.add_relay(gw.url.as_str()).await.expect("add relay");
    client.connect().await;

    let filter = Filter::new().kind(Kind::TextNote);
    let opts = SyncOptions::new().direction(SyncDirection::Both);
    let output = tokio::time::timeout(Duration::from_secs(60), client.sync(filter.clone(), &opts))
        .await
        .expect("sync in time")
        .expect("sync");
    assert!(output.failed.is_empty(), "{:?}", output.failed);
    let r = output.val;
    let hexes = |ids: &std::collections::HashSet<EventId>| ids.iter().map(|i| i.to_hex()).collect::<BTreeSet<_>>();
    assert_eq!(hexes(&r.remote), ids_of(&all[..300]), "what only the relay had");
    assert_eq!(hexes(&r.local), ids_of(&all[400..]), "what only the client had");
    assert_eq!(hexes(&r.received), ids_of(&all[..300]));
    assert_eq!(hexes(&r.sent), ids_of(&all[400..]));
    assert!(r.send_failures.values().all(|m| m.is_empty()), "{:?}", r.send_failures);

    // Both hold the union now.
    let union = ids_of(&all);
    assert_eq!(stored_ids(&c).await, union);
    let local = client.database().query(filter.clone()).await.expect("query");
    assert_eq!(local.into_iter().map(|e| e.id.to_hex()).collect::<BTreeSet<_>>(), union);

    // Nothing left to do the second time.
    let again = client.sync(filter, &opts).await.expect("sync again").val;
    assert!(again.remote.is_empty() && again.local.is_empty(), "{again:?}");
    client.disconnect().await;
}

#[tokio::test]
async fn neg_frames_the_relay_refuses() {
    let db = TestDb::new("neg_refuse").await;
    let c = db.client().await;
    c.query("SELECT * FROM nostr.publish_batch($1)", &[&notes("neg-refuse", 0, 20)])
        .await
        .expect("publish_batch");
    let five = notes("neg-five", 0, 5);
    c.query("SELECT * FROM nostr.publish_batch($1)", &[&five])
        .await
        .expect("publish_batch");
    let config = ConfigFile::new("[limits]\nmax_negentropy_records = 10\nmax_negentropy_records_total = 12\n");
    let gw = Gateway::start(&db.url, &["--config", &config.arg()]).await;

    let mut ws = RawClient::connect(&gw.url).await;
    // "61": protocol version 1, no ranges (any client's first message for an
    // empty set).
    ws.send(&json!(["NEG-OPEN", "big", {"kinds": [1]}, "61"])).await;
    let reply = ws.recv().await;
    assert_eq!(reply[0], "NEG-ERR", "{reply}");
    assert_eq!(reply[1], "big");
    assert!(reply[2].as_str().is_some_and(|m| m.starts_with("blocked: ")), "{reply}");

    // Few enough: answered.
    let author = hex::encode(&CoreKeys::from_seed("nobody").pubkey());
    ws.send(&json!(["NEG-OPEN", "small", {"authors": [author]}, "61"]))
        .await;
    let reply = ws.recv().await;
    assert_eq!(reply[0], "NEG-MSG", "{reply}");
    assert_eq!(reply[2], "61", "an empty set answers with the version alone");

    // A filter the database matches itself (a tag): nothing has it.
    ws.send(&json!(["NEG-OPEN", "tagged", {"kinds": [1], "#t": ["none"]}, "61"]))
        .await;
    assert_eq!(ws.recv().await, json!(["NEG-MSG", "tagged", "61"]));

    ws.send(&json!(["NEG-MSG", "small", "zz"])).await;
    let reply = ws.recv().await;
    assert_eq!(reply[0], "NEG-ERR", "{reply}");
    assert!(reply[2].as_str().is_some_and(|m| m.starts_with("invalid: ")), "{reply}");

    // That ended it: the id is unknown now.
    ws.send(&json!(["NEG-MSG", "small", "61"])).await;
    let reply = ws.recv().await;
    assert_eq!(
        reply,
        json!(["NEG-ERR", "small", "closed: no such reconciliation open"])
    );

    // The gateway's record budget: five held (the message asks about no
    // range, so the answer is empty); a new NEG-OPEN reserves records as it
    // reads them, and runs out at the 8th of its 25.
    let five_author = hex::encode(&CoreKeys::from_seed("neg-five").pubkey());
    ws.send(&json!(["NEG-OPEN", "five", {"authors": [five_author]}, "61"]))
        .await;
    let reply = ws.recv().await;
    assert_eq!(reply[0], "NEG-MSG", "{reply}");
    ws.send(&json!(["NEG-OPEN", "more", {"kinds": [1]}, "61"])).await;
    let reply = ws.recv().await;
    assert_eq!(reply[0], "NEG-ERR", "{reply}");
    assert!(
        reply[2]
            .as_str()
            .is_some_and(|m| m.starts_with("blocked: the relay holds too many")),
        "{reply}"
    );
    // Closing gives them back: the same NEG-OPEN gets as far as its size.
    ws.send(&json!(["NEG-CLOSE", "five"])).await;
    ws.send(&json!(["NEG-OPEN", "more", {"kinds": [1]}, "61"])).await;
    let reply = ws.recv().await;
    assert!(
        reply[2]
            .as_str()
            .is_some_and(|m| m.starts_with("blocked: this query is too big")),
        "{reply}"
    );

    ws.send(&json!(["NEG-OPEN", "bad", {"kinds": "x"}, "61"])).await;
    let reply = ws.recv().await;
    assert_eq!(reply[0], "NEG-ERR", "{reply}");
    assert!(reply[2].as_str().is_some_and(|m| m.starts_with("invalid: ")), "{reply}");
    ws.send(&json!(["NEG-CLOSE", "bad"])).await;
    // The connection still serves.
    ws.send(&json!(["REQ", "r", {"limit": 1}])).await;
    assert_eq!(ws.recv().await[0], "EVENT");
}

#[tokio::test]
async fn an_idle_reconciliation_is_closed_and_gives_its_records_back() {
    let db = TestDb::new("neg_idle").await;
    let c = db.client().await;
    c.query("SELECT * FROM nostr.publish_batch($1)", &[&notes("neg-idle", 0, 5)])
        .await
        .expect("publish_batch");
    let config = ConfigFile::new(
        "[limits]\nmax_negentropy_records = 8\nmax_negentropy_records_total = 8\nnegentropy_idle_seconds = 1\n",
    );
    let gw = Gateway::start(&db.url, &["--config", &config.arg()]).await;
    let mut ws = RawClient::connect(&gw.url).await;
    ws.send(&json!(["NEG-OPEN", "idle", {"kinds": [1]}, "61"])).await;
    assert_eq!(ws.recv().await[0], "NEG-MSG");
    // Holding five of eight: another reconciliation of the same five does
    // not fit; one of nothing does.
    ws.send(&json!(["NEG-OPEN", "empty", {"kinds": [7]}, "61"])).await;
    assert_eq!(ws.recv().await, json!(["NEG-MSG", "empty", "61"]));
    ws.send(&json!(["NEG-CLOSE", "empty"])).await;
    ws.send(&json!(["NEG-OPEN", "other", {"kinds": [1]}, "61"])).await;
    let reply = ws.recv().await;
    assert!(reply[2].as_str().is_some_and(|m| m.starts_with("blocked: ")), "{reply}");
    // No NEG-MSG for a second: the relay ends it.
    assert_eq!(
        ws.recv().await,
        json!(["NEG-ERR", "idle", "closed: no NEG-MSG for 1 s"])
    );
    ws.send(&json!(["NEG-OPEN", "other", {"kinds": [1]}, "61"])).await;
    assert_eq!(ws.recv().await, json!(["NEG-MSG", "other", "61"]));
}
