//! What plain HTTP requests on the relay's port are answered with: NIP-11
//! (`Accept: application/nostr+json`, on any path), NIP-86 management
//! (`Content-Type: application/nostr+json+rpc`, on any path), `/health`,
//! `/metrics`, and for browsers the home page (`/`, `Accept: text/html`)
//! with the `/stats.json` it polls.

mod home;

use std::net::IpAddr;
use std::time::Duration;

use crate::http::{RequestHead, Response};
use crate::nip86;
use crate::relay::Relay;

/// Routes one plain HTTP request (not a WebSocket upgrade). `body` is read
/// only for NIP-86 requests (empty otherwise); `peer` is the address the
/// request came from.
pub async fn respond(head: &RequestHead, body: &[u8], peer: IpAddr, relay: &Relay) -> Response {
    let path = head.path.split('?').next().unwrap_or("/");
    match (head.method.as_str(), path) {
        ("OPTIONS", _) => Response::new(204, "text/plain", ""),
        (_, _) if head.is_nip86() => nip86::respond(head, body, peer, relay).await,
        ("GET" | "HEAD", "/health") => match tokio::time::timeout(Duration::from_secs(2), relay.db.ping()).await {
            Ok(Ok(())) => Response::new(200, "text/plain", "ok\n"),
            Ok(Err(e)) => Response::new(503, "text/plain", format!("unavailable: {e}\n")),
            Err(_) => Response::new(503, "text/plain", "unavailable: database did not answer in time\n"),
        },
        ("GET" | "HEAD", "/metrics") => {
            Response::new(200, "text/plain; version=0.0.4", relay.metrics.render(&relay.gauges()))
        }
        ("GET" | "HEAD", _) if head.wants_nip11() => Response::new(
            200,
            "application/nostr+json",
            relay.info.get(&relay.config, &relay.db).await.as_ref(),
        ),
        ("GET" | "HEAD", "/") if wants_html(head) => home_page(head, relay).await,
        ("GET" | "HEAD", "/stats.json") => {
            let data = relay.home.get(&relay.db).await;
            if let Err(e) = &data {
                tracing::debug!("home page stats without the database: {e}");
            }
            let stats = home::stats(relay, data.as_deref().ok());
            Response::new(200, "application/json", stats.to_string()).with_header("Cache-Control", "no-store")
        }
        ("GET" | "HEAD", "/") => Response::new(
            200,
            "text/plain; charset=utf-8",
            "This is a Nostr relay (nostr_pg). Connect with a Nostr client over WebSocket.\n",
        ),
        ("GET" | "HEAD", _) => Response::new(404, "text/plain", "not found\n"),
        _ => Response::new(405, "text/plain", "method not allowed\n"),
    }
}

/// A browser asks for HTML; NIP-11 clients and tools (`*/*`) get what they
/// got before.
fn wants_html(head: &RequestHead) -> bool {
    head.header("accept")
        .is_some_and(|a| a.to_ascii_lowercase().contains("text/html"))
}

async fn home_page(head: &RequestHead, relay: &Relay) -> Response {
    // Reads (or reuses) the policy, so the page lists the NIPs NIP-11 does.
    relay.info.get(&relay.config, &relay.db).await;
    let data = relay.home.get(&relay.db).await;
    if let Err(e) = &data {
        tracing::debug!("home page without the database: {e}");
    }
    let stats = home::stats(relay, data.as_deref().ok());
    let nonce = crate::auth::new_challenge();
    let body = home::page(relay, &stats, head.header("host"), &nonce);
    let icon = crate::info::shown(&relay.config, &relay.info.names()).icon;
    Response::new(200, "text/html; charset=utf-8", body)
        .with_header("Content-Security-Policy", home::content_security_policy(&nonce, &icon))
        .with_header("X-Content-Type-Options", "nosniff")
        .with_header("Cache-Control", "no-store")
}
