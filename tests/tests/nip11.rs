//! NIP-11 names what this relay does as configured: the NIPs that are on
//! (NIP-13 only when the database asks for proof of work), the database's
//! limits, and `software` as a URL.
// Test helpers expect freely: a failed expectation is a failed test.
#![allow(clippy::expect_used)]

mod support;

use e2e::relay::{http_get, Client, Gateway};
use e2e::{now, TestDb};
use nostr_pg_core::sign::Keys;
use serde_json::{json, Value};
use support::ConfigFile;

async fn nip11(gw: &Gateway) -> Value {
    let (head, body) = http_get(gw, "/", "application/nostr+json").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/nostr+json"),
        "{head}"
    );
    serde_json::from_str(&body).expect("NIP-11 JSON")
}

#[tokio::test]
async fn supported_nips_are_exactly_those_on_by_default() {
    let db = TestDb::new("nip11_default").await;
    let config = ConfigFile::new("[info]\nname = \"Test relay\"\nsoftware = \"https://example.org/nostr_pg\"\n");
    let gw = Gateway::start(&db.url, &["--config", &config.arg()]).await;
    let doc = nip11(&gw).await;
    assert_eq!(
        doc["supported_nips"],
        json!([1, 9, 11, 22, 40, 42, 45, 50, 62, 70, 77]),
        "{doc}"
    );
    assert_eq!(doc["software"], "https://example.org/nostr_pg", "{doc}");
    assert_eq!(doc["name"], "Test relay", "{doc}");
    assert!(doc["limitation"].get("min_pow_difficulty").is_none(), "{doc}");
    // The time window is the database's setting, whatever this cluster has.
    let future: String = db
        .client()
        .await
        .query_one("SELECT current_setting('nostr.max_future_seconds')", &[])
        .await
        .expect("setting")
        .get(0);
    let future: i64 = future.parse().expect("a number");
    assert_eq!(doc["limitation"]["created_at_upper_limit"], future, "{doc}");
}

#[tokio::test]
async fn the_database_policy_shows_proof_of_work_and_its_caps() {
    let db = TestDb::new("nip11_pow").await;
    let admin = db.client().await;
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {0} SET nostr.min_pow = 24; ALTER DATABASE {0} SET nostr.max_limit = 100",
            db.name
        ))
        .await
        .expect("set min_pow and max_limit");
    let gw = Gateway::start(&db.url, &[]).await;
    let doc = nip11(&gw).await;
    assert_eq!(
        doc["supported_nips"],
        json!([1, 9, 11, 13, 22, 40, 42, 45, 50, 62, 70, 77]),
        "{doc}"
    );
    assert_eq!(doc["limitation"]["min_pow_difficulty"], 24, "{doc}");
    // The database's cap on `limit` is below the gateway's (500): it is the one that applies.
    assert_eq!(doc["limitation"]["max_limit"], 100, "{doc}");
    // What NIP-11 says is what the relay does: an event without work is refused.
    let mut c = Client::connect(&gw.url).await;
    let e = Keys::from_seed("nip11-pow").sign(now(), 1, vec![], "no work");
    let f = c.publish(&e.canonical_json()).await;
    assert_eq!(f[2], false, "{f}");
    assert!(f[3].as_str().is_some_and(|m| m.starts_with("pow: ")), "{f}");
}

#[tokio::test]
async fn auth_required_is_advertised() {
    let db = TestDb::new("nip11_auth").await;
    let config = ConfigFile::new("[auth]\nrequired = true\n");
    let gw = Gateway::start(&db.url, &["--config", &config.arg()]).await;
    let doc = nip11(&gw).await;
    assert_eq!(doc["limitation"]["auth_required"], true, "{doc}");
    assert!(doc["supported_nips"].as_array().is_some_and(|n| n.contains(&json!(42))));
}

/// NIP-22: the time window NIP-11 states is the one the publish rules
/// enforce, at both ends, 0 seconds ahead included.
#[tokio::test]
async fn nip22_window_is_the_one_enforced() {
    let db = TestDb::new("nip11_nip22").await;
    let set = |future: i64, past: i64| {
        format!(
            "ALTER DATABASE {0} SET nostr.max_future_seconds = {future}; \
             ALTER DATABASE {0} SET nostr.max_past_seconds = {past}",
            db.name
        )
    };
    let admin = db.client().await;
    admin.batch_execute(&set(60, 3600)).await.expect("a window");
    let gw = Gateway::start(&db.url, &[]).await;
    let doc = nip11(&gw).await;
    assert!(
        doc["supported_nips"].as_array().is_some_and(|n| n.contains(&json!(22))),
        "{doc}"
    );
    assert_eq!(doc["limitation"]["created_at_upper_limit"], 60, "{doc}");
    assert_eq!(doc["limitation"]["created_at_lower_limit"], 3600, "{doc}");
    let keys = Keys::from_seed("nip11-nip22");
    let mut c = Client::connect(&gw.url).await;
    for (at, ok) in [
        (now() + 600, false),
        (now() - 7200, false),
        (now() + 30, true),
        (now() - 1800, true),
    ] {
        let f = c
            .publish(&keys.sign(at, 1, vec![], &format!("at {at}")).canonical_json())
            .await;
        assert_eq!(f[2], ok, "{f}");
        if !ok {
            assert!(f[3].as_str().is_some_and(|m| m.starts_with("invalid: ")), "{f}");
        }
    }

    // 0 seconds ahead is a window too, and NIP-11 says 0 (a new gateway,
    // since the document is kept for a few seconds).
    admin.batch_execute(&set(0, 0)).await.expect("nothing ahead");
    let gw = Gateway::start(&db.url, &[]).await;
    let doc = nip11(&gw).await;
    assert!(
        doc["supported_nips"].as_array().is_some_and(|n| n.contains(&json!(22))),
        "{doc}"
    );
    assert_eq!(doc["limitation"]["created_at_upper_limit"], 0, "{doc}");
    assert!(
        doc["limitation"].get("created_at_lower_limit").is_none(),
        "0 is no lower limit: {doc}"
    );
    let mut c = Client::connect(&gw.url).await;
    let f = c
        .publish(&keys.sign(now() + 120, 1, vec![], "ahead").canonical_json())
        .await;
    assert_eq!(f[2], false, "{f}");
}
