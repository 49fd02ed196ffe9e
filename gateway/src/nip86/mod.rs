//! The relay management API (NIP-86): JSON-RPC over HTTP on the relay's own
//! URL, `POST` with `Content-Type: application/nostr+json+rpc`, authorized
//! with NIP-98 by one of the configured admin pubkeys.
//!
//! - [`url`]: which URL the relay believes it serves (the `u` tag).
//! - [`rpc`]: the request body parsed into a [`Call`] with checked
//!   parameters.
//! - here: authorization, then the call against the extension's moderation
//!   functions ([`crate::db::moderation`]), and the answer
//!   `{"result": ..., "error": ...}` with its HTTP status.
//!
//! Statuses: 200 with a result; 400 for a body or parameters that make no
//! sense (`error` says which); 401 (with `WWW-Authenticate: Nostr`) for a
//! missing or failing authorization or a key that is no admin; 404 when no
//! admin is configured; 405 for a method other than POST; 501 when the
//! database's extension predates the moderation functions; 503 when the
//! database cannot be reached. Nothing changes unless the answer is 200.

pub mod rpc;
pub mod url;

use std::net::IpAddr;

use nostr_pg_core::hex;
use serde_json::{json, Value};

use crate::db::moderation::UNDEFINED_FUNCTION;
use crate::db::{Change, DbError, Listing};
use crate::http::{RequestHead, Response, NIP86_CONTENT_TYPE};
use crate::nip98;
use crate::relay::Relay;
pub use rpc::{Call, InfoField, RpcError, METHODS};

/// Largest request body read. The longest call (a description) is 10,000
/// characters, up to 40 KB as UTF-8.
pub const MAX_BODY: usize = 64 * 1024;

/// SQLSTATE classes the extension raises for input it refuses (22: data
/// exception, 23: integrity constraint); the client's fault, answered 400.
const CLIENT_ERRORS: [&str; 2] = ["22", "23"];

/// Answers one management request whose body is `body`; `peer` is the
/// address the request came from (a trusted proxy's headers may then name
/// the URL it was sent to).
pub async fn respond(head: &RequestHead, body: &[u8], peer: IpAddr, relay: &Relay) -> Response {
    if relay.admins.is_empty() {
        return answer(
            404,
            Err("relay management (NIP-86) is not enabled on this relay".into()),
        );
    }
    if head.method != "POST" {
        return answer(405, Err("NIP-86 requests are POSTs".into())).with_header("Allow", "POST");
    }
    let admin = match authorize(head, body, peer, relay) {
        Ok(admin) => admin,
        Err(why) => {
            tracing::info!("NIP-86 request from {peer} refused: {why}");
            return answer(401, Err(why)).with_header("WWW-Authenticate", "Nostr");
        }
    };
    let call = match Call::parse(body) {
        Ok(call) => call,
        Err(e) => return answer(400, Err(e.to_string())),
    };
    match run(&call, relay).await {
        Ok(result) => {
            tracing::info!("NIP-86 by {}: {call:?}", hex::encode(&admin));
            if call.changes_info() {
                relay.info.forget_names().await;
            }
            answer(200, Ok(result))
        }
        Err(e) => {
            tracing::warn!("NIP-86 by {} failed: {call:?}: {e}", hex::encode(&admin));
            let (status, message) = failure(&e);
            answer(status, Err(message))
        }
    }
}

/// The admin whose NIP-98 authorization this request carries, or why there
/// is none. An authorization is used once: the replay check comes last, so
/// only a valid admin's event is remembered.
fn authorize(head: &RequestHead, body: &[u8], peer: IpAddr, relay: &Relay) -> Result<[u8; 32], String> {
    let served = url::served(&relay.config.relay_url, head, relay.proxies.contains(peer));
    let window = i64::try_from(relay.config.nip86.auth_window_seconds).unwrap_or(60);
    let now = unix_now();
    let request = nip98::Request {
        method: &head.method,
        body,
        now,
        window,
    };
    let event = nip98::verify(
        head.header("authorization"),
        &request,
        |u| url::matches(u, served.as_ref()),
        &relay.verifier,
    )
    .map_err(|e| e.to_string())?;
    if !relay.admins.contains(&event.pubkey) {
        return Err(format!(
            "pubkey {} is not an admin of this relay",
            hex::encode(&event.pubkey)
        ));
    }
    if !relay.http_auth.first_use(&event, now, window) {
        return Err(nip98::Nip98Error::Replayed.to_string());
    }
    Ok(event.pubkey)
}

/// Runs `call`; its `result`.
async fn run(call: &Call, relay: &Relay) -> Result<Value, DbError> {
    let db = &relay.db;
    let change = match call {
        Call::SupportedMethods => return Ok(json!(METHODS)),
        Call::ListBannedPubkeys => return listing(relay, Listing::BannedPubkeys, "pubkey").await,
        Call::ListAllowedPubkeys => return listing(relay, Listing::AllowedPubkeys, "pubkey").await,
        Call::ListBannedEvents => return listing(relay, Listing::BannedEvents, "id").await,
        Call::ListAllowedEvents => return listing(relay, Listing::AllowedEvents, "id").await,
        Call::ListEventsNeedingModeration => return listing(relay, Listing::EventsNeedingModeration, "id").await,
        Call::ListBlockedIps => return listing(relay, Listing::BlockedIps, "ip").await,
        Call::ListAllowedKinds => return Ok(json!(db.kinds(true).await?)),
        Call::ListDisallowedKinds => return Ok(json!(db.kinds(false).await?)),
        Call::BanPubkey { pubkey, reason } => Change::BanPubkey(pubkey, reason.as_deref()),
        Call::UnbanPubkey { pubkey } => Change::UnbanPubkey(pubkey),
        Call::AllowPubkey { pubkey, reason } => Change::AllowPubkey(pubkey, reason.as_deref()),
        Call::UnallowPubkey { pubkey } => Change::UnallowPubkey(pubkey),
        Call::BanEvent { id, reason } => Change::BanEvent(id, reason.as_deref()),
        Call::AllowEvent { id, reason } => Change::AllowEvent(id, reason.as_deref()),
        Call::UnbanEvent { id } => Change::UnbanEvent(id),
        Call::UnallowEvent { id } => Change::UnallowEvent(id),
        Call::AllowKind(kind) => Change::AllowKind(*kind),
        Call::DisallowKind(kind) => Change::DisallowKind(*kind),
        Call::BlockIp { ip, reason } => Change::BlockIp(ip, reason.as_deref()),
        Call::UnblockIp { ip } => Change::UnblockIp(ip),
        Call::ChangeRelayInfo { field, value } => Change::SetRelayInfo(field.sql_name(), value.as_deref()),
    };
    db.moderate(change).await?;
    Ok(json!(true))
}

/// A list as NIP-86 shows it: `[{key: ..., "reason": ...}]`, the reason
/// left out where there is none.
async fn listing(relay: &Relay, listing: Listing, key: &str) -> Result<Value, DbError> {
    let rows = relay.db.listing(listing).await?;
    Ok(Value::Array(
        rows.into_iter()
            .map(|(k, reason)| {
                let mut item = serde_json::Map::new();
                item.insert(key.to_owned(), Value::String(k));
                if let Some(r) = reason {
                    item.insert("reason".into(), Value::String(r));
                }
                Value::Object(item)
            })
            .collect(),
    ))
}

/// The status and message for a failed call.
fn failure(e: &DbError) -> (u16, String) {
    match e {
        DbError::Sql { code, message } if CLIENT_ERRORS.iter().any(|c| code.starts_with(c)) => (400, message.clone()),
        DbError::Sql { code, .. } if code == UNDEFINED_FUNCTION => (
            501,
            "the database's nostr_pg has no moderation functions yet: run ALTER EXTENSION nostr_pg UPDATE \
             (0.3.0 or later)"
                .into(),
        ),
        DbError::Unavailable(_) | DbError::Busy | DbError::Canceled => (503, e.to_string()),
        other => (500, other.to_string()),
    }
}

/// A NIP-86 answer: `{"result": ..., "error": null}` or `{"result": null,
/// "error": "..."}`.
fn answer(status: u16, outcome: Result<Value, String>) -> Response {
    let body = match outcome {
        Ok(result) => json!({"result": result, "error": null}),
        Err(error) => json!({"result": null, "error": error}),
    };
    Response::new(status, NIP86_CONTENT_TYPE, body.to_string()).with_header("Cache-Control", "no-store")
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_failures_have_statuses() {
        let sql = |code: &str| DbError::Sql {
            code: code.into(),
            message: "m".into(),
        };
        assert_eq!(failure(&sql("22023")), (400, "m".into()));
        assert_eq!(failure(&sql("23514")), (400, "m".into()));
        assert_eq!(failure(&sql(UNDEFINED_FUNCTION)).0, 501);
        assert_eq!(failure(&sql("42501")).0, 500);
        assert_eq!(failure(&DbError::Busy).0, 503);
        assert_eq!(failure(&DbError::Unavailable("down".into())).0, 503);
    }

    #[test]
    fn answers_carry_result_and_error() {
        let ok = answer(200, Ok(json!(true)));
        assert_eq!(ok.content_type, NIP86_CONTENT_TYPE);
        let v: Value = serde_json::from_str(&ok.body).unwrap_or_default();
        assert_eq!(v, json!({"result": true, "error": null}));
        let err = answer(401, Err("no".into()));
        let v: Value = serde_json::from_str(&err.body).unwrap_or_default();
        assert_eq!(v, json!({"result": null, "error": "no"}));
    }
}
