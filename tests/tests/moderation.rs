//! Moderation through the gateway, as the relay's ordinary role
//! (`nostr.grant_relay`) calls it for NIP-86: a banned author is answered
//! `OK false "blocked: ..."` on every gateway at once, a banned event is
//! gone and never comes back, a blocked client address (the gateway passes
//! each connection's address to `nostr.publish_batch`) cannot publish, and a
//! shadow-rejecting write policy answers `OK true` while nothing is stored
//! or delivered.
#![allow(clippy::expect_used)]

mod support;

use e2e::relay::{ids, Client, Gateway};
use e2e::{connect, now, TestDb, TestRole};
use nostr_pg_core::hex;
use nostr_pg_core::sign::Keys;
use nostr_pg_core::Event;
use serde_json::json;
use support::*;

fn ok(frame: &serde_json::Value) -> (bool, String) {
    assert_eq!(frame[0], "OK", "{frame}");
    (
        frame[2].as_bool().unwrap_or(false),
        frame[3].as_str().unwrap_or_default().to_owned(),
    )
}

fn id(e: &Event) -> String {
    hex::encode(&e.id)
}

async fn gateway(url: &str) -> (Gateway, ConfigFile) {
    let file = ConfigFile::new(UNLIMITED);
    let gw = Gateway::start(url, &["--config", &file.arg()]).await;
    (gw, file)
}

#[tokio::test]
async fn banned_authors_and_events_are_refused_through_every_gateway() {
    let role = TestRole::new("moderator").await;
    let db = TestDb::new("moderation").await;
    db.client()
        .await
        .execute("SELECT nostr.grant_relay($1)", &[&role.name])
        .await
        .expect("grant_relay");
    // The relay's role moderates (as the NIP-86 endpoint will).
    let relay_sql = connect(&role.url(&db.url)).await;
    let (one, _f1) = gateway(&role.url(&db.url)).await;
    let (two, _f2) = gateway(&role.url(&db.url)).await;
    let spammer = Keys::from_seed("e2e-spammer");
    let honest = Keys::from_seed("e2e-honest");
    let mut a = Client::connect(&one.url).await;
    let mut b = Client::connect(&two.url).await;

    let spam = spammer.sign(now() - 10, 1, vec![], "buy now");
    let bad = honest.sign(now() - 9, 1, vec![], "regrettable");
    let good = honest.sign(now() - 8, 1, vec![], "fine");
    for e in [&spam, &bad, &good] {
        assert_eq!(ok(&a.publish(&e.canonical_json()).await), (true, String::new()));
    }

    relay_sql
        .execute(
            "SELECT nostr.ban_pubkey($1, 'spam')",
            &[&hex::encode(&spammer.pubkey())],
        )
        .await
        .expect("ban_pubkey as the relay role");
    relay_sql
        .execute("SELECT nostr.ban_event($1, 'reported')", &[&id(&bad)])
        .await
        .expect("ban_event as the relay role");

    // Both gateways refuse at once: no cache to wait for.
    let more = spammer.sign(now(), 1, vec![], "buy more");
    for c in [&mut a, &mut b] {
        let (accepted, message) = ok(&c.publish(&more.canonical_json()).await);
        assert!(!accepted, "{message}");
        assert_eq!(message, "blocked: this pubkey is banned from this relay");
        let (accepted, message) = ok(&c.publish(&bad.canonical_json()).await);
        assert!(!accepted, "{message}");
        assert_eq!(message, "blocked: this event is banned from this relay");
    }
    let stored = b.req("all", &[json!({"kinds": [1]})]).await.expect("req");
    assert_eq!(ids(&stored), vec![id(&good)], "the spam and the banned event are gone");
    let listed: Vec<String> = relay_sql
        .query("SELECT pubkey FROM nostr.list_banned_pubkeys()", &[])
        .await
        .expect("list_banned_pubkeys")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(listed, vec![hex::encode(&spammer.pubkey())]);
}

#[tokio::test]
async fn a_blocked_address_cannot_publish() {
    let db = TestDb::new("moderation_ip").await;
    let admin = db.client().await;
    let (gw, _f) = gateway(&db.url).await;
    let keys = Keys::from_seed("e2e-blocked-ip");
    let mut c = Client::connect(&gw.url).await;
    let before = keys.sign(now() - 1, 1, vec![], "before");
    assert_eq!(ok(&c.publish(&before.canonical_json()).await), (true, String::new()));
    admin
        .batch_execute("SELECT nostr.block_ip('127.0.0.0/8', 'test')")
        .await
        .expect("block_ip");
    let after = keys.sign(now(), 1, vec![], "after");
    let (accepted, message) = ok(&c.publish(&after.canonical_json()).await);
    assert!(!accepted);
    assert_eq!(message, "blocked: your address is blocked from this relay");
    admin
        .batch_execute("SELECT nostr.unblock_ip('127.0.0.0/8')")
        .await
        .expect("unblock_ip");
    assert_eq!(ok(&c.publish(&after.canonical_json()).await), (true, String::new()));
}

#[tokio::test]
async fn a_shadow_rejected_event_is_answered_ok_and_never_seen() {
    let db = TestDb::new("moderation_shadow").await;
    let admin = db.client().await;
    admin
        .batch_execute(&format!(
            "CREATE FUNCTION public.quiet(e nostr.nostr_event, auth text, addr inet) RETURNS text
             LANGUAGE sql AS $$ SELECT CASE WHEN nostr.content(e) = 'shh' THEN 'shadow' END $$;
             ALTER DATABASE {} SET nostr.write_policy = 'public.quiet'",
            db.name
        ))
        .await
        .expect("install the policy");
    // Started after the setting: its sessions have it.
    let (gw, _f) = gateway(&db.url).await;
    let keys = Keys::from_seed("e2e-shadow");
    let mut sub = Client::connect(&gw.url).await;
    assert!(sub
        .req("live", &[json!({"authors": [hex::encode(&keys.pubkey())]})])
        .await
        .expect("req")
        .is_empty());
    let mut p = Client::connect(&gw.url).await;
    let quiet = keys.sign(now() - 1, 1, vec![], "shh");
    let loud = keys.sign(now(), 1, vec![], "hello");
    assert_eq!(ok(&p.publish(&quiet.canonical_json()).await), (true, String::new()));
    assert_eq!(ok(&p.publish(&loud.canonical_json()).await), (true, String::new()));
    // Live delivery is in order: the loud event arrives, the quiet one never did.
    assert_eq!(sub.next_event("live").await["id"], id(&loud).as_str());
    let stored = p.req("stored", &[json!({"kinds": [1]})]).await.expect("req");
    assert_eq!(ids(&stored), vec![id(&loud)]);
}

#[tokio::test]
async fn imports_obey_moderation_and_count_shadowed_lines() {
    let db = TestDb::new("moderation_import").await;
    let admin = db.client().await;
    let banned = Keys::from_seed("e2e-import-banned");
    let fine = Keys::from_seed("e2e-import-fine");
    admin
        .execute("SELECT nostr.ban_pubkey($1)", &[&hex::encode(&banned.pubkey())])
        .await
        .expect("ban_pubkey");
    admin
        .batch_execute(&format!(
            "CREATE FUNCTION public.quiet(e nostr.nostr_event, auth text, addr inet) RETURNS text
             LANGUAGE sql AS $$ SELECT CASE WHEN nostr.content(e) = 'shh' THEN 'shadow' END $$;
             ALTER DATABASE {} SET nostr.write_policy = 'public.quiet'",
            db.name
        ))
        .await
        .expect("install the policy");
    let lines = [
        banned.sign(now(), 1, vec![], "from a banned author"),
        fine.sign(now(), 1, vec![], "kept"),
        fine.sign(now(), 1, vec![], "shh"),
    ]
    .iter()
    .map(|e| e.canonical_json() + "\n")
    .collect::<String>();
    let out = e2e::admin::import(&db.url, &["-"], Some(lines.as_bytes())).await;
    assert_eq!(
        (out.count("accepted"), out.count("blocked"), out.count("shadow")),
        (1, 1, 1),
        "{:?}",
        out
    );
    let stored: i64 = admin
        .query_one("SELECT count(*) FROM nostr.events", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(stored, 1);
}
