//! The nostr_pg gateway: a thin, stateless WebSocket front that speaks NIP-01
//! to clients and SQL to PostgreSQL, where the `nostr_pg` extension holds all
//! event rules. Any number of gateways can serve one database.
//!
//! Where things live:
//! - [`server`]: [`run`], the accept loop and graceful shutdown; [`server::Relay`]
//!   holds one gateway's state (no globals, so tests can run several).
//! - [`connection`]: one WebSocket session, a single task per socket; its
//!   stored queries run in `query_task`, each holding a share of the pool.
//! - [`subscription`]: a subscription's stored/live phases and de-duplication.
//! - [`protocol`]: client frames parsed into an enum, relay frames built.
//! - [`reply`]: the NIP-01 machine-readable prefixes, in one enum.
//! - [`http`]: NIP-11, `/health` and `/metrics` on the same port.
//! - [`db`]: the connection pool, the extension's SQL calls, error mapping.
//! - [`publisher`]: EVENT batching into `nostr.publish_batch`.
//! - [`fanout`]: the LISTEN connection and the live subscription index.
//! - [`auth`]: NIP-42. [`limits`]: rate limits and connection caps.
//! - [`metrics`]: Prometheus counters and histograms. [`config`]: settings.
//!
//! Event and filter semantics come from `nostr_pg_core`; nothing here
//! re-implements them.

pub mod auth;
pub mod config;
pub mod connection;
pub mod db;
pub mod fanout;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod protocol;
pub mod publisher;
mod query_task;
pub mod reply;
pub mod server;
pub mod subscription;

pub use config::Config;
pub use server::{run, ws_url, ServerError};
