//! NIP-01 through a real gateway process on a real database, with raw frames.

use std::time::Duration;

use e2e::relay::{http_get, ids, Client, Gateway};
use e2e::{now, TestDb};
use nostr_pg_core::hex;
use nostr_pg_core::sign::{tags, Keys};
use serde_json::{json, Value};

const CANONICAL: &str = include_str!("../../nostr_pg/core/tests/data/canonical.jsonl");

async fn relay(label: &str) -> (TestDb, Gateway) {
    let db = TestDb::new(label).await;
    let gw = Gateway::start(&db.url, &[]).await;
    (db, gw)
}

fn ok_frame(f: &Value) -> (bool, String) {
    assert_eq!(f[0], "OK", "{f}");
    (
        f[2].as_bool().unwrap_or(false),
        f[3].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn canonical_vectors_are_accepted_and_served_back_exactly() {
    let (_db, gw) = relay("canonical").await;
    let mut c = Client::connect(&gw.url).await;
    let mut sent = Vec::new();
    for line in CANONICAL.lines().filter(|l| !l.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).expect("case");
        c.send_text(case["send"].as_str().expect("send")).await;
        let f = c.recv().await;
        let id = case["event"]["id"].as_str().expect("id").to_owned();
        assert_eq!(f[1], id.as_str(), "{}", case["name"]);
        assert_eq!(ok_frame(&f), (true, String::new()), "{}", case["name"]);
        sent.push((id, case["preimage"].as_str().expect("preimage").to_owned()));
    }
    let all: Vec<Value> = c.req("all", &[json!({"limit": 100})]).await.expect("req");
    assert_eq!(all.len(), sent.len());
    for (id, _) in &sent {
        let e = all.iter().find(|e| e["id"] == id.as_str()).expect("served");
        // What is served re-verifies: same id over the canonical serialization.
        let ev =
            nostr_pg_core::Event::parse_verified(&e.to_string(), &nostr_pg_core::Verifier::new()).expect("verifies");
        assert_eq!(hex::encode(&ev.id), *id);
    }
}

#[tokio::test]
async fn req_streams_stored_then_eose_then_live_until_close() {
    let (_db, gw) = relay("live").await;
    let keys = Keys::from_seed("live");
    let mut publisher = Client::connect(&gw.url).await;
    let stored = keys.sign(now() - 10, 1, vec![], "stored");
    assert!(ok_frame(&publisher.publish(&stored.canonical_json()).await).0);

    let mut sub = Client::connect(&gw.url).await;
    let got = sub.req("s1", &[json!({"kinds": [1]})]).await.expect("req");
    assert_eq!(ids(&got), vec![hex::encode(&stored.id)]);

    let live = keys.sign(now(), 1, vec![], "live");
    assert!(ok_frame(&publisher.publish(&live.canonical_json()).await).0);
    let e = sub.next_event("s1").await;
    assert_eq!(e["id"], hex::encode(&live.id).as_str());
    // Non-matching events are not delivered; CLOSE ends delivery. Proof
    // without waiting for a silence: a second subscription on the same
    // connection sees a later event, and nothing for `s1` came before it.
    // (When a publish is answered OK, its event is already queued to every
    // matching subscription of the gateway, in publish order.)
    publisher
        .publish(&keys.sign(now(), 7, vec![], "+").canonical_json())
        .await;
    sub.send(&json!(["CLOSE", "s1"])).await;
    sub.req("after", &[json!({"kinds": [9]})]).await.expect("req");
    let after_close = keys.sign(now(), 1, vec![], "after close");
    assert!(ok_frame(&publisher.publish(&after_close.canonical_json()).await).0);
    let marker = keys.sign(now(), 9, vec![], "marker");
    assert!(ok_frame(&publisher.publish(&marker.canonical_json()).await).0);
    let f = sub.recv().await;
    assert_eq!(f[0], "EVENT", "{f}");
    assert_eq!(f[1], "after", "nothing reaches a closed subscription: {f}");
    assert_eq!(f[2]["id"], hex::encode(&marker.id).as_str());
}

#[tokio::test]
async fn a_req_with_an_existing_id_replaces_it() {
    let (_db, gw) = relay("replace_sub").await;
    let keys = Keys::from_seed("replace-sub");
    let mut sub = Client::connect(&gw.url).await;
    sub.req("x", &[json!({"kinds": [1]})]).await.expect("first");
    sub.req("x", &[json!({"kinds": [7]})]).await.expect("second");
    let mut publisher = Client::connect(&gw.url).await;
    publisher
        .publish(&keys.sign(now(), 1, vec![], "kind 1").canonical_json())
        .await;
    let reaction = keys.sign(now(), 7, vec![], "+");
    publisher.publish(&reaction.canonical_json()).await;
    let e = sub.next_event("x").await;
    assert_eq!(
        e["id"],
        hex::encode(&reaction.id).as_str(),
        "only the replacing filter applies"
    );
}

#[tokio::test]
async fn kind_classes_over_the_wire() {
    let (_db, gw) = relay("classes").await;
    let keys = Keys::from_seed("classes");
    let mut c = Client::connect(&gw.url).await;
    let t = now() - 100;

    // Replaceable: newest wins, an older one is refused (blocked:), the
    // stored one sent again is a duplicate, which NIP-01 answers `true`.
    let p1 = keys.sign(t, 0, vec![], "{\"name\":\"a\"}");
    let p2 = keys.sign(t + 1, 0, vec![], "{\"name\":\"b\"}");
    assert!(ok_frame(&c.publish(&p1.canonical_json()).await).0);
    assert!(ok_frame(&c.publish(&p2.canonical_json()).await).0);
    let (ok, msg) = ok_frame(&c.publish(&p1.canonical_json()).await);
    assert!(!ok && msg.starts_with("blocked: have a newer version"), "{msg}");
    let (ok, msg) = ok_frame(&c.publish(&p2.canonical_json()).await);
    assert!(ok && msg.starts_with("duplicate: "), "{msg}");
    assert_eq!(
        ids(&c.req("p", &[json!({"kinds": [0]})]).await.expect("req")),
        vec![hex::encode(&p2.id)]
    );

    // Addressable by d.
    let a = keys.sign(t, 30023, tags(&[&["d", "x"]]), "v1");
    let b = keys.sign(t + 1, 30023, tags(&[&["d", "x"]]), "v2");
    c.publish(&a.canonical_json()).await;
    c.publish(&b.canonical_json()).await;
    assert_eq!(
        ids(&c
            .req("a", &[json!({"kinds": [30023], "#d": ["x"]})])
            .await
            .expect("req")),
        vec![hex::encode(&b.id)]
    );

    // Deletion: gone, and cannot come back.
    let note = keys.sign(t, 1, vec![], "oops");
    c.publish(&note.canonical_json()).await;
    let del = keys.sign(t + 2, 5, tags(&[&["e", &hex::encode(&note.id)]]), "");
    assert!(ok_frame(&c.publish(&del.canonical_json()).await).0);
    assert!(c
        .req("n", &[json!({"ids": [hex::encode(&note.id)]})])
        .await
        .expect("req")
        .is_empty());
    let (ok, msg) = ok_frame(&c.publish(&note.canonical_json()).await);
    assert!(!ok && msg.starts_with("blocked:"), "{msg}");

    // Ephemeral: delivered live, never stored.
    let mut sub = Client::connect(&gw.url).await;
    sub.req("eph", &[json!({"kinds": [20001]})]).await.expect("req");
    let eph = keys.sign(now(), 20001, vec![], "now only");
    assert!(ok_frame(&c.publish(&eph.canonical_json()).await).0);
    assert_eq!(sub.next_event("eph").await["id"], hex::encode(&eph.id).as_str());
    assert!(c.req("e2", &[json!({"kinds": [20001]})]).await.expect("req").is_empty());
}

#[tokio::test]
async fn ordering_limit_and_count() {
    let (_db, gw) = relay("order").await;
    let keys = Keys::from_seed("order");
    let mut c = Client::connect(&gw.url).await;
    let t = now() - 1000;
    let mut events: Vec<_> = (0..6)
        .map(|i| keys.sign(t + (i / 2), 1, vec![], &format!("{i}")))
        .collect();
    for e in &events {
        c.publish(&e.canonical_json()).await;
    }
    events.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
    let want: Vec<String> = events.iter().map(|e| hex::encode(&e.id)).collect();
    assert_eq!(ids(&c.req("all", &[json!({})]).await.expect("req")), want);
    assert_eq!(
        ids(&c.req("l3", &[json!({"limit": 3})]).await.expect("req")),
        want[..3].to_vec()
    );
    c.send(&json!(["COUNT", "c", {"kinds": [1]}])).await;
    let f = c.recv().await;
    assert_eq!(f[0], "COUNT", "{f}");
    assert_eq!(f[2]["count"], 6);
}

#[tokio::test]
async fn malformed_frames_get_clear_answers_and_the_connection_stays_usable() {
    let (db, gw) = relay("malformed").await;
    let mut c = Client::connect(&gw.url).await;
    for bad in [
        "not json",
        "{}",
        "[]",
        "[\"NOPE\"]",
        "[\"REQ\"]",
        "[1,2,3]",
        "\"EVENT\"",
    ] {
        c.send_text(bad).await;
        let f = c.recv().await;
        assert!(f[0] == "NOTICE" || f[0] == "CLOSED", "{bad}: {f}");
    }
    // A bad event with a readable id gets OK false invalid:.
    let keys = Keys::from_seed("malformed");
    let e = keys.sign(now(), 1, vec![], "x");
    let forged = e.canonical_json().replace("\"content\":\"x\"", "\"content\":\"y\"");
    let (ok, msg) = ok_frame(&c.publish(&forged).await);
    assert!(!ok && msg.starts_with("invalid:"), "{msg}");
    // A bad filter gets CLOSED invalid:.
    let closed = c.req("bad", &[json!({"ids": ["XYZ"]})]).await.expect_err("closed");
    assert!(
        closed[2].as_str().unwrap_or_default().starts_with("invalid:"),
        "{closed}"
    );
    let closed = c.req("neg", &[json!({"limit": -1})]).await.expect_err("closed");
    assert!(
        closed[2].as_str().unwrap_or_default().starts_with("invalid:"),
        "{closed}"
    );
    // SQL-looking strings are just strings.
    let sqlish = keys.sign(
        now(),
        1,
        tags(&[&["t", "'); DROP TABLE nostr.events; --"]]),
        "' OR 1=1 --",
    );
    assert!(ok_frame(&c.publish(&sqlish.canonical_json()).await).0);
    let got = c
        .req("sql", &[json!({"#t": ["'); DROP TABLE nostr.events; --"]})])
        .await
        .expect("req");
    assert_eq!(ids(&got), vec![hex::encode(&sqlish.id)]);
    // Still usable, and nothing but the valid event was stored.
    let rows = db
        .client()
        .await
        .query_one("SELECT count(*) FROM nostr.events", &[])
        .await
        .expect("count");
    assert_eq!(rows.get::<_, i64>(0), 1);
}

#[tokio::test]
async fn three_gateways_share_one_database() {
    let db = TestDb::new("three").await;
    let gws = [
        Gateway::start(&db.url, &[]).await,
        Gateway::start(&db.url, &[]).await,
        Gateway::start(&db.url, &[]).await,
    ];
    let mut subs = Vec::new();
    for gw in &gws[1..] {
        let mut s = Client::connect(&gw.url).await;
        s.req("live", &[json!({"kinds": [1]})]).await.expect("req");
        subs.push(s);
    }
    let keys = Keys::from_seed("three");
    let mut p = Client::connect(&gws[0].url).await;
    let e = keys.sign(now(), 1, vec![], "everywhere");
    assert!(ok_frame(&p.publish(&e.canonical_json()).await).0);
    for s in &mut subs {
        assert_eq!(s.next_event("live").await["id"], hex::encode(&e.id).as_str());
    }
    let mut answers = Vec::new();
    for gw in &gws {
        let mut c = Client::connect(&gw.url).await;
        answers.push(ids(&c.req("q", &[json!({"kinds": [1]})]).await.expect("req")));
    }
    assert!(
        answers.iter().all(|a| a == &answers[0]) && answers[0].len() == 1,
        "{answers:?}"
    );
}

#[tokio::test]
async fn nip11_document_on_the_same_port() {
    let (_db, gw) = relay("nip11").await;
    let (head, body) = http_get(&gw, "/", "application/nostr+json").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("access-control-allow-origin: *"),
        "{head}"
    );
    let doc: Value = serde_json::from_str(&body).expect("json");
    let nips = doc["supported_nips"].as_array().expect("supported_nips");
    for n in [1, 9, 11, 40, 42, 45, 50, 70] {
        assert!(nips.contains(&json!(n)), "NIP-{n} missing: {doc}");
    }
    assert_eq!(doc["limitation"]["max_limit"], 500, "{doc}");
    assert_eq!(doc["limitation"]["max_subid_length"], 64, "{doc}");
}

#[tokio::test]
async fn health_and_metrics() {
    let (_db, gw) = relay("metrics").await;
    let (head, body) = http_get(&gw, "/health", "*/*").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head} {body}");
    let mut c = Client::connect(&gw.url).await;
    let e = Keys::from_seed("metrics").sign(now(), 1, vec![], "counted");
    c.publish(&e.canonical_json()).await;
    c.publish(&e.canonical_json()).await;
    c.req("m", &[json!({})]).await.expect("req");
    let (head, body) = http_get(&gw, "/metrics", "text/plain").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    for line in [
        "nostr_gateway_connections 1",
        "nostr_gateway_messages_total{verb=\"EVENT\"} 2",
        "nostr_gateway_messages_total{verb=\"REQ\"} 1",
        "nostr_gateway_events_total{result=\"accepted\",reason=\"\"} 1",
        "nostr_gateway_events_total{result=\"accepted\",reason=\"duplicate\"} 1",
        "nostr_gateway_subscriptions 1",
        "nostr_gateway_pool_max 8",
    ] {
        assert!(body.lines().any(|l| l == line), "/metrics lacks `{line}`:\n{body}");
    }
    for family in [
        "nostr_gateway_pool_connections ",
        "nostr_gateway_pool_idle ",
        "nostr_gateway_pool_waiting ",
        "nostr_gateway_live_caught_up_total ",
        "nostr_gateway_live_gaps_closed_total ",
        "nostr_gateway_query_seconds_bucket",
        "nostr_gateway_publish_seconds_bucket",
        "nostr_gateway_slow_clients_dropped_total",
    ] {
        assert!(body.contains(family), "/metrics lacks {family}");
    }
}

#[tokio::test]
async fn search_passes_through_to_full_text_search() {
    let (_db, gw) = relay("search").await;
    let keys = Keys::from_seed("search-wire");
    let mut c = Client::connect(&gw.url).await;
    let hit = keys.sign(now(), 1, vec![], "PostgreSQL full text search works");
    c.publish(&hit.canonical_json()).await;
    c.publish(&keys.sign(now(), 1, vec![], "unrelated words").canonical_json())
        .await;
    let got = c.req("s", &[json!({"search": "text search"})]).await.expect("req");
    assert_eq!(ids(&got), vec![hex::encode(&hit.id)]);
}

#[tokio::test]
async fn sigterm_closes_connections_and_exits_cleanly() {
    let db = TestDb::new("sigterm").await;
    let mut gw = Gateway::start(&db.url, &[]).await;
    let mut c = Client::connect(&gw.url).await;
    c.req("s", &[json!({"kinds": [1]})]).await.expect("req");
    let status = gw.terminate().await.expect("exited in time");
    assert!(status.success(), "{status:?}");
    assert!(c.closed_within(Duration::from_secs(5)).await, "client saw the close");
}
