//! The relay's identity through the management API (NIP-86): a new name,
//! description or icon shows in NIP-11 and on the home page of the gateway
//! that took it and, within a second, of every other gateway on the
//! database. The other methods are tested in `nip86.rs`.
// Test helpers expect freely: a failed expectation is a failed test.
#![allow(clippy::expect_used)]

mod nip86_setup;
mod support;

use std::time::{Duration, Instant};

use e2e::relay::{http_get, Gateway};
use serde_json::{json, Value};

use nip86_setup::{gateway, nip11, relay};

/// Polls NIP-11 on `gw` until `field` is `want` (another gateway reads the
/// database's names again within a second); fails after 30 s.
async fn wait_for_info(gw: &Gateway, field: &str, want: &Value) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let doc = nip11(gw).await;
        if &doc[field] == want {
            return;
        }
        assert!(Instant::now() < deadline, "{field} never became {want}: {doc}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn changerelayname_shows_in_nip11_and_on_the_home_page_of_every_gateway() {
    let r = relay("nip86_name", "[info]\nname = \"Configured name\"").await;
    let (other, _other_config) = gateway(&r.db, "[info]\nname = \"Configured name\"").await;
    assert_eq!(nip11(&other).await["name"], "Configured name");
    let a = r.admin.call(&r.gw, "changerelayname", json!(["Renamed <relay>"])).await;
    assert_eq!(a.ok(), &json!(true));
    // The gateway that took the change shows it at once.
    assert_eq!(nip11(&r.gw).await["name"], "Renamed <relay>");
    let page = http_get(&r.gw, "/", "text/html").await.1;
    assert!(page.contains("Renamed &lt;relay&gt;"), "escaped on the page");
    wait_for_info(&other, "name", &json!("Renamed <relay>")).await;
    // An empty name clears it: the configured one shows again.
    r.admin.call(&r.gw, "changerelayname", json!([""])).await.ok();
    assert_eq!(nip11(&r.gw).await["name"], "Configured name");
}

#[tokio::test]
async fn changerelaydescription_shows_in_nip11_and_on_the_home_page() {
    let r = relay("nip86_description", "").await;
    let a = r
        .admin
        .call(&r.gw, "changerelaydescription", json!(["Notes from our town"]))
        .await;
    assert_eq!(a.ok(), &json!(true));
    assert_eq!(nip11(&r.gw).await["description"], "Notes from our town");
    assert!(http_get(&r.gw, "/", "text/html")
        .await
        .1
        .contains("Notes from our town"));
    // The state is the extension's: SQL sees it.
    let row =
        r.db.client()
            .await
            .query_one("SELECT description FROM nostr.relay_info()", &[])
            .await
            .expect("relay_info");
    assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some("Notes from our town"));
}

#[tokio::test]
async fn changerelayicon_shows_in_nip11_and_on_the_home_page() {
    let r = relay("nip86_icon", "").await;
    assert!(nip11(&r.gw).await.get("icon").is_none());
    let icon = "https://img.example.org/relay.png";
    assert_eq!(
        r.admin.call(&r.gw, "changerelayicon", json!([icon])).await.ok(),
        &json!(true)
    );
    assert_eq!(nip11(&r.gw).await["icon"], icon);
    let (head, page) = http_get(&r.gw, "/", "text/html").await;
    assert!(page.contains(&format!("src=\"{icon}\"")), "{page}");
    assert!(head.contains("img-src 'self' data: https://img.example.org;"), "{head}");
    let a = r
        .admin
        .call(&r.gw, "changerelayicon", json!(["javascript:alert(1)"]))
        .await;
    assert_eq!(a.status, 400, "{a:?}");
    assert_eq!(nip11(&r.gw).await["icon"], icon, "unchanged");
}
