//! Behind a reverse proxy or a TCP load balancer: per-IP limits see the
//! client that a trusted proxy names (`X-Forwarded-For`, `Forwarded`, the
//! PROXY protocol v1 and v2), and ignore what an untrusted peer claims.
// Test helpers expect freely: a failed expectation is a failed test.
#![allow(clippy::expect_used)]

mod support;

use e2e::relay::{Client, Gateway, WAIT};
use e2e::{now, TestDb};
use nostr_pg_core::sign::Keys;
use serde_json::Value;
use support::ConfigFile;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Two events per address, then `rate-limited:` (the refill is negligible).
const TWO_PER_ADDRESS: &str = "[limits]\nevents_per_second_per_ip = 0.0001\nevent_burst_per_ip = 2.0\n\
     events_per_second_per_pubkey = 1000.0\nevent_burst_per_pubkey = 1000.0\n";

async fn gateway(db: &TestDb, toml: &str) -> (Gateway, ConfigFile) {
    let file = ConfigFile::new(toml);
    let gw = Gateway::start(&db.url, &["--config", &file.arg()]).await;
    (gw, file)
}

/// Publishes a fresh event; whether it was accepted, and the message.
async fn publish(c: &mut Client, keys: &Keys, content: &str) -> (bool, String) {
    let f: Value = c.publish(&keys.sign(now(), 1, vec![], content).canonical_json()).await;
    (
        f[2].as_bool().unwrap_or(false),
        f[3].as_str().unwrap_or_default().to_owned(),
    )
}

fn limited(verdict: &(bool, String)) -> bool {
    !verdict.0 && verdict.1.starts_with("rate-limited: ")
}

#[tokio::test]
async fn clients_behind_a_trusted_proxy_are_limited_separately() {
    let db = TestDb::new("fwd_trusted").await;
    let (gw, _f) = gateway(&db, &format!("{TWO_PER_ADDRESS}[proxy]\ntrusted = [\"127.0.0.1\"]\n")).await;
    let keys = Keys::from_seed("forwarded");
    let mut a = Client::connect_with_headers(&gw.url, &[("X-Forwarded-For", "203.0.113.1")]).await;
    let mut b = Client::connect_with_headers(&gw.url, &[("X-Forwarded-For", "198.51.100.9, 203.0.113.2")]).await;
    // RFC 7239 names the same client as `a`: it shares a's budget.
    let mut a_again = Client::connect_with_headers(&gw.url, &[("Forwarded", "for=203.0.113.1;proto=https")]).await;
    assert!(publish(&mut a, &keys, "a1").await.0);
    assert!(publish(&mut a, &keys, "a2").await.0);
    let third = publish(&mut a, &keys, "a3").await;
    assert!(limited(&third), "{third:?}");
    // Another address behind the same proxy has its own budget.
    assert!(publish(&mut b, &keys, "b1").await.0);
    assert!(publish(&mut b, &keys, "b2").await.0);
    let over = publish(&mut b, &keys, "b3").await;
    assert!(limited(&over), "{over:?}");
    let shared = publish(&mut a_again, &keys, "a4").await;
    assert!(limited(&shared), "Forwarded: for= names 203.0.113.1 too: {shared:?}");
}

#[tokio::test]
async fn spoofed_headers_from_an_untrusted_peer_are_ignored() {
    let db = TestDb::new("fwd_spoofed").await;
    // 127.0.0.1 is not a trusted proxy here: its headers are the client's own claims.
    let (gw, _f) = gateway(&db, &format!("{TWO_PER_ADDRESS}[proxy]\ntrusted = [\"10.0.0.0/8\"]\n")).await;
    let keys = Keys::from_seed("spoofed");
    let mut a = Client::connect_with_headers(&gw.url, &[("X-Forwarded-For", "203.0.113.1")]).await;
    let mut b = Client::connect_with_headers(&gw.url, &[("Forwarded", "for=203.0.113.2")]).await;
    assert!(publish(&mut a, &keys, "a1").await.0);
    assert!(publish(&mut a, &keys, "a2").await.0);
    let spoofed = publish(&mut b, &keys, "b1").await;
    assert!(limited(&spoofed), "both are 127.0.0.1 whatever they claim: {spoofed:?}");
}

fn v1(src: &str) -> Vec<u8> {
    format!("PROXY TCP4 {src} 127.0.0.1 40000 7777\r\n").into_bytes()
}

fn v2(src: [u8; 4]) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]); // v2 PROXY, TCP over IPv4, 12 bytes
    h.extend_from_slice(&src);
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&40001u16.to_be_bytes());
    h.extend_from_slice(&7777u16.to_be_bytes());
    h
}

/// A WebSocket connection that starts with `header`.
async fn connect_proxied(gw: &Gateway, header: &[u8]) -> Result<Client, String> {
    let addr = gw.url.trim_start_matches("ws://").to_owned();
    let mut stream = TcpStream::connect(&addr).await.expect("tcp connect");
    stream.write_all(header).await.expect("write PROXY header");
    Client::connect_over(&gw.url, stream).await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn proxy_protocol_v1_and_v2_name_the_client() {
    let db = TestDb::new("fwd_proxy_protocol").await;
    let (gw, _f) = gateway(
        &db,
        "[limits]\nmax_connections_per_ip = 1\n[proxy]\ntrusted = [\"127.0.0.1\"]\nprotocol = true\n",
    )
    .await;
    // One connection per client address: the cap counts what the headers name.
    let mut first = connect_proxied(&gw, &v1("198.51.100.7")).await.expect("v1 client");
    let mut second = connect_proxied(&gw, &v2([198, 51, 100, 8])).await.expect("v2 client");
    let again = connect_proxied(&gw, &v2([198, 51, 100, 7])).await;
    assert!(
        again.as_ref().err().is_some_and(|e| e.contains("503")),
        "198.51.100.7 already has its one connection: {:?}",
        again.err()
    );
    // Both sessions work as usual.
    let keys = Keys::from_seed("proxy-protocol");
    assert!(publish(&mut first, &keys, "over v1").await.0);
    assert!(publish(&mut second, &keys, "over v2").await.0);

    // From a balancer that is not trusted, the header is read and ignored:
    // every connection is 127.0.0.1's.
    let (gw, _f) = gateway(
        &db,
        "[limits]\nmax_connections_per_ip = 1\n[proxy]\ntrusted = [\"10.0.0.0/8\"]\nprotocol = true\n",
    )
    .await;
    let _held = connect_proxied(&gw, &v1("198.51.100.7")).await.expect("first");
    let refused = connect_proxied(&gw, &v1("198.51.100.8")).await;
    assert!(
        refused.as_ref().err().is_some_and(|e| e.contains("503")),
        "{:?}",
        refused.err()
    );
}

/// Sends `bytes` and reads until the gateway closes; returns what it sent back.
async fn closed_after(gw: &Gateway, bytes: &[u8]) -> Vec<u8> {
    let addr = gw.url.trim_start_matches("ws://").to_owned();
    let mut stream = TcpStream::connect(&addr).await.expect("tcp connect");
    stream.write_all(bytes).await.expect("write");
    let mut got = Vec::new();
    let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut got))
        .await
        .unwrap_or_else(|_| panic!("not closed after {:?}", String::from_utf8_lossy(bytes)));
    // A reset is a close too (unread bytes left in the gateway's buffer).
    if let Err(e) = read {
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    }
    got
}

#[tokio::test]
async fn malformed_proxy_headers_close_the_connection() {
    let db = TestDb::new("fwd_malformed").await;
    let (gw, _f) = gateway(&db, "[proxy]\ntrusted = [\"127.0.0.1\"]\nprotocol = true\n").await;
    let mut bad_version = v2([198, 51, 100, 7]);
    bad_version[12] = 0x31;
    let mut truncated = v2([198, 51, 100, 7]);
    truncated[15] = 3; // three bytes cannot hold two IPv4 addresses
    for bytes in [
        b"PROXY GARBAGE\r\n".to_vec(),
        b"PROXY TCP4 999.1.1.1 127.0.0.1 1 2\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        bad_version,
        truncated,
    ] {
        let answer = closed_after(&gw, &bytes).await;
        assert!(
            answer.is_empty(),
            "closed without an answer: {}",
            String::from_utf8_lossy(&answer)
        );
    }
    // The gateway goes on serving, and plain HTTP works after a header too.
    let mut request = v1("198.51.100.7");
    request.extend_from_slice(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    let answer = String::from_utf8(closed_after(&gw, &request).await).expect("utf-8");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let mut c = connect_proxied(&gw, &v1("198.51.100.7")).await.expect("connect");
    assert!(c.req("after", &[serde_json::json!({"limit": 1})]).await.is_ok());
}
