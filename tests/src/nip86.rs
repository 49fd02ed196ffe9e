//! A NIP-86 client for the tests: JSON-RPC POSTs to a gateway, authorized
//! with NIP-98 events signed by the project's own test keys, and the means
//! to spoil any part of the authorization.

use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use nostr_pg_core::hex;
use nostr_pg_core::sign::{tags, Keys};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::now;
use crate::relay::{Gateway, WAIT};

pub const CONTENT_TYPE: &str = "application/nostr+json+rpc";
pub const HTTP_AUTH_KIND: u16 = 27235;

/// What an authorization event says; each field can be spoiled on purpose.
#[derive(Debug, Clone)]
pub struct Auth {
    pub url: String,
    pub method: String,
    /// Hex SHA-256 of the body; `None`: the tag is left out.
    pub payload: Option<String>,
    pub created_at: i64,
    pub kind: u16,
    /// An extra tag that makes two authorizations of the same call in the
    /// same second two events (each event id is accepted once).
    pub nonce: String,
}

static NONCE: AtomicUsize = AtomicUsize::new(0);

impl Auth {
    /// A correct authorization of `body` sent to `url` now.
    pub fn of(url: &str, body: &str) -> Auth {
        Auth {
            url: url.to_owned(),
            method: "POST".into(),
            payload: Some(sha256_hex(body.as_bytes())),
            created_at: now(),
            kind: HTTP_AUTH_KIND,
            nonce: NONCE.fetch_add(1, Ordering::Relaxed).to_string(),
        }
    }

    /// The signed event as JSON.
    pub fn event(&self, keys: &Keys) -> String {
        let mut t: Vec<Vec<String>> = tags(&[&["u", &self.url], &["method", &self.method]]);
        if let Some(p) = &self.payload {
            t.push(vec!["payload".into(), p.clone()]);
        }
        t.push(vec!["nonce".into(), self.nonce.clone()]);
        keys.sign(self.created_at, self.kind, t, "").canonical_json()
    }

    /// The `Authorization` header value.
    pub fn header(&self, keys: &Keys) -> String {
        header_for(&self.event(keys))
    }
}

/// `Nostr <base64 of event_json>`.
pub fn header_for(event_json: &str) -> String {
    format!("Nostr {}", base64::engine::general_purpose::STANDARD.encode(event_json))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes))
}

/// The JSON-RPC body of a call.
pub fn body(method: &str, params: Value) -> String {
    json!({"method": method, "params": params}).to_string()
}

/// An HTTP answer: status, head (lowercase), JSON body (Null if none).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub json: Value,
}

impl Answer {
    /// `result`, asserting the call succeeded.
    pub fn ok(&self) -> &Value {
        assert_eq!(self.status, 200, "{self:?}");
        assert!(self.json["error"].is_null(), "{self:?}");
        &self.json["result"]
    }

    pub fn error(&self) -> &str {
        self.json["error"].as_str().unwrap_or_default()
    }
}

/// POSTs `body` to the gateway's `/` with `headers` (the Content-Type is
/// NIP-86's unless `headers` names another).
pub async fn post(gw: &Gateway, headers: &[(&str, &str)], body: &str) -> Answer {
    request(gw, "POST", headers, body).await
}

/// One HTTP/1.1 request on a fresh connection; the gateway closes after it.
pub async fn request(gw: &Gateway, method: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let addr = gw.http_url().trim_start_matches("http://").to_owned();
    let mut s = TcpStream::connect(&addr).await.expect("tcp connect");
    let mut req = format!("{method} / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("content-type")) {
        req.push_str(&format!("Content-Type: {CONTENT_TYPE}\r\n"));
    }
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).await.expect("write request");
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .expect("answer in time")
        .expect("read answer");
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, text) = raw.split_once("\r\n\r\n").unwrap_or((raw.as_str(), ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    Answer {
        status,
        head: head.to_ascii_lowercase(),
        json: serde_json::from_str(text).unwrap_or(Value::Null),
    }
}

/// An admin of one gateway.
pub struct Admin {
    pub keys: Keys,
    /// The URL the admin signs (`u`): the gateway's own `http://` URL.
    pub url: String,
}

impl Admin {
    pub fn new(seed: &str, gw: &Gateway) -> Admin {
        Admin {
            keys: Keys::from_seed(seed),
            url: format!("{}/", gw.http_url()),
        }
    }

    pub fn pubkey(&self) -> String {
        hex::encode(&self.keys.pubkey())
    }

    /// Calls `method` with `params`, correctly authorized.
    pub async fn call(&self, gw: &Gateway, method: &str, params: Value) -> Answer {
        let body = body(method, params);
        let auth = Auth::of(&self.url, &body).header(&self.keys);
        post(gw, &[("Authorization", &auth)], &body).await
    }
}
