//! `nostr-pg-admin`, the operators' tool beside the gateway: moving events
//! in and out of a relay's database through the same publish rules and the
//! same connection settings (TLS included, see [`crate::db::tls`]) as the
//! gateway.
//!
//! - [`input`]: opening an import file (plain, gzip, zstd) and bounded lines.
//! - [`tally`]: counts by outcome, sample refusals, the two summaries.
//! - [`progress`]: progress lines on stderr.
//! - [`import`]: JSON Lines through `nostr.publish_batch`, in parallel.
//! - [`export`]: stored canonical events as JSON Lines, streamed.
//! - [`cli`]: the command line, and what each command prints and exits with.

pub mod cli;
pub mod export;
pub mod import;
pub mod input;
pub mod progress;
pub mod tally;
