//! What the NIP-86 test crates (`nip86.rs`, `nip86_auth.rs`,
//! `nip86_info.rs`) share: a database with a gateway whose admin is
//! [`ADMIN_SEED`]'s key, its NIP-11 document, and the moderation state's row
//! counts. Each crate uses a subset.
#![allow(dead_code)]

use e2e::nip86::Admin;
use e2e::relay::{http_get, Gateway};
use e2e::TestDb;
use nostr_pg_core::hex;
use nostr_pg_core::sign::Keys;
use serde_json::Value;

use crate::support::ConfigFile;

pub const ADMIN_SEED: &str = "nip86-admin";

/// A database, a gateway whose admin is [`ADMIN_SEED`]'s key (plus the
/// `extra` TOML), and that admin.
pub struct Relay {
    pub db: TestDb,
    pub gw: Gateway,
    pub admin: Admin,
    _config: ConfigFile,
}

pub async fn relay(label: &str, extra: &str) -> Relay {
    let db = TestDb::new(label).await;
    let (gw, config) = gateway(&db, extra).await;
    let admin = Admin::new(ADMIN_SEED, &gw);
    Relay {
        db,
        gw,
        admin,
        _config: config,
    }
}

pub async fn gateway(db: &TestDb, extra: &str) -> (Gateway, ConfigFile) {
    gateway_at(&db.url, extra).await
}

/// A gateway on the database `url` whose admin is [`ADMIN_SEED`]'s key.
pub async fn gateway_at(url: &str, extra: &str) -> (Gateway, ConfigFile) {
    let admin = hex::encode(&Keys::from_seed(ADMIN_SEED).pubkey());
    let config = ConfigFile::new(&format!("{extra}\n[nip86]\nadmin_pubkeys = [\"{admin}\"]\n"));
    let gw = Gateway::start(url, &["--config", &config.arg()]).await;
    (gw, config)
}

pub fn pubkey_of(seed: &str) -> String {
    hex::encode(&Keys::from_seed(seed).pubkey())
}

/// How many rows a SQL listing function returns now.
pub async fn rows(db: &TestDb, function: &str) -> i64 {
    db.client()
        .await
        .query_one(&format!("SELECT count(*) FROM nostr.{function}()"), &[])
        .await
        .expect(function)
        .get(0)
}

/// The gateway's NIP-11 document.
pub async fn nip11(gw: &Gateway) -> Value {
    let (head, body) = http_get(gw, "/", "application/nostr+json").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    serde_json::from_str(&body).expect("NIP-11 JSON")
}
