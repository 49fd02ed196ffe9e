//! The relay management API (NIP-86) through a real gateway: every method
//! against the extension's moderation state, what that state does to
//! clients (a banned author's EVENT is answered `blocked:`, a banned event
//! leaves REQ, a blocked address is refused with 403). The relay's name,
//! description and icon are tested in `nip86_info.rs`, NIP-98
//! authorization in `nip86_auth.rs`.
// Test helpers expect freely: a failed expectation is a failed test.
#![allow(clippy::expect_used)]

mod nip86_setup;
mod support;

use e2e::nip86::{post, request, sha256_hex, Admin, Auth};
use e2e::relay::{http_get, Client, Gateway};
use e2e::{now, TestDb};
use nip86_setup::{gateway_at, nip11, pubkey_of, relay, rows, ADMIN_SEED};
use nostr_pg_core::hex;
use nostr_pg_core::sign::Keys;
use serde_json::{json, Value};

/// Publishes a fresh kind-`kind` note by `keys` over the WebSocket; the OK
/// frame's verdict and message.
async fn publish(gw: &Gateway, keys: &Keys, kind: u16, content: &str) -> (bool, String, String) {
    let e = keys.sign(now(), kind, vec![], content);
    let mut c = Client::connect(&gw.url).await;
    let f = c.publish(&e.canonical_json()).await;
    (
        f[2].as_bool().unwrap_or(false),
        f[3].as_str().unwrap_or_default().to_owned(),
        hex::encode(&e.id),
    )
}

/// The ids a REQ for `id` returns.
async fn req_ids(gw: &Gateway, id: &str) -> Vec<String> {
    let mut c = Client::connect(&gw.url).await;
    let events = c.req("q", &[json!({"ids": [id]})]).await.expect("REQ answered");
    e2e::relay::ids(&events)
}

#[tokio::test]
async fn supportedmethods_lists_every_method_and_nip11_lists_86() {
    let r = relay("nip86_supported", "").await;
    let a = r.admin.call(&r.gw, "supportedmethods", json!([])).await;
    assert!(a.head.contains("content-type: application/nostr+json+rpc"), "{a:?}");
    let methods: Vec<&str> = a
        .ok()
        .as_array()
        .expect("array")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for m in [
        "supportedmethods",
        "banpubkey",
        "unbanpubkey",
        "listbannedpubkeys",
        "allowpubkey",
        "unallowpubkey",
        "listallowedpubkeys",
        "listeventsneedingmoderation",
        "allowevent",
        "unallowevent",
        "banevent",
        "unbanevent",
        "listbannedevents",
        "listallowedevents",
        "changerelayname",
        "changerelaydescription",
        "changerelayicon",
        "allowkind",
        "disallowkind",
        "listallowedkinds",
        "listdisallowedkinds",
        "blockip",
        "unblockip",
        "listblockedips",
    ] {
        assert!(methods.contains(&m), "{m} missing from {methods:?}");
    }
    let nips = nip11(&r.gw).await["supported_nips"].clone();
    assert!(nips.as_array().is_some_and(|n| n.contains(&json!(86))), "{nips}");

    // Without admins the API is off, and NIP-11 says so.
    let plain = Gateway::start(&r.db.url, &[]).await;
    let nips = nip11(&plain).await["supported_nips"].clone();
    assert!(!nips.as_array().is_some_and(|n| n.contains(&json!(86))), "{nips}");
    let a = Admin::new(ADMIN_SEED, &plain)
        .call(&plain, "supportedmethods", json!([]))
        .await;
    assert_eq!(a.status, 404, "{a:?}");
    assert!(a.error().contains("not enabled"), "{a:?}");
}

#[tokio::test]
async fn banpubkey_refuses_the_authors_events() {
    let r = relay("nip86_banpubkey", "").await;
    let spammer = Keys::from_seed("nip86-spammer");
    let (ok, _, earlier) = publish(&r.gw, &spammer, 1, "before the ban").await;
    assert!(ok, "accepted before the ban");
    let a = r
        .admin
        .call(&r.gw, "banpubkey", json!([pubkey_of("nip86-spammer"), "spam"]))
        .await;
    assert_eq!(a.ok(), &json!(true));
    let (ok, message, _) = publish(&r.gw, &spammer, 1, "after the ban").await;
    assert!(!ok && message.starts_with("blocked: "), "{message}");
    assert!(req_ids(&r.gw, &earlier).await.is_empty(), "its stored events are gone");
    // Nobody else is affected.
    let (ok, message, _) = publish(&r.gw, &Keys::from_seed("nip86-bystander"), 1, "hello").await;
    assert!(ok, "{message}");
}

#[tokio::test]
async fn listbannedpubkeys_shows_bans_made_here_and_in_sql() {
    let r = relay("nip86_listbanned", "").await;
    let a = r.admin.call(&r.gw, "listbannedpubkeys", json!([])).await;
    assert_eq!(a.ok(), &json!([]));
    r.admin
        .call(&r.gw, "banpubkey", json!([pubkey_of("nip86-a"), "spam"]))
        .await
        .ok();
    r.admin
        .call(&r.gw, "banpubkey", json!([pubkey_of("nip86-b")]))
        .await
        .ok();
    // psql moderation is the same state.
    let c = r.db.client().await;
    c.execute("SELECT nostr.ban_pubkey($1, 'by hand')", &[&pubkey_of("nip86-c")])
        .await
        .expect("ban in SQL");
    let a = r.admin.call(&r.gw, "listbannedpubkeys", json!([])).await;
    let mut list = a.ok().as_array().expect("array").clone();
    list.sort_by_key(|v| v["pubkey"].as_str().unwrap_or_default().to_owned());
    let mut want = vec![
        json!({"pubkey": pubkey_of("nip86-a"), "reason": "spam"}),
        json!({"pubkey": pubkey_of("nip86-b")}),
        json!({"pubkey": pubkey_of("nip86-c"), "reason": "by hand"}),
    ];
    want.sort_by_key(|v| v["pubkey"].as_str().unwrap_or_default().to_owned());
    assert_eq!(list, want);
}

#[tokio::test]
async fn unbanpubkey_lets_the_author_publish_again() {
    let r = relay("nip86_unbanpubkey", "").await;
    let author = Keys::from_seed("nip86-forgiven");
    r.admin
        .call(&r.gw, "banpubkey", json!([pubkey_of("nip86-forgiven")]))
        .await
        .ok();
    assert!(!publish(&r.gw, &author, 1, "banned").await.0);
    let a = r
        .admin
        .call(
            &r.gw,
            "unbanpubkey",
            json!([pubkey_of("nip86-forgiven"), "appeal granted"]),
        )
        .await;
    assert_eq!(a.ok(), &json!(true));
    let (ok, message, _) = publish(&r.gw, &author, 1, "back").await;
    assert!(ok, "{message}");
    assert_eq!(
        r.admin.call(&r.gw, "listbannedpubkeys", json!([])).await.ok(),
        &json!([])
    );
}

#[tokio::test]
async fn allowpubkey_lists_the_key_and_lifts_its_ban() {
    let r = relay("nip86_allowpubkey", "").await;
    let key = pubkey_of("nip86-trusted");
    r.admin.call(&r.gw, "banpubkey", json!([key])).await.ok();
    let a = r.admin.call(&r.gw, "allowpubkey", json!([key, "member"])).await;
    assert_eq!(a.ok(), &json!(true));
    let listed = r.admin.call(&r.gw, "listallowedpubkeys", json!([])).await;
    assert_eq!(listed.ok(), &json!([{"pubkey": key, "reason": "member"}]));
    // NIP-86: allowing removes the key from the ban list.
    assert_eq!(
        r.admin.call(&r.gw, "listbannedpubkeys", json!([])).await.ok(),
        &json!([])
    );
    let (ok, message, _) = publish(&r.gw, &Keys::from_seed("nip86-trusted"), 1, "allowed").await;
    assert!(ok, "{message}");
    // While the list has a key, only listed authors publish.
    let (ok, message, _) = publish(&r.gw, &Keys::from_seed("nip86-outsider"), 1, "not listed").await;
    assert!(!ok && message.starts_with("blocked: "), "{message}");
}

#[tokio::test]
async fn listallowedpubkeys_and_unallowpubkey() {
    let r = relay("nip86_unallowpubkey", "").await;
    assert_eq!(
        r.admin.call(&r.gw, "listallowedpubkeys", json!([])).await.ok(),
        &json!([])
    );
    let key = pubkey_of("nip86-member");
    r.admin.call(&r.gw, "allowpubkey", json!([key])).await.ok();
    assert_eq!(
        r.admin.call(&r.gw, "listallowedpubkeys", json!([])).await.ok(),
        &json!([{"pubkey": key}])
    );
    let a = r.admin.call(&r.gw, "unallowpubkey", json!([key])).await;
    assert_eq!(a.ok(), &json!(true));
    assert_eq!(
        r.admin.call(&r.gw, "listallowedpubkeys", json!([])).await.ok(),
        &json!([])
    );
    // Not added to the ban list either.
    assert_eq!(
        r.admin.call(&r.gw, "listbannedpubkeys", json!([])).await.ok(),
        &json!([])
    );
}

#[tokio::test]
async fn banevent_removes_the_event_and_keeps_it_out() {
    let r = relay("nip86_banevent", "").await;
    let author = Keys::from_seed("nip86-author");
    let e = author.sign(now(), 1, vec![], "to be removed");
    let id = hex::encode(&e.id);
    let mut c = Client::connect(&r.gw.url).await;
    assert_eq!(c.publish(&e.canonical_json()).await[2], true);
    assert_eq!(req_ids(&r.gw, &id).await, vec![id.clone()]);
    let a = r.admin.call(&r.gw, "banevent", json!([id, "illegal"])).await;
    assert_eq!(a.ok(), &json!(true));
    assert!(req_ids(&r.gw, &id).await.is_empty(), "gone from REQ");
    let again = c.publish(&e.canonical_json()).await;
    assert_eq!(again[2], false, "{again}");
    assert!(again[3].as_str().is_some_and(|m| m.starts_with("blocked: ")), "{again}");
    assert!(req_ids(&r.gw, &id).await.is_empty(), "and it does not come back");
}

#[tokio::test]
async fn listbannedevents_shows_banned_ids() {
    let r = relay("nip86_listbannedevents", "").await;
    assert_eq!(
        r.admin.call(&r.gw, "listbannedevents", json!([])).await.ok(),
        &json!([])
    );
    let id = sha256_hex(b"an event never seen");
    r.admin.call(&r.gw, "banevent", json!([id, "pre-emptive"])).await.ok();
    let a = r.admin.call(&r.gw, "listbannedevents", json!([])).await;
    assert_eq!(a.ok(), &json!([{"id": id, "reason": "pre-emptive"}]));
}

#[tokio::test]
async fn allowevent_lifts_a_ban() {
    let r = relay("nip86_allowevent", "").await;
    let e = Keys::from_seed("nip86-appeal").sign(now(), 1, vec![], "wrongly banned");
    let id = hex::encode(&e.id);
    r.admin.call(&r.gw, "banevent", json!([id])).await.ok();
    let mut c = Client::connect(&r.gw.url).await;
    assert_eq!(c.publish(&e.canonical_json()).await[2], false);
    let a = r.admin.call(&r.gw, "allowevent", json!([id, "reviewed"])).await;
    assert_eq!(a.ok(), &json!(true));
    assert_eq!(
        r.admin.call(&r.gw, "listbannedevents", json!([])).await.ok(),
        &json!([])
    );
    let f = c.publish(&e.canonical_json()).await;
    assert_eq!(f[2], true, "{f}");
    assert_eq!(req_ids(&r.gw, &id).await, vec![id.clone()]);
}

#[tokio::test]
async fn listeventsneedingmoderation_lists_reported_events_until_reviewed() {
    let r = relay("nip86_needing", "").await;
    let a = r.admin.call(&r.gw, "listeventsneedingmoderation", json!([])).await;
    assert_eq!(a.ok(), &json!([]));
    let (ok, _, id) = publish(&r.gw, &Keys::from_seed("nip86-reported"), 1, "questionable").await;
    assert!(ok);
    // A NIP-56 report (kind 1984) names it.
    let report = Keys::from_seed("nip86-reporter").sign(
        now(),
        1984,
        nostr_pg_core::sign::tags(&[&["e", &id, "spam"], &["p", &pubkey_of("nip86-reported")]]),
        "selling things",
    );
    let mut c = Client::connect(&r.gw.url).await;
    assert_eq!(c.publish(&report.canonical_json()).await[2], true);
    let a = r.admin.call(&r.gw, "listeventsneedingmoderation", json!([])).await;
    assert_eq!(a.ok(), &json!([{"id": id, "reason": "spam: selling things"}]));
    // Reviewed and kept: off the list.
    r.admin.call(&r.gw, "allowevent", json!([id])).await.ok();
    let a = r.admin.call(&r.gw, "listeventsneedingmoderation", json!([])).await;
    assert_eq!(a.ok(), &json!([]));
}

#[tokio::test]
async fn allowkind_and_listallowedkinds() {
    let r = relay("nip86_allowkind", "").await;
    assert_eq!(
        r.admin.call(&r.gw, "listallowedkinds", json!([])).await.ok(),
        &json!([])
    );
    assert_eq!(r.admin.call(&r.gw, "allowkind", json!([1])).await.ok(), &json!(true));
    assert_eq!(
        r.admin.call(&r.gw, "allowkind", json!([30023])).await.ok(),
        &json!(true)
    );
    assert_eq!(
        r.admin.call(&r.gw, "listallowedkinds", json!([])).await.ok(),
        &json!([1, 30023])
    );
    let keys = Keys::from_seed("nip86-kinds");
    let (ok, message, _) = publish(&r.gw, &keys, 1, "a note").await;
    assert!(ok, "{message}");
    let (ok, message, _) = publish(&r.gw, &keys, 7, "+").await;
    assert!(
        !ok && message.starts_with("blocked: "),
        "kind 7 is not on the list: {message}"
    );
}

#[tokio::test]
async fn disallowkind_takes_a_kind_off_the_list() {
    let r = relay("nip86_disallowkind", "").await;
    r.admin.call(&r.gw, "allowkind", json!([1])).await.ok();
    r.admin.call(&r.gw, "allowkind", json!([7])).await.ok();
    assert_eq!(r.admin.call(&r.gw, "disallowkind", json!([7])).await.ok(), &json!(true));
    assert_eq!(
        r.admin.call(&r.gw, "listallowedkinds", json!([])).await.ok(),
        &json!([1])
    );
    let (ok, message, _) = publish(&r.gw, &Keys::from_seed("nip86-disallow"), 7, "+").await;
    assert!(!ok && message.starts_with("blocked: "), "{message}");
}

#[tokio::test]
async fn unbanevent_lets_the_event_be_published_again() {
    let r = relay("nip86_unbanevent", "").await;
    let e = Keys::from_seed("nip86-unban-event").sign(now(), 1, vec![], "second chance");
    let id = hex::encode(&e.id);
    r.admin.call(&r.gw, "banevent", json!([id, "mistake"])).await.ok();
    let mut c = Client::connect(&r.gw.url).await;
    assert_eq!(c.publish(&e.canonical_json()).await[2], false);
    assert_eq!(r.admin.call(&r.gw, "unbanevent", json!([id])).await.ok(), &json!(true));
    assert_eq!(
        r.admin.call(&r.gw, "listbannedevents", json!([])).await.ok(),
        &json!([])
    );
    let f = c.publish(&e.canonical_json()).await;
    assert_eq!(f[2], true, "{f}");
    // Not put on the allowed (reviewed) list either.
    assert_eq!(
        r.admin.call(&r.gw, "listallowedevents", json!([])).await.ok(),
        &json!([])
    );
}

#[tokio::test]
async fn listallowedevents_and_unallowevent() {
    let r = relay("nip86_allowedevents", "").await;
    assert_eq!(
        r.admin.call(&r.gw, "listallowedevents", json!([])).await.ok(),
        &json!([])
    );
    let id = sha256_hex(b"a reviewed event");
    r.admin.call(&r.gw, "allowevent", json!([id, "fine"])).await.ok();
    assert_eq!(
        r.admin.call(&r.gw, "listallowedevents", json!([])).await.ok(),
        &json!([{"id": id, "reason": "fine"}])
    );
    assert_eq!(
        r.admin.call(&r.gw, "unallowevent", json!([id])).await.ok(),
        &json!(true)
    );
    assert_eq!(
        r.admin.call(&r.gw, "listallowedevents", json!([])).await.ok(),
        &json!([])
    );
    // Not banned by it.
    assert_eq!(
        r.admin.call(&r.gw, "listbannedevents", json!([])).await.ok(),
        &json!([])
    );
}

#[tokio::test]
async fn listdisallowedkinds_shows_kinds_always_refused() {
    let r = relay("nip86_disallowedkinds", "").await;
    assert_eq!(
        r.admin.call(&r.gw, "listdisallowedkinds", json!([])).await.ok(),
        &json!([])
    );
    r.admin.call(&r.gw, "disallowkind", json!([4])).await.ok();
    r.admin.call(&r.gw, "disallowkind", json!([1059])).await.ok();
    assert_eq!(
        r.admin.call(&r.gw, "listdisallowedkinds", json!([])).await.ok(),
        &json!([4, 1059])
    );
    // Allowing a kind takes it off this list.
    r.admin.call(&r.gw, "allowkind", json!([4])).await.ok();
    assert_eq!(
        r.admin.call(&r.gw, "listdisallowedkinds", json!([])).await.ok(),
        &json!([1059])
    );
}

#[tokio::test]
async fn a_least_privileged_gateway_role_serves_every_method() {
    let role = e2e::TestRole::new("nip86").await;
    let db = TestDb::new("nip86_role").await;
    db.client()
        .await
        .execute("SELECT nostr.grant_relay($1)", &[&role.name])
        .await
        .expect("grant_relay");
    let (gw, _config) = gateway_at(&role.url(&db.url), "").await;
    let admin = Admin::new(ADMIN_SEED, &gw);
    let key = pubkey_of("nip86-role-victim");
    let id = sha256_hex(b"nip86-role-event");
    for (method, params) in [
        ("banpubkey", json!([key])),
        ("listbannedpubkeys", json!([])),
        ("unbanpubkey", json!([key])),
        ("allowpubkey", json!([key])),
        ("listallowedpubkeys", json!([])),
        ("unallowpubkey", json!([key])),
        ("banevent", json!([id])),
        ("listbannedevents", json!([])),
        ("unbanevent", json!([id])),
        ("allowevent", json!([id])),
        ("listallowedevents", json!([])),
        ("unallowevent", json!([id])),
        ("listeventsneedingmoderation", json!([])),
        ("allowkind", json!([1])),
        ("listallowedkinds", json!([])),
        ("disallowkind", json!([1])),
        ("listdisallowedkinds", json!([])),
        ("blockip", json!(["192.0.2.9"])),
        ("listblockedips", json!([])),
        ("unblockip", json!(["192.0.2.9"])),
        ("changerelayname", json!(["By the relay role"])),
        ("changerelaydescription", json!([""])),
        ("changerelayicon", json!([""])),
    ] {
        let a = admin.call(&gw, method, params).await;
        assert_eq!(a.status, 200, "{method}: {a:?}");
    }
    assert_eq!(nip11(&gw).await["name"], "By the relay role");
}

/// A gateway that believes 127.0.0.1's `X-Forwarded-For`, so one test
/// process can be several client addresses.
const TRUST_LOCAL_PROXY: &str = "[proxy]\ntrusted = [\"127.0.0.1\"]\n";

async fn connect_from(gw: &Gateway, ip: &str) -> Result<Client, String> {
    Client::try_connect_with_headers(&gw.url, &[("X-Forwarded-For", ip)])
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn blockip_refuses_the_address_with_403_and_unblockip_lets_it_back() {
    let r = relay("nip86_blockip", TRUST_LOCAL_PROXY).await;
    assert!(connect_from(&r.gw, "203.0.113.7").await.is_ok());
    let a = r.admin.call(&r.gw, "blockip", json!(["203.0.113.7", "abuse"])).await;
    assert_eq!(a.ok(), &json!(true));
    let refused = connect_from(&r.gw, "203.0.113.7").await;
    assert!(
        refused.as_ref().err().is_some_and(|e| e.contains("403")),
        "{:?}",
        refused.err()
    );
    // Plain HTTP from it too, and a network covers its addresses.
    let health = request(
        &r.gw,
        "GET",
        &[("X-Forwarded-For", "203.0.113.7"), ("Content-Type", "text/plain")],
        "",
    )
    .await;
    assert_eq!(health.status, 403, "{health:?}");
    r.admin.call(&r.gw, "blockip", json!(["198.51.100.0/24"])).await.ok();
    assert!(connect_from(&r.gw, "198.51.100.77").await.is_err());
    assert!(connect_from(&r.gw, "192.0.2.1").await.is_ok(), "others are served");

    let a = r.admin.call(&r.gw, "unblockip", json!(["203.0.113.7"])).await;
    assert_eq!(a.ok(), &json!(true));
    assert!(connect_from(&r.gw, "203.0.113.7").await.is_ok());
    let metrics = http_get(&r.gw, "/metrics", "text/plain").await.1;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("nostr_gateway_connections_blocked_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );
}

#[tokio::test]
async fn listblockedips_shows_addresses_and_networks() {
    let r = relay("nip86_listblockedips", TRUST_LOCAL_PROXY).await;
    assert_eq!(r.admin.call(&r.gw, "listblockedips", json!([])).await.ok(), &json!([]));
    r.admin.call(&r.gw, "blockip", json!(["2001:db8::1", "v6"])).await.ok();
    r.admin.call(&r.gw, "blockip", json!(["10.0.0.0/8"])).await.ok();
    let a = r.admin.call(&r.gw, "listblockedips", json!([])).await;
    let mut list: Vec<Value> = a.ok().as_array().expect("array").clone();
    list.sort_by_key(|v| v["ip"].as_str().unwrap_or_default().to_owned());
    assert_eq!(
        list,
        vec![
            json!({"ip": "10.0.0.0/8"}),
            json!({"ip": "2001:db8::1", "reason": "v6"})
        ]
    );
}

#[tokio::test]
async fn bad_parameters_are_answered_400_and_change_nothing() {
    let r = relay("nip86_params", "").await;
    for (method, params, says) in [
        ("banpubkey", json!(["abc"]), "64 hex characters"),
        ("banpubkey", json!([]), "missing"),
        ("banevent", json!([pubkey_of("x"), 42]), "reason must be a string"),
        ("allowkind", json!([70000]), "0 to 65535"),
        ("allowkind", json!(["1"]), "0 to 65535"),
        ("blockip", json!(["300.0.0.1"]), "not an IP address"),
        ("blockip", json!(["10.0.0.0/40"]), "not an IP address"),
        ("createrole", json!([]), "unknown method"),
    ] {
        let a = r.admin.call(&r.gw, method, params.clone()).await;
        assert_eq!(a.status, 400, "{method} {params}: {a:?}");
        assert!(a.error().contains(says), "{method} {params}: {a:?}");
        assert!(a.json["result"].is_null());
    }
    let bad_json = "{not json";
    let auth = Auth::of(&r.admin.url, bad_json).header(&r.admin.keys);
    let a = post(&r.gw, &[("Authorization", &auth)], bad_json).await;
    assert_eq!(a.status, 400, "{a:?}");
    for f in [
        "list_banned_pubkeys",
        "list_banned_events",
        "list_blocked_ips",
        "list_allowed_pubkeys",
    ] {
        assert_eq!(rows(&r.db, f).await, 0, "{f}");
    }
}
