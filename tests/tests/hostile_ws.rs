//! Hostile input through the WebSocket: every class of bad frame, event,
//! subscription id and filter gets its NIP-01 answer (`OK false invalid:`,
//! `CLOSED invalid:` or `NOTICE`), the connection stays usable, and no table
//! the publish path writes changes. Then what the WebSocket layer itself must
//! refuse: invalid UTF-8, oversized messages, compression.

mod support;

use std::time::Duration;

use e2e::relay::{Client, Gateway};
use e2e::{now, TestDb};
use futures_util::SinkExt;
use nostr_pg_core::hex;
use nostr_pg_core::sign::{tags, Keys};
use nostr_pg_core::Event;
use serde_json::{json, Value};
use support::cases::*;
use support::*;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

/// Sends each case on one connection and checks its answer; after each, a
/// probe REQ (answered without the database) proves the connection is still
/// usable and that the case produced no further frames.
async fn run_cases(c: &mut Client, cases: &[Case]) {
    for (n, case) in cases.iter().enumerate() {
        c.send_text(&case.frame).await;
        let probe = format!("probe-{n}");
        if !matches!(case.want, Want::Silent) {
            let mut f = c.recv().await;
            // A valid REQ may return stored events before its EOSE.
            while matches!(&case.want, Want::Eose(sub) if f[0] == "EVENT" && f[1] == sub.as_str()) {
                f = c.recv().await;
            }
            check(case, &f);
        }
        c.send(&json!(["REQ", probe, {"ids": []}])).await;
        let f = c.recv().await;
        assert_eq!(
            f,
            json!(["EOSE", probe]),
            "{}: unexpected extra frame or unusable connection",
            case.name
        );
        c.send(&json!(["CLOSE", probe])).await;
    }
}

fn check(case: &Case, f: &Value) {
    let name = &case.name;
    let text = |i: usize| f[i].as_str().unwrap_or_default().to_owned();
    match &case.want {
        Want::Notice => {
            assert_eq!(f[0], "NOTICE", "{name}: {f}");
            assert!(text(1).starts_with("invalid: "), "{name}: {f}");
        }
        Want::Invalid { id, containing } => {
            assert_eq!(f[0], "OK", "{name}: {f}");
            assert_eq!(f[1], id.as_str(), "{name}: {f}");
            assert_eq!(f[2], false, "{name}: {f}");
            assert!(
                text(3).starts_with("invalid: ") && text(3).contains(containing),
                "{name}: {f}"
            );
        }
        Want::Closed(sub) => {
            assert_eq!(f[0], "CLOSED", "{name}: {f}");
            assert_eq!(f[1], sub.as_str(), "{name}: {f}");
            assert!(text(2).starts_with("invalid: "), "{name}: {f}");
        }
        Want::Eose(sub) => assert_eq!(f, &json!(["EOSE", sub]), "{name}"),
        Want::Silent => {}
    }
}

async fn relay(label: &str) -> (TestDb, Gateway) {
    let db = TestDb::new(label).await;
    let gw = Gateway::start(&db.url, &[]).await;
    (db, gw)
}

#[tokio::test]
async fn every_bad_event_is_refused_and_nothing_is_stored() {
    let (db, gw) = relay("hostile_events").await;
    let admin = db.client().await;
    let before = row_counts(&admin).await;
    let keys = Keys::from_seed(SEED);
    let mut c = Client::connect(&gw.url).await;
    let cases = event_cases(&keys);
    run_cases(&mut c, &cases).await;
    assert_eq!(row_counts(&admin).await, before, "a refused event changed the database");
    // The same connection still publishes.
    let ok = c
        .publish(&keys.sign(now(), 1, vec![], "still fine").canonical_json())
        .await;
    assert_eq!(ok[2], true, "{ok}");
    println!("{} hostile events refused", cases.len());
}

#[tokio::test]
async fn every_bad_frame_gets_a_notice_and_the_connection_stays_usable() {
    let (db, gw) = relay("hostile_frames").await;
    let admin = db.client().await;
    let before = row_counts(&admin).await;
    let mut c = Client::connect(&gw.url).await;
    let cases = frame_cases(&Keys::from_seed(SEED));
    run_cases(&mut c, &cases).await;
    assert_eq!(row_counts(&admin).await, before);
    println!("{} hostile frames answered", cases.len());
}

#[tokio::test]
async fn every_bad_req_is_closed_and_odd_but_valid_ones_are_served() {
    let (db, gw) = relay("hostile_reqs").await;
    let admin = db.client().await;
    let keys = Keys::from_seed(SEED);
    let mut c = Client::connect(&gw.url).await;
    // One stored event, so valid REQs run real queries.
    let stored = keys.sign(now() - 5, 1, tags(&[&["t", SQLISH]]), "stored");
    assert_eq!(c.publish(&stored.canonical_json()).await[2], true);
    let before = row_counts(&admin).await;
    let mut cases = req_cases();
    // The kind-1 REQs with odd sub ids do return the stored event before EOSE:
    // run them separately below.
    let odd_subs: Vec<Case> = cases
        .iter()
        .filter(|c| c.name.starts_with("REQ: sub id"))
        .map(|c| case(c.name.clone(), c.frame.clone(), c.want.clone()))
        .collect();
    cases.retain(|c| !c.name.starts_with("REQ: sub id"));
    run_cases(&mut c, &cases).await;
    for case in &odd_subs {
        let Want::Eose(sub) = &case.want else { continue };
        c.send_text(&case.frame).await;
        let f = c.recv().await;
        assert_eq!(f[0], "EVENT", "{}: {f}", case.name);
        assert_eq!(f[1], sub.as_str(), "{}: sub id echoed exactly", case.name);
        assert_eq!(f[2]["id"], hex::encode(&stored.id).as_str());
        assert_eq!(c.recv().await, json!(["EOSE", sub]), "{}", case.name);
        c.send(&json!(["CLOSE", sub])).await;
    }
    assert_eq!(row_counts(&admin).await, before);
    // The SQL-looking tag value is found as a plain string.
    let got = c.req("sql", &[json!({"#t": [SQLISH]})]).await.expect("req");
    assert_eq!(got.len(), 1);
    println!("{} hostile REQs answered", cases.len() + odd_subs.len());
}

#[tokio::test]
async fn odd_but_valid_events_are_stored_and_served_byte_for_byte() {
    let (db, gw) = relay("odd_valid").await;
    let keys = Keys::from_seed(SEED);
    let mut c = Client::connect(&gw.url).await;
    let t = now() - 30;
    let long_value = "L".repeat(100_000);
    let events = [
        keys.sign(t, 1, vec![], "NUL \u{0} inside"),
        keys.sign(t, 1, tags(&[&["t", "a\u{0}b"]]), "NUL in a tag value"),
        keys.sign(t, 1, tags(&[&["t", &long_value]]), "a tag value over every index limit"),
        keys.sign(t, 1, tags(&[&["e", SQLISH], &["p", "' OR 1=1 --"]]), SQLISH),
        keys.sign(t, 1, tags(&[&[], &[""], &["multi", "letter"]]), "odd tag shapes"),
        keys.sign(t, 1, vec![], "😀 \u{2028} \u{7f} \u{fffd}"),
        keys.sign(0, 1, vec![], "created at 0"),
        keys.sign(t, 65535, vec![], "largest kind"),
    ];
    for e in &events {
        let f = c.publish(&e.canonical_json()).await;
        assert_eq!(f[2], true, "{f}");
    }
    // Unknown top-level fields are ignored (and not served back); surrogate
    // pairs written as escapes decode to the character they name.
    let extra = keys.sign(t, 1, vec![], "extra field");
    let mut v: Value = serde_json::from_str(&extra.canonical_json()).expect("json");
    v["unknown"] = json!({"nested": [1, 2, 3]});
    assert_eq!(c.publish(&v.to_string()).await[2], true);
    let pair = keys.sign(t, 1, vec![], "😀");
    let escaped = pair
        .canonical_json()
        .replacen("\"content\":\"😀\"", "\"content\":\"\\ud83d\\ude00\"", 1);
    assert_eq!(c.publish(&escaped).await[2], true);

    let mut all: Vec<Event> = events.to_vec();
    all.extend([extra, pair]);
    for e in &all {
        let got = c
            .req("one", &[json!({"ids": [hex::encode(&e.id)]})])
            .await
            .expect("req");
        assert_eq!(got.len(), 1, "{}", hex::encode(&e.id));
        let served = Event::from_value(&got[0]).expect("served event parses");
        assert_eq!(&served, e, "served back as published");
    }
    let by_long = c.req("long", &[json!({"#t": [long_value]})]).await.expect("req");
    assert_eq!(by_long.len(), 1);
    let by_nul = c.req("nul", &[json!({"#t": ["a\u{0}b"]})]).await.expect("req");
    assert_eq!(by_nul.len(), 1);
    assert_eq!(event_count(&db.client().await).await, all.len() as i64);
}

/// RFC 6455 §8.1: a text frame that is not UTF-8 fails the connection with
/// 1007. The relay must not crash, and other connections are unaffected.
#[tokio::test]
async fn invalid_utf8_in_a_text_frame_closes_with_1007() {
    let (db, gw) = relay("bad_utf8").await;
    for payload in [
        &b"[\"REQ\",\"s\",{\"#t\":[\"\xff\xfe\"]}]"[..],
        b"\xc3\x28",
        b"[\"EVENT\",\"\xed\xa0\x80\"]",
    ] {
        let mut ws = raw_connect(&gw.url).await;
        let frame = Frame::message(payload.to_vec(), OpCode::Data(Data::Text), true);
        ws.send(Message::Frame(frame)).await.expect("send raw frame");
        let ending = read_until_end(&mut ws, Duration::from_secs(30)).await;
        assert!(ending.ended, "connection left open after invalid UTF-8: {ending:?}");
        assert_eq!(ending.close_code, Some(1007), "{ending:?}");
    }
    let mut c = Client::connect(&gw.url).await;
    assert!(c.req("after", &[json!({})]).await.expect("req").is_empty());
    assert_eq!(row_counts(&db.client().await).await.iter().map(|r| r.1).sum::<i64>(), 0);
}

#[tokio::test]
async fn oversized_messages_close_with_1009() {
    let (_db, gw) = relay("oversized").await;
    let limit = 256 * 1024;
    // One frame over the limit.
    let mut ws = raw_connect(&gw.url).await;
    ws.send(Message::text(format!(
        r##"["REQ","s",{{"#t":["{}"]}}]"##,
        "x".repeat(limit)
    )))
    .await
    .expect("send");
    let ending = read_until_end(&mut ws, Duration::from_secs(30)).await;
    assert_eq!(ending.close_code, Some(1009), "{ending:?}");
    assert!(
        ending
            .texts
            .iter()
            .any(|t| t.contains("NOTICE") && t.contains("larger than")),
        "{ending:?}"
    );

    // Many small fragments adding up to more than the limit.
    let mut ws = raw_connect(&gw.url).await;
    let chunk = vec![b'x'; 60 * 1024];
    ws.send(Message::Frame(Frame::message(
        chunk.clone(),
        OpCode::Data(Data::Text),
        false,
    )))
    .await
    .expect("send");
    for _ in 0..4 {
        if ws
            .send(Message::Frame(Frame::message(
                chunk.clone(),
                OpCode::Data(Data::Continue),
                false,
            )))
            .await
            .is_err()
        {
            break;
        }
    }
    let ending = read_until_end(&mut ws, Duration::from_secs(30)).await;
    assert_eq!(ending.close_code, Some(1009), "fragments: {ending:?}");

    // A frame header announcing 2^40 bytes: refused from the header alone,
    // before any payload is buffered.
    let addr = gw.http_url().trim_start_matches("http://").to_owned();
    let mut s = tokio::net::TcpStream::connect(&addr).await.expect("tcp");
    s.write_all(upgrade_request(&addr, "").as_bytes()).await.expect("write");
    assert!(response_head(&mut s).await.starts_with("HTTP/1.1 101"));
    let mut header = vec![0x81, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 40).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    s.write_all(&header).await.expect("write header");
    assert_eq!(close_code_raw(&mut s, Duration::from_secs(30)).await, Some(1009));

    // The relay is fine.
    let mut c = Client::connect(&gw.url).await;
    assert!(c.req("after", &[json!({})]).await.expect("req").is_empty());
}

/// tungstenite (0.30) implements no permessage-deflate: the offer is ignored,
/// the handshake answer names no extension, and a compressed frame (RSV1
/// set) is a protocol error. So compression cannot be used as a memory bomb.
#[tokio::test]
async fn permessage_deflate_is_never_negotiated() {
    let (_db, gw) = relay("deflate").await;
    let addr = gw.http_url().trim_start_matches("http://").to_owned();
    let mut s = tokio::net::TcpStream::connect(&addr).await.expect("tcp");
    let offer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";
    s.write_all(upgrade_request(&addr, offer).as_bytes())
        .await
        .expect("write");
    let head = response_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("sec-websocket-extensions"),
        "{head}"
    );
    // The AUTH challenge arrives first.
    let (op, _) = server_frame(&mut s, Duration::from_secs(30)).await.expect("AUTH frame");
    assert_eq!(op, 0x1);
    // A "compressed" frame: deflate of a long run of zeros, RSV1 set.
    let bomb = [
        0xed, 0xc1, 0x01, 0x0d, 0x00, 0x00, 0x00, 0x80, 0x90, 0xfe, 0xaf, 0xee, 0x01,
    ];
    s.write_all(&client_frame(true, true, 0x1, &bomb)).await.expect("write");
    assert_eq!(close_code_raw(&mut s, Duration::from_secs(30)).await, Some(1002));
}

#[tokio::test]
async fn binary_and_control_frames() {
    let (_db, gw) = relay("binary").await;
    let mut ws = raw_connect(&gw.url).await;
    ws.send(Message::binary(b"[\"REQ\",\"s\",{}]".to_vec()))
        .await
        .expect("send");
    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .expect("ping");
    ws.send(Message::text(r#"["REQ","s",{"ids":[]}]"#)).await.expect("send");
    let mut saw = (false, false, false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !(saw.0 && saw.1 && saw.2) && tokio::time::Instant::now() < deadline {
        use futures_util::StreamExt;
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.contains("NOTICE") && t.contains("binary") => saw.0 = true,
            Ok(Some(Ok(Message::Pong(p)))) if p.as_ref() == &b"are you there"[..] => saw.1 = true,
            Ok(Some(Ok(Message::Text(t)))) if t.as_str() == r#"["EOSE","s"]"# => saw.2 = true,
            Ok(Some(Ok(_))) => {}
            other => panic!("connection ended: {other:?}"),
        }
    }
    assert_eq!(saw, (true, true, true));
}
