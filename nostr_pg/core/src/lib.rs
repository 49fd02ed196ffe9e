//! The Nostr event and filter core, free of Postgres, shared by the `nostr_pg`
//! extension and the `gateway`.
//!
//! - [`event`]: parse NIP-01 event JSON into an [`Event`], recompute its id over
//!   the canonical serialization, verify its BIP-340 signature.
//! - [`canonical`]: the one JSON string escaper NIP-01 allows; every id and every
//!   served event goes through it.
//! - [`filter`]: parse NIP-01 filters and match events against them.
//! - [`kind`]: the kind classes (regular, replaceable, ephemeral, addressable).
//! - [`access`]: kinds whose reads can be restricted to the people involved.
//! - [`tags`]: index keys for single-letter tags, safe for btree and text.
//! - [`hex`]: strict lowercase hex for ids, pubkeys and signatures.
//! - [`sign`]: signing, for tests and tools (the relay never signs).
//! - [`batch`]: the answer for events a publish batch had no room to lock.
//!
//! Nothing here panics on client-shaped input: every failure is a typed error.

pub mod access;
pub mod batch;
pub mod canonical;
pub mod error;
pub mod event;
pub mod filter;
pub mod hex;
pub mod kind;
pub mod sign;
pub mod tags;

pub use error::{EventError, FilterError};
pub use event::{Event, Verifier};
pub use filter::{Filter, Filters};
pub use kind::KindClass;
