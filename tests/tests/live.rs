//! Live delivery, exactly once: every event answered `OK true` reaches each
//! matching live subscription once, on the gateway that took it and on
//! others, also when it was replaced, deleted or expired right after, and
//! across a lost, killed or half-open LISTEN connection and a Postgres
//! restart; when the events in between cannot be recovered (a crash emptied
//! the transit table), subscriptions end with `CLOSED error:`.
//!
//! How each test knows it has seen everything without waiting for a silence:
//! a marker event is published after the events under test; events reach a
//! subscription in the order their transactions committed, so once the
//! marker arrives, everything before it has arrived (or never will).
// Test helpers expect freely: a failed expectation is a failed test (the
// workspace's expect_used lint is for code clients and the database reach).
#![allow(clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use e2e::cluster::OwnCluster;
use e2e::proxy::{Mode, Proxy};
use e2e::relay::{Client, Gateway};
use e2e::{now, publish, TestDb};
use nostr_pg_core::hex;
use nostr_pg_core::sign::{tags, Keys};
use nostr_pg_core::Event;
use serde_json::json;
use support::*;

/// A gateway that checks in often and gives up on a silent LISTEN
/// connection quickly, so the tests run in seconds.
const QUICK_LISTENER: &str = "[database]\nlisten_checkpoint_ms = 200\nlisten_timeout_ms = 2000\n";

async fn gateway(url: &str, extra: &str) -> (Gateway, ConfigFile) {
    let file = ConfigFile::new(&format!("{UNLIMITED}{extra}"));
    let gw = Gateway::start(url, &["--config", &file.arg()]).await;
    (gw, file)
}

/// Reads `sub`'s live events until `marker` arrives; returns the ids before it.
async fn until_marker(c: &mut Client, sub: &str, marker: &Event) -> Vec<String> {
    let marker = hex::encode(&marker.id);
    let mut seen = Vec::new();
    loop {
        let id = c.next_event(sub).await["id"].as_str().unwrap_or_default().to_owned();
        if id == marker {
            return seen;
        }
        seen.push(id);
    }
}

fn ids_of(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Each of `want` exactly once, in any order, and nothing else.
fn exactly_once(got: &[String], want: &[&Event], who: &str) {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in got {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    let want_ids: Vec<String> = want.iter().map(|e| hex::encode(&e.id)).collect();
    for id in &want_ids {
        assert_eq!(
            counts.get(id.as_str()),
            Some(&1),
            "{who}: {id} not exactly once in {got:?}"
        );
    }
    assert_eq!(got.len(), want_ids.len(), "{who}: extra events in {got:?}");
}

async fn metric_of(gw: &Gateway, name: &str) -> f64 {
    metric(&gw.http_url(), name).await
}

/// A replaceable event and the version replacing it, a note and its
/// deletion, an event about to expire and an ephemeral one, all in one
/// batch: each was accepted, so each reaches the live subscriptions once,
/// on the publishing gateway and on another one.
#[tokio::test]
async fn exactly_once_when_replaced_deleted_or_expired_in_the_same_batch() {
    let db = TestDb::new("live_batch").await;
    // One batch of exactly these six events.
    let (a, _fa) = gateway(&db.url, "[publish]\nbatch_window_us = 30000000\nbatch_max_events = 6\n").await;
    let (b, _fb) = gateway(&db.url, QUICK_LISTENER).await;
    let keys = Keys::from_seed("live-batch");
    let author = hex::encode(&keys.pubkey());
    let filter = json!({"authors": [author]});
    let mut on_a = Client::connect(&a.url).await;
    let mut on_b = Client::connect(&b.url).await;
    assert!(on_a
        .req("s", std::slice::from_ref(&filter))
        .await
        .expect("req")
        .is_empty());
    assert!(on_b
        .req("s", std::slice::from_ref(&filter))
        .await
        .expect("req")
        .is_empty());

    let t = now() - 10;
    let v1 = keys.sign(t, 10002, vec![], "v1");
    let v2 = keys.sign(t + 1, 10002, vec![], "v2");
    let note = keys.sign(t, 1, vec![], "note");
    let deletion = keys.sign(t + 1, 5, tags(&[&["e", &hex::encode(&note.id)]]), "");
    let expiring = keys.sign(t, 1, tags(&[&["expiration", &(now() + 2).to_string()]]), "brief");
    let ephemeral = keys.sign(t, 20001, vec![], "now only");
    let batch = [&v1, &v2, &note, &deletion, &expiring, &ephemeral];
    let mut publisher = Client::connect(&a.url).await;
    for e in batch {
        publisher
            .send_text(&format!(r#"["EVENT",{}]"#, e.canonical_json()))
            .await;
    }
    for _ in batch {
        let f = publisher.recv().await;
        assert!(f[0] == "OK" && f[2] == true && f[3] == "", "{f}");
    }
    assert_eq!(
        metric_of(&a, "nostr_gateway_publish_batch_size_count").await,
        1.0,
        "one batch"
    );
    // The marker goes in through SQL: both gateways hear of it after the batch.
    let marker = keys.sign(now(), 1, vec![], "marker");
    assert!(publish(&db.client().await, &marker.canonical_json()).await.0);
    exactly_once(
        &until_marker(&mut on_a, "s", &marker).await,
        &batch,
        "publishing gateway",
    );
    exactly_once(&until_marker(&mut on_b, "s", &marker).await, &batch, "other gateway");

    // What is stored now: v2 and the deletion (and the expiring event until
    // it expires): the live stream carried more, as promised.
    let stored = publisher
        .req("q", &[json!({"authors": [author], "kinds": [10002, 5]})])
        .await;
    assert_eq!(stored.expect("req").len(), 2);
}

/// A duplicate is answered `OK true`, and delivered to nobody again.
#[tokio::test]
async fn a_duplicate_is_accepted_and_not_delivered_twice() {
    let db = TestDb::new("live_dup").await;
    let (gw, _f) = gateway(&db.url, "").await;
    let keys = Keys::from_seed("live-dup");
    let mut sub = Client::connect(&gw.url).await;
    sub.req("s", &[json!({"kinds": [1]})]).await.expect("req");
    let mut c = Client::connect(&gw.url).await;
    let e = keys.sign(now(), 1, vec![], "once");
    let first = c.publish(&e.canonical_json()).await;
    assert!(first[2] == true && first[3] == "", "{first}");
    let again = c.publish(&e.canonical_json()).await;
    assert_eq!(again[2], true, "NIP-01: a duplicate is answered true: {again}");
    assert!(
        again[3].as_str().unwrap_or_default().starts_with("duplicate: "),
        "{again}"
    );
    let marker = keys.sign(now(), 1, vec![], "marker");
    c.publish(&marker.canonical_json()).await;
    exactly_once(&until_marker(&mut sub, "s", &marker).await, &[&e], "subscriber");
}

/// The LISTEN connection is killed (`pg_terminate_backend`) and cannot come
/// back for a while; events committed meanwhile reach the subscribers once
/// it does, by the first check-in.
#[tokio::test]
async fn a_killed_listen_connection_catches_up() {
    let db = TestDb::new("live_killed").await;
    let admin = e2e::connect(&e2e::cluster_url()).await;
    let writer = db.client().await;
    let (b, _f) = gateway(&db.url, QUICK_LISTENER).await;
    let keys = Keys::from_seed("live-killed");
    let mut sub = Client::connect(&b.url).await;
    sub.req("s", &[json!({"kinds": [1]})]).await.expect("req");
    let listen_pid = listen_backend(&admin, &db.name).await;
    // No new connection to this database until we say so.
    admin
        .batch_execute(&format!("ALTER DATABASE {} ALLOW_CONNECTIONS false", db.name))
        .await
        .expect("disallow");
    admin
        .execute("SELECT pg_terminate_backend($1)", &[&listen_pid])
        .await
        .expect("terminate");
    wait_gone(&admin, listen_pid).await;
    let missed: Vec<Event> = (0..5)
        .map(|i| keys.sign(now(), 1, vec![], &format!("missed {i}")))
        .collect();
    for e in &missed {
        assert!(publish(&writer, &e.canonical_json()).await.0);
    }
    admin
        .batch_execute(&format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", db.name))
        .await
        .expect("allow");
    let got: Vec<String> = {
        let mut got = Vec::new();
        while got.len() < missed.len() {
            got.push(sub.next_event("s").await["id"].as_str().unwrap_or_default().to_owned());
        }
        got
    };
    let marker = keys.sign(now(), 1, vec![], "marker");
    assert!(publish(&writer, &marker.canonical_json()).await.0);
    let mut all = got;
    all.extend(until_marker(&mut sub, "s", &marker).await);
    exactly_once(&all, &missed.iter().collect::<Vec<_>>(), "after the kill");
    assert!(metric_of(&b, "nostr_gateway_live_caught_up_total").await >= 5.0);
    assert!(metric_of(&b, "nostr_gateway_listen_reconnects_total").await >= 2.0);
}

/// An event its stored query already returned is not sent again when its
/// notification comes late: the subscription's snapshot saw it. (The LISTEN
/// connection is held down while the event commits and the REQ runs, so the
/// event reaches the gateway's live path only afterwards, by a check-in.)
#[tokio::test]
async fn an_event_the_stored_query_returned_is_not_sent_again_live() {
    let db = TestDb::new("live_late").await;
    let admin = e2e::connect(&e2e::cluster_url()).await;
    let writer = db.client().await;
    let (b, _f) = gateway(&db.url, QUICK_LISTENER).await;
    let keys = Keys::from_seed("live-late");
    let mut sub = Client::connect(&b.url).await;
    // A first REQ leaves a pooled connection open for the second one.
    sub.req("warm", &[json!({"kinds": [7]})]).await.expect("req");
    let listen_pid = listen_backend(&admin, &db.name).await;
    admin
        .batch_execute(&format!("ALTER DATABASE {} ALLOW_CONNECTIONS false", db.name))
        .await
        .expect("disallow");
    admin
        .execute("SELECT pg_terminate_backend($1)", &[&listen_pid])
        .await
        .expect("terminate");
    wait_gone(&admin, listen_pid).await;
    let early = keys.sign(now(), 1, vec![], "committed before the REQ");
    assert!(publish(&writer, &early.canonical_json()).await.0);
    let stored = sub
        .req("s", &[json!({"kinds": [1]})])
        .await
        .expect("req while the listener is down");
    assert_eq!(ids_of(&stored), vec![hex::encode(&early.id)]);
    admin
        .batch_execute(&format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", db.name))
        .await
        .expect("allow");
    // The check-in delivers `early` to the gateway's live path now; the
    // subscription skips it. The marker comes after it.
    let marker = keys.sign(now(), 1, vec![], "marker");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while metric_of(&b, "nostr_gateway_live_caught_up_total").await < 1.0 {
        assert!(std::time::Instant::now() < deadline, "the check-in never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(publish(&writer, &marker.canonical_json()).await.0);
    assert_eq!(until_marker(&mut sub, "s", &marker).await, Vec::<String>::new());
}

/// A half-open LISTEN connection (the network stops carrying anything and
/// nothing closes) is noticed by its check-in timing out; the gateway
/// reconnects and delivers what was committed meanwhile.
#[tokio::test]
async fn a_half_open_listen_connection_is_noticed_and_caught_up() {
    let db = TestDb::new("live_half_open").await;
    let writer = db.client().await;
    let upstream = upstream_of(&db.url);
    let proxy = Proxy::start(upstream).await;
    let (b, _f) = gateway(&proxy.url_for(&db.url), QUICK_LISTENER).await;
    let keys = Keys::from_seed("live-half-open");
    let mut sub = Client::connect(&b.url).await;
    sub.req("s", &[json!({"kinds": [1]})]).await.expect("req");
    let before = metric_of(&b, "nostr_gateway_listen_reconnects_total").await;
    proxy.freeze_all();
    let missed: Vec<Event> = (0..3)
        .map(|i| keys.sign(now(), 1, vec![], &format!("frozen {i}")))
        .collect();
    for e in &missed {
        assert!(publish(&writer, &e.canonical_json()).await.0);
    }
    let mut got = Vec::new();
    while got.len() < missed.len() {
        got.push(sub.next_event("s").await["id"].as_str().unwrap_or_default().to_owned());
    }
    let marker = keys.sign(now(), 1, vec![], "marker");
    assert!(publish(&writer, &marker.canonical_json()).await.0);
    got.extend(until_marker(&mut sub, "s", &marker).await);
    exactly_once(&got, &missed.iter().collect::<Vec<_>>(), "after the freeze");
    assert!(metric_of(&b, "nostr_gateway_listen_reconnects_total").await > before);
    assert!(metric_of(&b, "nostr_gateway_live_caught_up_total").await >= 3.0);
}

/// Postgres restarts (a clean shutdown) and events are committed before the
/// gateway can reach it again: they are delivered once it does.
#[tokio::test]
async fn events_committed_across_a_postgres_restart_are_delivered() {
    let own = OwnCluster::start("live-restart");
    let proxy = Proxy::start(upstream_of(&own.url)).await;
    let (b, _f) = gateway(&proxy.url_for(&own.url), QUICK_LISTENER).await;
    let keys = Keys::from_seed("live-restart");
    let mut sub = Client::connect(&b.url).await;
    sub.req("s", &[json!({"kinds": [1]})]).await.expect("req");
    let before = metric_of(&b, "nostr_gateway_listen_reconnects_total").await;
    proxy.set_mode(Mode::Refuse);
    own.ctl("stop");
    proxy.cut_all();
    own.ctl("start");
    let writer = e2e::connect(&own.url).await;
    let missed: Vec<Event> = (0..4)
        .map(|i| keys.sign(now(), 1, vec![], &format!("restart {i}")))
        .collect();
    for e in &missed {
        assert!(publish(&writer, &e.canonical_json()).await.0);
    }
    proxy.set_mode(Mode::Forward);
    let mut got = Vec::new();
    while got.len() < missed.len() {
        got.push(sub.next_event("s").await["id"].as_str().unwrap_or_default().to_owned());
    }
    let marker = keys.sign(now(), 1, vec![], "marker");
    assert!(publish(&writer, &marker.canonical_json()).await.0);
    got.extend(until_marker(&mut sub, "s", &marker).await);
    exactly_once(&got, &missed.iter().collect::<Vec<_>>(), "across the restart");
    assert!(metric_of(&b, "nostr_gateway_listen_reconnects_total").await > before);
}

/// A crash empties the transit table: what was committed while the gateway
/// was away can no longer be read, so the live subscriptions that read before
/// the crash end with `CLOSED error:` (never a silent gap), while one made
/// after the restart keeps going: everything it is owed is in the new table.
#[tokio::test]
async fn a_crash_that_loses_transit_rows_closes_the_subscriptions_it_affects() {
    let own = OwnCluster::start("live-crash");
    let (b, _f) = gateway(&own.url, QUICK_LISTENER).await;
    let mut sub = Client::connect(&b.url).await;
    sub.req("before", &[json!({"kinds": [1]})]).await.expect("req");
    own.ctl("crash");
    own.ctl("start");
    // Whether the gateway has noticed yet or not, a REQ now reads after the
    // crash (its pooled connections reconnect on their own).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut n = 0;
    while sub.req(&format!("after{n}"), &[json!({"kinds": [1]})]).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "REQs never served after the restart"
        );
        n += 1;
    }
    let after = format!("after{n}");
    let f = sub.recv().await;
    assert_eq!(f[0], "CLOSED", "{f}");
    assert_eq!(
        f[1], "before",
        "only the subscription that read before the crash ends: {f}"
    );
    assert!(
        f[2].as_str()
            .unwrap_or_default()
            .starts_with("error: live events were lost"),
        "{f}"
    );
    assert_eq!(metric_of(&b, "nostr_gateway_live_gaps_closed_total").await, 1.0);
    let keys = Keys::from_seed("live-crash");
    let writer = e2e::connect(&own.url).await;
    let e = keys.sign(now(), 1, vec![], "after the crash");
    assert!(publish(&writer, &e.canonical_json()).await.0);
    let got = sub.recv().await;
    assert_eq!(
        (got[0].as_str(), got[1].as_str()),
        (Some("EVENT"), Some(after.as_str())),
        "{got}"
    );
    assert_eq!(got[2]["id"], hex::encode(&e.id).as_str());
}

/// A gateway that starts while the database cannot be reached serves
/// anyway, refuses REQs (it could not promise their live part), and serves
/// them in full once its LISTEN connection has checked in.
#[tokio::test]
async fn reqs_wait_for_live_delivery_to_be_ready() {
    let db = TestDb::new("live_ready").await;
    let proxy = Proxy::start(upstream_of(&db.url)).await;
    proxy.set_mode(Mode::Refuse);
    let (b, _f) = gateway(
        &proxy.url_for(&db.url),
        &format!("{QUICK_LISTENER}connect_timeout_ms = 500\n"),
    )
    .await;
    let mut c = Client::connect(&b.url).await;
    let refused = c.req("early", &[json!({"kinds": [1]})]).await.expect_err("CLOSED");
    assert!(
        refused[2]
            .as_str()
            .unwrap_or_default()
            .starts_with("error: live delivery is not ready"),
        "{refused}"
    );
    proxy.set_mode(Mode::Forward);
    // Poll with REQs until one is served: the gateway reconnects on its own.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut n = 0;
    while c.req(&format!("try{n}"), &[json!({"kinds": [1]})]).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "REQs never served");
        tokio::time::sleep(Duration::from_millis(50)).await;
        n += 1;
    }
    let keys = Keys::from_seed("live-ready");
    let e = keys.sign(now(), 1, vec![], "first");
    assert!(publish(&db.client().await, &e.canonical_json()).await.0);
    assert_eq!(
        c.next_event(&format!("try{n}")).await["id"],
        hex::encode(&e.id).as_str()
    );
}

/// The host:port a postgres URL names.
fn upstream_of(url: &str) -> std::net::SocketAddr {
    let host_port = url
        .split_once('@')
        .and_then(|(_, rest)| rest.split('/').next())
        .expect("host:port in url");
    host_port.parse().expect("socket address")
}

/// The backend pid of a gateway's LISTEN connection to database `db`.
async fn listen_backend(admin: &tokio_postgres::Client, db: &str) -> i32 {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let row = admin
            .query_opt(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = 'nostr_pg_gateway_listen'",
                &[&db],
            )
            .await
            .expect("pg_stat_activity");
        if let Some(r) = row {
            return r.get(0);
        }
        assert!(std::time::Instant::now() < deadline, "no LISTEN connection");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until backend `pid` has exited.
async fn wait_gone(admin: &tokio_postgres::Client, pid: i32) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let alive: bool = admin
            .query_one("SELECT count(*) > 0 FROM pg_stat_activity WHERE pid = $1", &[&pid])
            .await
            .expect("pg_stat_activity")
            .get(0);
        if !alive {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "backend {pid} did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
