//! SQL helpers the in-database test modules share (compiled for tests
//! only): publishing through `nostr.publish`, reading a REQ's ids, and the
//! clock the publish rules use.

use nostr_pg_core::{hex, Event};
use pgrx::prelude::*;
use pgrx::spi::Error;

/// `nostr.publish` of `event`, as the NIP-42 user `auth` if given: its
/// verdict and message.
pub fn publish_as(event: &Event, auth: Option<&[u8; 32]>) -> Result<(bool, String), Error> {
    let auth = auth.map(|a| hex::encode(a));
    let (ok, msg) = Spi::get_two_with_args::<bool, String>(
        "SELECT accepted, message FROM nostr.publish($1, $2)",
        &[event.canonical_json().into(), auth.into()],
    )?;
    Ok((ok.unwrap_or(false), msg.unwrap_or_default()))
}

/// `nostr.publish` of `event` by an unauthenticated client.
pub fn publish(event: &Event) -> Result<(bool, String), Error> {
    publish_as(event, None)
}

/// The ids `nostr.req` returns for `filters` (a JSON array), in its order.
pub fn req_ids(filters: &str) -> Result<Vec<String>, Error> {
    Spi::connect(|c| {
        let mut out = Vec::new();
        for row in c.select("SELECT nostr.id(e) FROM nostr.req($1::text) e", None, &[filters.into()])? {
            out.push(row.get::<String>(1)?.unwrap_or_default());
        }
        Ok(out)
    })
}

pub fn id(e: &Event) -> String {
    hex::encode(&e.id)
}

pub fn now() -> i64 {
    crate::rules::now()
}
