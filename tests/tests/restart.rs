//! Postgres restarts under a running gateway: it answers `error:` while the
//! database is down and serves again, live fanout included, once it is back,
//! without being restarted. Uses a cluster of its own (it stops it).
// Test helpers expect freely: a failed expectation is a failed test (the
// workspace's expect_used lint is for code clients and the database reach).
#![allow(clippy::expect_used)]

use std::time::Duration;

use e2e::cluster::OwnCluster;
use e2e::now;
use e2e::relay::{Client, Gateway};
use nostr_pg_core::hex;
use nostr_pg_core::sign::Keys;
use serde_json::json;

#[tokio::test]
async fn gateway_survives_a_postgres_restart() {
    let own = OwnCluster::start("restart");
    let gw = Gateway::start(&own.url, &[]).await;
    let keys = Keys::from_seed("restart");
    let mut c = Client::connect(&gw.url).await;
    let before = keys.sign(now(), 1, vec![], "before");
    assert_eq!(c.publish(&before.canonical_json()).await[2], true);

    own.ctl("stop");
    let during = keys.sign(now(), 1, vec![], "during");
    let f = c.publish(&during.canonical_json()).await;
    assert_eq!(f[2], false, "{f}");
    assert!(f[3].as_str().unwrap_or_default().starts_with("error:"), "{f}");
    let closed = c
        .req("down", &[json!({"kinds": [1]})])
        .await
        .expect_err("CLOSED while down");
    assert!(closed[2].as_str().unwrap_or_default().starts_with("error:"), "{closed}");

    own.ctl("start");
    // The same connection works again once the gateway has reconnected.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let after = keys.sign(now(), 1, vec![], "after");
    loop {
        let f = c.publish(&after.canonical_json()).await;
        if f[2] == true {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "gateway did not recover: {f}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let stored = c.req("up", &[json!({"kinds": [1]})]).await.expect("req after restart");
    assert_eq!(stored.len(), 2, "{stored:?}");

    // Live delivery works again (a subscription on the same gateway gets a
    // publish before its OK; other gateways' delivery after a restart is in
    // live.rs).
    let mut sub = Client::connect(&gw.url).await;
    sub.req("live", &[json!({"kinds": [1]})]).await.expect("req");
    let live = keys.sign(now(), 1, vec![], "live");
    assert_eq!(c.publish(&live.canonical_json()).await[2], true);
    assert_eq!(sub.next_event("live").await["id"], hex::encode(&live.id).as_str());
    drop(own);
}
