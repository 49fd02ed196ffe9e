//! What plain HTTP requests on the relay's port are answered with: NIP-11
//! (`Accept: application/nostr+json`, on any path), `/health` and `/metrics`.

use std::time::Duration;

use crate::http::{RequestHead, Response};
use crate::relay::Relay;

/// Routes one plain HTTP request (not a WebSocket upgrade).
pub async fn respond(head: &RequestHead, relay: &Relay) -> Response {
    let path = head.path.split('?').next().unwrap_or("/");
    match (head.method.as_str(), path) {
        ("OPTIONS", _) => Response::new(204, "text/plain", ""),
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
        ("GET" | "HEAD", "/") => Response::new(
            200,
            "text/plain; charset=utf-8",
            "This is a Nostr relay (nostr_pg). Connect with a Nostr client over WebSocket.\n",
        ),
        ("GET" | "HEAD", _) => Response::new(404, "text/plain", "not found\n"),
        _ => Response::new(405, "text/plain", "method not allowed\n"),
    }
}
