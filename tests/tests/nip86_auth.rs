//! NIP-98 authorization of the relay management API (NIP-86) through a
//! real gateway: each defect in the `Authorization` header (missing,
//! malformed, badly signed, for another URL, method or payload, stale,
//! replayed, or by a key that is no admin) is answered 401 and changes
//! nothing. The methods themselves are tested in `nip86.rs`.
// Test helpers expect freely: a failed expectation is a failed test.
#![allow(clippy::expect_used)]

mod nip86_setup;
mod support;

use e2e::nip86::{body, header_for, post, request, Answer, Auth};
use e2e::{now, TestDb};
use nostr_pg_core::sign::Keys;
use serde_json::{json, Value};

use nip86_setup::{gateway, pubkey_of, relay, rows, Relay};

/// Sends `banpubkey VICTIM` with `header` (or none) and checks it is
/// refused with 401 and the ban list stays empty.
async fn refused(r: &Relay, header: Option<&str>, says: &str) -> Answer {
    let body = ban_body();
    let headers: Vec<(&str, &str)> = header.map(|h| ("Authorization", h)).into_iter().collect();
    let a = post(&r.gw, &headers, &body).await;
    assert_eq!(a.status, 401, "{says}: {a:?}");
    assert!(a.head.contains("www-authenticate: nostr"), "{a:?}");
    assert!(a.error().contains(says), "wanted `{says}`: {a:?}");
    assert_eq!(rows(&r.db, "list_banned_pubkeys").await, 0, "{says}: nothing changed");
    a
}

fn ban_body() -> String {
    body("banpubkey", json!([pubkey_of("nip86-victim")]))
}

#[tokio::test]
async fn a_missing_or_malformed_authorization_is_refused() {
    let r = relay("nip86_auth_missing", "").await;
    refused(&r, None, "missing Authorization").await;
    refused(&r, Some("Bearer abc"), "scheme").await;
    refused(&r, Some("Nostr %%%"), "base64").await;
    let kind = Auth {
        kind: 22242,
        ..Auth::of(&r.admin.url, &ban_body())
    };
    refused(&r, Some(&kind.header(&r.admin.keys)), "kind 27235").await;
}

#[tokio::test]
async fn a_bad_signature_is_refused() {
    let r = relay("nip86_auth_sig", "").await;
    let auth = Auth::of(&r.admin.url, &ban_body());
    let mut event: Value = serde_json::from_str(&auth.event(&r.admin.keys)).expect("json");
    // The admin's event with a signature made by another key over the same id.
    let other: Value = serde_json::from_str(&auth.event(&Keys::from_seed("nip86-forger"))).expect("json");
    event["sig"] = other["sig"].clone();
    refused(&r, Some(&header_for(&event.to_string())), "signature").await;
    // And an event edited after signing (its id no longer holds).
    let mut edited: Value = serde_json::from_str(&auth.event(&r.admin.keys)).expect("json");
    edited["content"] = json!("changed");
    refused(&r, Some(&header_for(&edited.to_string())), "id does not match").await;
}

#[tokio::test]
async fn a_wrong_url_is_refused() {
    let r = relay("nip86_auth_url", "").await;
    for url in ["http://127.0.0.1:1/", "https://relay.example.com/", "not a url"] {
        let auth = Auth {
            url: url.into(),
            ..Auth::of(&r.admin.url, &ban_body())
        };
        refused(&r, Some(&auth.header(&r.admin.keys)), "is for URL").await;
    }
    // The ws:// form of the same URL is the same relay.
    let ws = Auth {
        url: r.gw.url.clone(),
        ..Auth::of(&r.admin.url, &body("supportedmethods", json!([])))
    };
    let a = post(
        &r.gw,
        &[("Authorization", &ws.header(&r.admin.keys))],
        &body("supportedmethods", json!([])),
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");

    // With relay_url configured, only it names the relay, whatever Host says.
    let db = TestDb::new("nip86_auth_relay_url").await;
    let (gw, _config) = gateway(&db, "relay_url = \"wss://relay.test\"").await;
    let own = Auth::of(&format!("{}/", gw.http_url()), &ban_body());
    let a = post(&gw, &[("Authorization", &own.header(&r.admin.keys))], &ban_body()).await;
    assert_eq!(a.status, 401, "the Host header's URL is not the relay's: {a:?}");
    let configured = Auth::of("https://relay.test/", &ban_body());
    let a = post(
        &gw,
        &[("Authorization", &configured.header(&r.admin.keys))],
        &ban_body(),
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
}

#[tokio::test]
async fn a_wrong_method_is_refused() {
    let r = relay("nip86_auth_method", "").await;
    let auth = Auth {
        method: "GET".into(),
        ..Auth::of(&r.admin.url, &ban_body())
    };
    refused(&r, Some(&auth.header(&r.admin.keys)), "method `GET`").await;
    // A GET with NIP-86's content type is no NIP-86 request.
    let a = request(&r.gw, "GET", &[], "").await;
    assert_eq!(a.status, 405, "{a:?}");
}

#[tokio::test]
async fn a_wrong_or_missing_payload_hash_is_refused() {
    let r = relay("nip86_auth_payload", "").await;
    // Signed for listing, sent with a ban.
    let listing = Auth::of(&r.admin.url, &body("listbannedpubkeys", json!([])));
    refused(&r, Some(&listing.header(&r.admin.keys)), "payload").await;
    let none = Auth {
        payload: None,
        ..Auth::of(&r.admin.url, &ban_body())
    };
    refused(&r, Some(&none.header(&r.admin.keys)), "no `payload` tag").await;
}

#[tokio::test]
async fn a_stale_authorization_is_refused() {
    let r = relay("nip86_auth_stale", "").await;
    for skew in [-120, 120] {
        let auth = Auth {
            created_at: now() + skew,
            ..Auth::of(&r.admin.url, &ban_body())
        };
        refused(&r, Some(&auth.header(&r.admin.keys)), "window").await;
    }
}

#[tokio::test]
async fn a_replayed_authorization_is_refused() {
    let r = relay("nip86_auth_replay", "").await;
    let header = Auth::of(&r.admin.url, &ban_body()).header(&r.admin.keys);
    let first = post(&r.gw, &[("Authorization", &header)], &ban_body()).await;
    assert_eq!(first.ok(), &json!(true));
    // The admin lifts the ban in SQL; the captured request must not put it back.
    r.db.client()
        .await
        .execute("SELECT nostr.unban_pubkey($1)", &[&pubkey_of("nip86-victim")])
        .await
        .expect("unban in SQL");
    refused(&r, Some(&header), "used already").await;
}

#[tokio::test]
async fn a_key_that_is_no_admin_is_refused() {
    let r = relay("nip86_auth_stranger", "").await;
    let stranger = Keys::from_seed("nip86-stranger");
    let auth = Auth::of(&r.admin.url, &ban_body()).header(&stranger);
    refused(&r, Some(&auth), "not an admin").await;
}
