//! Helpers shared by the hostile-input, abuse, fault and agreement tests:
//! gateway config files, raw WebSocket access (close codes, raw frames),
//! signing over arbitrary preimages, database row counts and metrics.
//! Each test crate uses a different subset, hence the `dead_code` allowance.
#![allow(dead_code)]
// Test helpers expect freely: a failed expectation is a failed test (the
// workspace's expect_used lint is for code clients and the database reach).
#![allow(clippy::expect_used)]

pub mod cases;
pub mod population;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use nostr_pg_core::hex;
use secp256k1::{Keypair, Secp256k1};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Rate limits high enough that load tests measure the relay, not the limiter.
pub const UNLIMITED: &str = "[limits]\n\
    events_per_second_per_ip = 1000000.0\n\
    event_burst_per_ip = 1000000.0\n\
    events_per_second_per_pubkey = 1000000.0\n\
    event_burst_per_pubkey = 1000000.0\n\
    reqs_per_second_per_ip = 1000000.0\n\
    req_burst_per_ip = 1000000.0\n\
    frames_per_second_per_connection = 1000000.0\n\
    frame_burst_per_connection = 1000000.0\n";

/// A gateway TOML config file, removed on drop.
pub struct ConfigFile {
    pub path: PathBuf,
}

static FILES: AtomicUsize = AtomicUsize::new(0);

impl ConfigFile {
    pub fn new(toml: &str) -> ConfigFile {
        let n = FILES.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("nostr_pg-gw-{}-{n}.toml", std::process::id()));
        std::fs::write(&path, toml).unwrap_or_else(|e| panic!("write {path:?}: {e}"));
        ConfigFile { path }
    }

    pub fn arg(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Rows in every table the publish path writes: nothing a refused input
/// does may change any of them.
pub async fn row_counts(db: &tokio_postgres::Client) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for table in [
        "events",
        "event_tags",
        "transit",
        "deleted_ids",
        "deleted_addresses",
        "vanished",
    ] {
        let row = db
            .query_one(&format!("SELECT count(*) FROM nostr.{table}"), &[])
            .await
            .unwrap_or_else(|e| panic!("count {table}: {e}"));
        out.push((table.to_owned(), row.get(0)));
    }
    out
}

pub async fn event_count(db: &tokio_postgres::Client) -> i64 {
    db.query_one("SELECT count(*) FROM nostr.events", &[])
        .await
        .expect("count")
        .get(0)
}

/// Signs the SHA-256 of an arbitrary preimage with the key `Keys::from_seed(seed)`
/// uses, so tests can build events whose id was computed over a
/// non-canonical serialization. Returns (pubkey hex, id hex, sig hex).
pub fn sign_preimage(seed: &str, preimage: &str) -> (String, String, String) {
    let secp = Secp256k1::new();
    let mut secret: [u8; 32] = Sha256::digest(seed.as_bytes()).into();
    let keypair = loop {
        match Keypair::from_seckey_byte_array(&secp, secret) {
            Ok(k) => break k,
            Err(_) => secret = Sha256::digest(secret).into(),
        }
    };
    let id: [u8; 32] = Sha256::digest(preimage.as_bytes()).into();
    let sig = secp.sign_schnorr_no_aux_rand(&id, &keypair).to_byte_array();
    let pubkey = keypair.x_only_public_key().0.serialize();
    (hex::encode(&pubkey), hex::encode(&id), hex::encode(&sig))
}

pub async fn raw_connect(url: &str) -> Ws {
    tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket connect")
        .0
}

/// What a raw connection saw before it ended (or `wait` passed).
#[derive(Debug, Default)]
pub struct Ending {
    pub texts: Vec<String>,
    /// The close code the relay sent, if it sent a close frame.
    pub close_code: Option<u16>,
    /// The connection ended (close frame, EOF or error) within the wait.
    pub ended: bool,
}

pub async fn read_until_end(ws: &mut Ws, wait: Duration) -> Ending {
    let deadline = tokio::time::Instant::now() + wait;
    let mut ending = Ending::default();
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return ending,
            Ok(None) | Ok(Some(Err(_))) => {
                ending.ended = true;
                return ending;
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                ending.close_code = frame.map(|f| u16::from(f.code));
                ending.ended = true;
                return ending;
            }
            Ok(Some(Ok(Message::Text(t)))) => ending.texts.push(t.as_str().to_owned()),
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// A plain HTTP GET on the gateway port; returns the whole response.
pub async fn http_get(http_url: &str, path: &str) -> String {
    let addr = http_url.trim_start_matches("http://").to_owned();
    let mut s = TcpStream::connect(&addr).await.expect("tcp");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut body = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut body))
        .await
        .expect("http response in time")
        .expect("read");
    body
}

/// The value of one Prometheus sample line (`name{labels} value`), 0 if absent.
pub async fn metric(http_url: &str, sample: &str) -> f64 {
    let text = http_get(http_url, "/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix(sample).and_then(|rest| rest.trim().parse::<f64>().ok()))
        .unwrap_or(0.0)
}

/// The WebSocket upgrade request a browser would send, for raw-TCP tests.
pub fn upgrade_request(host: &str, extra_headers: &str) -> String {
    format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra_headers}\r\n"
    )
}

/// A masked client frame, built by hand so tests can set any header bit.
pub fn client_frame(fin: bool, rsv1: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(u8::from(fin) << 7 | u8::from(rsv1) << 6 | (opcode & 0x0f));
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xffff {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    let mask = [0x12, 0x34, 0x56, 0x78];
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Reads one unmasked server frame from raw TCP: (opcode, payload), or None
/// on EOF or timeout.
pub async fn server_frame(s: &mut TcpStream, wait: Duration) -> Option<(u8, Vec<u8>)> {
    let read = async {
        let mut head = [0u8; 2];
        s.read_exact(&mut head).await.ok()?;
        let opcode = head[0] & 0x0f;
        let len = match head[1] & 0x7f {
            126 => {
                let mut b = [0u8; 2];
                s.read_exact(&mut b).await.ok()?;
                u64::from(u16::from_be_bytes(b))
            }
            127 => {
                let mut b = [0u8; 8];
                s.read_exact(&mut b).await.ok()?;
                u64::from_be_bytes(b)
            }
            n => u64::from(n),
        };
        let mut payload = vec![0u8; usize::try_from(len).ok()?];
        s.read_exact(&mut payload).await.ok()?;
        Some((opcode, payload))
    };
    tokio::time::timeout(wait, read).await.ok().flatten()
}

/// Reads server frames until a close frame; returns its code.
pub async fn close_code_raw(s: &mut TcpStream, wait: Duration) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let (op, payload) = server_frame(s, left).await?;
        if op == 0x8 {
            return payload.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]]));
        }
    }
}

/// Reads the HTTP response head of an upgrade request from raw TCP.
pub async fn response_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}
