//! `nostr-pg-admin`, the operators' tool beside the gateway: moving events
//! in and out of a relay's database, and between relays, through the same publish rules and the
//! same connection settings (TLS included, see [`crate::db::tls`]) as the
//! gateway.
//!
//! - [`input`]: opening an import file (plain, gzip, zstd) and bounded lines.
//! - [`tally`]: counts by outcome, sample refusals, the two summaries.
//! - [`progress`]: progress lines on stderr.
//! - [`import`]: JSON Lines through `nostr.publish_batch`, in parallel.
//! - [`export`]: stored canonical events as JSON Lines, streamed.
//! - [`upstream`]: a WebSocket client connection to another relay.
//! - [`sync`]: NIP-77 reconciliation with another relay, and the transfer.
//! - [`mirror_cursor`], [`mirror_upstream`], [`mirror`]: the aggregator:
//!   where each upstream left off, one upstream's reader and writer, and
//!   all of them with their summaries.
//! - [`cli`]: the command line, and what each command prints and exits with.

pub mod cli;
pub mod export;
pub mod import;
pub mod input;
pub mod mirror;
pub mod mirror_cursor;
pub mod mirror_upstream;
pub mod progress;
pub mod sync;
pub mod tally;
pub mod upstream;
