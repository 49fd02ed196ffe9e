//! Resource abuse: rate limits, connection caps, idle sockets, a client that
//! never reads, a REQ flood, and queries that would run forever. Every
//! assertion is functional (who got which answer), never a timing; every
//! load is a fixed count with a bounded wait.
// Test helpers expect freely: a failed expectation is a failed test (the
// workspace's expect_used lint is for code clients and the database reach).
#![allow(clippy::expect_used)]

mod support;

use std::time::Duration;

use e2e::relay::{Client, Gateway};
use e2e::{now, TestDb};
use futures_util::{SinkExt, StreamExt};
use nostr_pg_core::sign::Keys;
use serde_json::{json, Value};
use support::*;
use tokio_tungstenite::tungstenite::Message;

fn ok(f: &Value) -> (bool, String) {
    assert_eq!(f[0], "OK", "{f}");
    (
        f[2].as_bool().unwrap_or(false),
        f[3].as_str().unwrap_or_default().to_owned(),
    )
}

async fn gateway(db: &TestDb, toml: &str) -> (Gateway, ConfigFile) {
    let file = ConfigFile::new(toml);
    let gw = Gateway::start(&db.url, &["--config", &file.arg()]).await;
    (gw, file)
}

#[tokio::test]
async fn event_floods_get_rate_limited_per_ip_and_per_pubkey() {
    let db = TestDb::new("rate_limit").await;
    let (gw, _f) = gateway(
        &db,
        "[limits]\nevents_per_second_per_ip = 0.0001\nevent_burst_per_ip = 3.0\n\
         events_per_second_per_pubkey = 1000.0\nevent_burst_per_pubkey = 1000.0\n",
    )
    .await;
    let keys = Keys::from_seed("rate-ip");
    let mut c = Client::connect(&gw.url).await;
    let mut verdicts = Vec::new();
    for i in 0..8 {
        verdicts.push(ok(&c
            .publish(&keys.sign(now(), 1, vec![], &format!("{i}")).canonical_json())
            .await));
    }
    assert!(verdicts[..3].iter().all(|v| v.0), "{verdicts:?}");
    assert!(
        verdicts[3..].iter().all(|v| !v.0 && v.1.starts_with("rate-limited: ")),
        "{verdicts:?}"
    );
    // Limited, not disconnected: REQs still work, and only 3 were stored.
    assert_eq!(c.req("all", &[json!({})]).await.expect("req").len(), 3);
    assert_eq!(event_count(&db.client().await).await, 3);

    let (gw, _f) = gateway(
        &db,
        "[limits]\nevents_per_second_per_ip = 1000.0\nevent_burst_per_ip = 1000.0\n\
         events_per_second_per_pubkey = 0.0001\nevent_burst_per_pubkey = 2.0\n",
    )
    .await;
    let spammer = Keys::from_seed("rate-pubkey");
    let other = Keys::from_seed("rate-other");
    let mut c = Client::connect(&gw.url).await;
    let mut verdicts = Vec::new();
    for i in 0..5 {
        verdicts.push(ok(&c
            .publish(&spammer.sign(now(), 1, vec![], &format!("s{i}")).canonical_json())
            .await));
    }
    assert_eq!(verdicts.iter().filter(|v| v.0).count(), 2, "{verdicts:?}");
    assert!(
        verdicts[2..].iter().all(|v| v.1.starts_with("rate-limited: ")),
        "{verdicts:?}"
    );
    // Another author on the same connection is not affected.
    assert!(ok(&c.publish(&other.sign(now(), 1, vec![], "other").canonical_json()).await).0);
}

#[tokio::test]
async fn connection_caps_per_ip_and_in_total() {
    let db = TestDb::new("conn_caps").await;
    let (gw, _f) = gateway(&db, "[limits]\nmax_connections_per_ip = 5\n").await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(raw_connect(&gw.url).await);
    }
    let refused = tokio_tungstenite::connect_async(&gw.url).await;
    let err = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("503"), "sixth connection from one IP: {err}");
    // A slot comes back when a connection closes.
    let mut first = held.remove(0);
    first.close(None).await.expect("close");
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if tokio_tungstenite::connect_async(&gw.url).await.is_ok() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "slot never released");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused_total = metric(&gw.http_url(), "nostr_gateway_connections_refused_total").await;
    assert!(refused_total >= 1.0, "refusals are counted: {refused_total}");

    let (gw, _f) = gateway(&db, "[limits]\nmax_connections = 3\nmax_connections_per_ip = 100\n").await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(raw_connect(&gw.url).await);
    }
    assert!(
        tokio_tungstenite::connect_async(&gw.url).await.is_err(),
        "fourth connection in total"
    );
    // Plain HTTP (NIP-11, health) is not a WebSocket slot and still answers.
    assert!(http_get(&gw.http_url(), "/health").await.starts_with("HTTP/1.1"));
}

/// Hundreds of idle WebSockets (up to the cap) and silent TCP sockets that
/// never send a request head: the relay keeps serving a real client.
#[tokio::test]
async fn idle_connections_are_bounded_and_do_not_starve_others() {
    let db = TestDb::new("idle").await;
    let (gw, _f) = gateway(&db, "[limits]\nmax_connections_per_ip = 300\nmax_connections = 5000\n").await;
    let addr = gw.http_url().trim_start_matches("http://").to_owned();
    let mut silent = Vec::new();
    for _ in 0..300 {
        silent.push(tokio::net::TcpStream::connect(&addr).await.expect("tcp"));
    }
    let mut idle = Vec::new();
    for _ in 0..299 {
        idle.push(raw_connect(&gw.url).await);
    }
    let mut c = Client::connect(&gw.url).await;
    assert!(
        tokio_tungstenite::connect_async(&gw.url).await.is_err(),
        "the 301st WebSocket is refused"
    );
    let keys = Keys::from_seed("idle");
    assert!(
        ok(&c
            .publish(&keys.sign(now(), 1, vec![], "still served").canonical_json())
            .await)
        .0
    );
    assert_eq!(c.req("r", &[json!({})]).await.expect("req").len(), 1);
    let open = metric(&gw.http_url(), "nostr_gateway_connections").await;
    assert_eq!(open, 300.0);
    println!(
        "{} silent sockets, {} idle websockets, relay still serving",
        silent.len(),
        idle.len()
    );
}

/// A client that subscribes to everything and never reads is cut off; a
/// client reading the same events gets every one of them.
#[tokio::test]
async fn a_client_that_never_reads_is_disconnected_and_others_get_everything() {
    const EVENTS: usize = 200;
    let db = TestDb::new("slow_consumer").await;
    let (gw, _f) = gateway(&db, &format!("{UNLIMITED}live_queue = 16\n")).await;
    let mut slow = raw_connect(&gw.url).await;
    slow.send(Message::text(r#"["REQ","all",{"kinds":[1]}]"#))
        .await
        .expect("send");
    loop {
        match tokio::time::timeout(Duration::from_secs(10), slow.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.contains("EOSE") => break,
            Ok(Some(Ok(_))) => {}
            other => panic!("slow client got no EOSE: {other:?}"),
        }
    }
    let mut fast = Client::connect(&gw.url).await;
    fast.req("all", &[json!({"kinds": [1]})]).await.expect("req");

    let keys = Keys::from_seed("slow-consumer");
    let big = "x".repeat(60_000);
    let events: Vec<String> = (0..EVENTS)
        .map(|i| keys.sign(now(), 1, vec![], &format!("{i}{big}")).canonical_json())
        .collect();
    let publisher = tokio::spawn({
        let url = gw.url.clone();
        async move {
            let mut p = Client::connect(&url).await;
            let mut accepted = 0;
            for e in &events {
                if p.publish(e).await[2] == true {
                    accepted += 1;
                }
            }
            accepted
        }
    });
    let mut got = 0;
    while got < EVENTS {
        fast.next_event("all").await;
        got += 1;
    }
    assert_eq!(publisher.await.expect("publisher"), EVENTS);

    // Only now does the slow client read: what was buffered, then the end.
    let mut slow_events = 0;
    let mut ended = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(30), slow.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.starts_with("[\"EVENT\"") => slow_events += 1,
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => {
                ended = true;
                break;
            }
            Ok(Some(Ok(_))) => {}
            Err(_) => break,
        }
    }
    assert!(
        ended,
        "the slow client was never disconnected (read {slow_events} events)"
    );
    assert!(slow_events < EVENTS, "the slow client got everything: it was not slow");
    let dropped = metric(&gw.http_url(), "nostr_gateway_slow_clients_dropped_total").await;
    assert!(dropped >= 1.0, "{dropped}");
    println!("fast client: {got}/{EVENTS} events; slow client: {slow_events} before disconnect");
}

/// REQs that would run a query are charged to a per-IP token bucket; past it
/// the REQ gets `CLOSED rate-limited:` and nothing else changes. Refused and
/// live-only REQs cost nothing, and the connection stays usable.
#[tokio::test]
async fn req_floods_get_rate_limited_per_ip() {
    let db = TestDb::new("req_rate").await;
    let (gw, _f) = gateway(
        &db,
        "[limits]\nreqs_per_second_per_ip = 0.0001\nreq_burst_per_ip = 3.0\n",
    )
    .await;
    let keys = Keys::from_seed("req-rate");
    let mut c = Client::connect(&gw.url).await;
    assert!(ok(&c.publish(&keys.sign(now(), 1, vec![], "one").canonical_json()).await).0);
    for i in 0..3 {
        let got = c
            .req(&format!("q{i}"), &[json!({"kinds": [1]})])
            .await
            .expect("within the burst");
        assert_eq!(got.len(), 1);
    }
    // Not charged: refused by validation, or nothing stored can match.
    let refused = c.req("bad", &[json!({"limit": -1})]).await.expect_err("invalid");
    assert!(
        refused[2].as_str().is_some_and(|m| m.starts_with("invalid: ")),
        "{refused}"
    );
    assert!(c
        .req("live", &[json!({"kinds": [1], "limit": 0})])
        .await
        .expect("live only")
        .is_empty());
    let limited = c
        .req("q3", &[json!({"kinds": [1]})])
        .await
        .expect_err("over the budget");
    assert_eq!(limited[1], "q3");
    assert!(
        limited[2].as_str().is_some_and(|m| m.starts_with("rate-limited: ")),
        "{limited}"
    );
    let counted = c.req("n", &[json!({"kinds": [1]})]).await;
    assert!(counted.is_err(), "still limited: {counted:?}");
    // Still connected: events are accepted, and the live subscription works.
    let e = keys.sign(now(), 1, vec![], "two");
    assert!(ok(&c.publish(&e.canonical_json()).await).0);
    assert_eq!(
        c.next_event("live").await["id"],
        nostr_pg_core::hex::encode(&e.id).as_str()
    );
    assert_eq!(
        metric(&gw.http_url(), "nostr_gateway_reqs_rate_limited_total").await,
        2.0
    );
}

/// Past its burst, a connection's frames are read at the configured rate:
/// every frame is still answered (nothing is refused), just later, and the
/// pacing of one connection does not hold back another.
#[tokio::test]
async fn a_fast_connection_is_paced_not_refused() {
    const FRAMES: usize = 25;
    let db = TestDb::new("pacer").await;
    let (gw, _f) = gateway(
        &db,
        "[limits]\nframes_per_second_per_connection = 20.0\nframe_burst_per_connection = 5.0\n",
    )
    .await;
    let (mut tx, mut rx) = raw_connect(&gw.url).await.split();
    let started = std::time::Instant::now();
    for i in 0..FRAMES {
        let frame = json!(["REQ", format!("s{i}"), {"kinds": [1], "limit": 0}]).to_string();
        tx.send(Message::text(frame)).await.expect("send");
    }
    // Meanwhile another connection is served at once.
    let mut other = Client::connect(&gw.url).await;
    assert!(other
        .req("other", &[json!({"kinds": [1]})])
        .await
        .expect("served")
        .is_empty());
    let mut eoses = 0;
    while eoses < FRAMES {
        match tokio::time::timeout(Duration::from_secs(20), rx.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let f: Value = serde_json::from_str(t.as_str()).expect("json");
                assert_ne!(f[0], "CLOSED", "paced, not refused: {f}");
                eoses += usize::from(f[0] == "EOSE");
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("paced connection ended after {eoses} EOSEs: {other:?}"),
        }
    }
    // 20 frames past a burst of 5 at 20/s cannot all be read in under a second.
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}

/// One client pipelines hundreds of REQs (most replacing a running one, so
/// each replacement cancels a query); another client's REQ still gets its
/// EOSE, and the flooder gets an answer for every subscription it kept.
#[tokio::test]
async fn a_req_flood_does_not_stall_another_client() {
    const FLOOD: usize = 600;
    let db = TestDb::new("req_flood").await;
    let keys = Keys::from_seed("req-flood");
    let batch: Vec<String> = (0..300)
        .map(|i| keys.sign(now() - i, 1, vec![], &format!("{i}")).canonical_json())
        .collect();
    let admin = db.client().await;
    // Stored before the gateway starts, so no live fanout mixes in.
    admin
        .query("SELECT * FROM nostr.publish_batch($1)", &[&batch])
        .await
        .expect("seed events");
    let (gw, _f) = gateway(&db, UNLIMITED).await;

    let (mut flood_tx, mut flood_rx) = raw_connect(&gw.url).await.split();
    // The flooder reads as fast as it can (it is abusive, not slow) and
    // waits for the EOSE of the last eight REQs, whose ids are not reused.
    let reader = tokio::spawn(async move {
        let mut finals = std::collections::HashSet::new();
        let mut frames = 0usize;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while finals.len() < 8 && tokio::time::Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_secs(60), flood_rx.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    frames += 1;
                    let f: Value = serde_json::from_str(t.as_str()).expect("json");
                    assert_ne!(f[0], "CLOSED", "flood REQ refused: {f}");
                    if f[0] == "EOSE" && f[1].as_str().is_some_and(|s| s.starts_with("final")) {
                        finals.insert(f[1].as_str().unwrap_or_default().to_owned());
                    }
                }
                Ok(Some(Ok(_))) => {}
                other => panic!("flooder connection ended: {other:?}"),
            }
        }
        (finals.len(), frames)
    });
    for i in 0..FLOOD {
        let sub = if i + 8 >= FLOOD {
            format!("final{}", i % 8)
        } else {
            format!("f{}", i % 8)
        };
        let frame = json!(["REQ", sub, {"limit": 500}]).to_string();
        flood_tx.send(Message::text(frame)).await.expect("flood");
    }
    let mut other = Client::connect(&gw.url).await;
    let got = other
        .req("mine", &[json!({"limit": 5})])
        .await
        .expect("the other client's REQ is answered");
    assert_eq!(got.len(), 5);
    let (finals, frames) = reader.await.expect("reader");
    assert_eq!(finals, 8, "the last REQs were all answered");
    let mut again = Client::connect(&gw.url).await;
    assert_eq!(again.req("after", &[json!({"limit": 3})]).await.expect("req").len(), 3);
    println!("{FLOOD} pipelined REQs: {frames} frames back, the other client got its EOSE");
}

async fn waiting_gateway_queries(admin: &tokio_postgres::Client, db: &str) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 \
             AND application_name = 'nostr_pg_gateway' AND wait_event_type = 'Lock'",
            &[&db],
        )
        .await
        .expect("pg_stat_activity")
        .get(0)
}

/// A REQ that cannot finish (its table is locked) ends at
/// `statement_timeout` with `CLOSED error:`; with a long timeout, `CLOSE`
/// cancels it on the server.
#[tokio::test]
async fn statement_timeout_closes_a_stuck_req_and_close_cancels_it() {
    let db = TestDb::new("stuck_req").await;
    let admin = db.client().await;
    let (short, _f1) = gateway(&db, "[database]\nstatement_timeout_ms = 500\n").await;
    let (long, _f2) = gateway(&db, "[database]\nstatement_timeout_ms = 600000\n").await;
    let locker = db.client().await;
    locker
        .batch_execute("BEGIN; LOCK TABLE nostr.events IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");

    let mut c = Client::connect(&short.url).await;
    let closed = c
        .req("stuck", &[json!({"kinds": [1]})])
        .await
        .expect_err("CLOSED at the timeout");
    let msg = closed[2].as_str().unwrap_or_default();
    assert!(msg.starts_with("error: ") && msg.contains("timed out"), "{closed}");

    let mut c = Client::connect(&long.url).await;
    c.send(&json!(["REQ", "stuck", {"kinds": [1]}])).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while waiting_gateway_queries(&admin, &db.name).await == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the REQ never reached the lock");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.send(&json!(["CLOSE", "stuck"])).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while waiting_gateway_queries(&admin, &db.name).await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "CLOSE did not cancel the query on the server"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    locker.batch_execute("ROLLBACK").await.expect("unlock");
    // Nothing was sent for the closed subscription, and the connection works.
    assert!(c.req("after", &[json!({"kinds": [1]})]).await.expect("req").is_empty());
}
