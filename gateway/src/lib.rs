//! The nostr_pg gateway: a thin, stateless WebSocket front that speaks NIP-01
//! to clients and SQL to PostgreSQL, where the `nostr_pg` extension holds all
//! event rules. Any number of gateways can serve one database.
//!
//! Where things live, from the bottom up (each module imports only from
//! those above it in this list):
//! - [`reply`], [`snapshot`], [`shutdown`], [`limits`], [`metrics`],
//!   [`proxy`], [`config`]: NIP-01 prefixes, PostgreSQL snapshots and
//!   transaction ids, the shutdown signal, rate limits and caps, Prometheus
//!   metrics, client addresses behind proxies, settings.
//! - [`live`]: what live fanout hands to connections (events, queues).
//! - [`neg`]: NIP-77 reconciliation sessions (negentropy).
//! - [`protocol`]: client frames parsed into an enum, relay frames built.
//! - [`db`]: the connection pool, the extension's SQL calls, error mapping,
//!   and the read replicas' pools and health ([`db::replicas`]).
//! - [`index`]: the live subscription index.
//! - [`info`]: the NIP-11 document; [`activity`]: the home page's numbers.
//! - [`fanout`]: exactly-once live delivery: claims, and the LISTEN
//!   connection ([`fanout::listener`]).
//! - [`publisher`]: EVENT batching into `nostr.publish_batch`.
//! - [`auth`]: NIP-42. [`nip98`]: HTTP authorization events.
//!   [`http`]: request heads, bodies and responses.
//! - [`relay`]: [`relay::Relay`], one gateway's shared state.
//! - [`subscription`]: a subscription's stored/live phases.
//! - `read_route`: which server answers a stored query (replica or primary),
//!   and why that keeps live delivery exact.
//! - `query_task`: a stored query running for one subscription.
//! - [`connection`]: one WebSocket session, a single task per socket.
//! - [`nip86`]: the relay management API (JSON-RPC over HTTP, NIP-98).
//! - [`web`]: what plain HTTP requests are answered with (NIP-11,
//!   `/health`, `/metrics`, the home page).
//! - [`server`]: [`run`], the accept loop and graceful shutdown.
//! - [`process`]: logging and the runtime, as both binaries start them.
//! - [`admin`]: `nostr-pg-admin`, the operators' import and export tool
//!   (beside the relay: nothing above uses it).
//!
//! Event and filter semantics come from `nostr_pg_core`; nothing here
//! re-implements them.

pub mod activity;
pub mod admin;
pub mod auth;
pub mod config;
pub mod connection;
pub mod db;
pub mod fanout;
pub mod http;
pub mod index;
pub mod info;
pub mod limits;
pub mod live;
pub mod metrics;
pub mod neg;
pub mod nip86;
pub mod nip98;
pub mod process;
pub mod protocol;
pub mod proxy;
pub mod publisher;
mod query_task;
mod read_route;
pub mod relay;
pub mod reply;
pub mod server;
pub mod shutdown;
pub mod snapshot;
pub mod subscription;
pub mod web;

pub use config::Config;
pub use server::{run, ws_url, ServerError};
