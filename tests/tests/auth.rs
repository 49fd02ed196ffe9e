//! NIP-42 authentication through the gateway, NIP-70 protected events, and the
//! optional restriction of direct-message reads to their participants.
// Test helpers expect freely: a failed expectation is a failed test (the
// workspace's expect_used lint is for code clients and the database reach).
#![allow(clippy::expect_used)]

use e2e::relay::{Client, Gateway};
use e2e::{now, TestDb};
use nostr_pg_core::hex;
use nostr_pg_core::sign::{tags, Keys};
use serde_json::{json, Value};

async fn authenticate(c: &mut Client, url: &str, keys: &Keys) -> Value {
    let ch = c.challenge().await;
    let ev = keys.sign(now(), 22242, tags(&[&["relay", url], &["challenge", &ch]]), "");
    c.send_text(&format!(r#"["AUTH",{}]"#, ev.canonical_json())).await;
    loop {
        let f = c.recv().await;
        if f[0] == "OK" && f[1] == hex::encode(&ev.id).as_str() {
            return f;
        }
    }
}

fn message(f: &Value) -> &str {
    f[3].as_str().unwrap_or_default()
}

#[tokio::test]
async fn protected_events_need_their_author_authenticated() {
    let db = TestDb::new("auth").await;
    let gw = Gateway::start(&db.url, &[]).await;
    let alice = Keys::from_seed("auth-alice");
    let bob = Keys::from_seed("auth-bob");
    let protected = alice.sign(now(), 1, tags(&[&["-"]]), "alice only");

    let mut c = Client::connect(&gw.url).await;
    let f = c.publish(&protected.canonical_json()).await;
    assert_eq!(f[2], false, "{f}");
    assert!(message(&f).starts_with("auth-required:"), "{f}");

    // A wrong challenge is refused.
    let bad = bob.sign(now(), 22242, tags(&[&["relay", &gw.url], &["challenge", "nope"]]), "");
    c.send_text(&format!(r#"["AUTH",{}]"#, bad.canonical_json())).await;
    let f = c.recv().await;
    assert_eq!((f[0].as_str(), f[2].as_bool()), (Some("OK"), Some(false)), "{f}");

    // Authenticated as someone else: restricted.
    let f = authenticate(&mut c, &gw.url, &bob).await;
    assert_eq!(f[2], true, "{f}");
    let f = c.publish(&protected.canonical_json()).await;
    assert!(f[2] == false && message(&f).starts_with("restricted:"), "{f}");

    // The author, authenticated, may publish it.
    let mut a = Client::connect(&gw.url).await;
    assert_eq!(authenticate(&mut a, &gw.url, &alice).await[2], true);
    let f = a.publish(&protected.canonical_json()).await;
    assert_eq!(f[2], true, "{f}");
}

#[tokio::test]
async fn direct_messages_are_served_only_to_their_participants() {
    let db = TestDb::new("dm").await;
    let dir = std::env::temp_dir().join(format!("nostr_pg-dm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("gateway.toml");
    std::fs::write(&config, "[auth]\nrestrict_dm_reads = true\n").expect("write config");
    let gw = Gateway::start(&db.url, &["--config", config.to_str().expect("utf8 path")]).await;

    let alice = Keys::from_seed("dm-alice");
    let bob = Keys::from_seed("dm-bob");
    let eve = Keys::from_seed("dm-eve");
    let public = alice.sign(now() - 10, 1, vec![], "hello world");
    let dm = alice.sign(now(), 4, tags(&[&["p", &hex::encode(&bob.pubkey())]]), "ciphertext");
    let mut sender = Client::connect(&gw.url).await;
    assert_eq!(sender.publish(&public.canonical_json()).await[2], true);
    assert_eq!(sender.publish(&dm.canonical_json()).await[2], true);

    let filter = json!({"kinds": [4]});
    let mut anon = Client::connect(&gw.url).await;
    let closed = anon.req("dm", std::slice::from_ref(&filter)).await.expect_err("CLOSED");
    assert!(
        closed[2].as_str().unwrap_or_default().starts_with("auth-required:"),
        "{closed}"
    );
    // A filter that does not name DM kinds serves the rest, in full pages:
    // the database leaves the DM out before the limit, not after it.
    let page = anon.req("any", &[json!({"limit": 1})]).await.expect("req");
    assert_eq!(page.len(), 1, "{page:?}");
    assert_eq!(page[0]["id"], hex::encode(&public.id).as_str());

    let mut outsider = Client::connect(&gw.url).await;
    authenticate(&mut outsider, &gw.url, &eve).await;
    assert!(outsider
        .req("dm", std::slice::from_ref(&filter))
        .await
        .expect("req")
        .is_empty());
    assert_eq!(
        count(&mut outsider, json!({})).await,
        1,
        "eve counts the public note only"
    );
    assert_eq!(count(&mut outsider, filter.clone()).await, 0);

    let mut recipient = Client::connect(&gw.url).await;
    authenticate(&mut recipient, &gw.url, &bob).await;
    let got = recipient.req("dm", std::slice::from_ref(&filter)).await.expect("req");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["id"], hex::encode(&dm.id).as_str());
    assert_eq!(count(&mut recipient, json!({})).await, 2);
    assert_eq!(count(&mut recipient, filter).await, 1);

    // Live, too: a new DM reaches its recipient's open subscription only.
    let mut eve_live = Client::connect(&gw.url).await;
    authenticate(&mut eve_live, &gw.url, &eve).await;
    eve_live.req("all", &[json!({"limit": 0})]).await.expect("req");
    recipient.req("live", &[json!({"limit": 0})]).await.expect("req");
    let dm2 = alice.sign(now(), 4, tags(&[&["p", &hex::encode(&bob.pubkey())]]), "second");
    let note = alice.sign(now(), 1, vec![], "public again");
    assert_eq!(sender.publish(&dm2.canonical_json()).await[2], true);
    assert_eq!(sender.publish(&note.canonical_json()).await[2], true);
    assert_eq!(recipient.next_event("live").await["id"], hex::encode(&dm2.id).as_str());
    let first = eve_live.next_event("all").await;
    assert_eq!(first["id"], hex::encode(&note.id).as_str(), "eve never sees the DM");
    let _ = std::fs::remove_dir_all(&dir);
}

async fn count(c: &mut Client, filter: Value) -> i64 {
    c.count("n", &[filter])
        .await
        .unwrap_or_else(|f| panic!("COUNT refused: {f}"))
}
