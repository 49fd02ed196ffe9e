//! Typed errors for events and filters. Their `Display` text is what a client
//! sees after the NIP-01 `invalid:` prefix, so it names the field at fault.

use thiserror::Error;

/// Why an event was refused before any database rule ran.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum EventError {
    #[error("malformed JSON: {0}")]
    Json(String),
    #[error("event must be a JSON object")]
    NotObject,
    #[error("missing field `{0}`")]
    Missing(&'static str),
    #[error("`{0}` must be 64 lowercase hex characters")]
    BadHex32(&'static str),
    #[error("`sig` must be 128 lowercase hex characters")]
    BadSig,
    #[error("`created_at` must be an integer between 0 and 2^63-1")]
    BadCreatedAt,
    #[error("`kind` must be an integer between 0 and 65535")]
    BadKind,
    #[error("`tags` must be an array of arrays of strings")]
    BadTags,
    #[error("`content` must be a string")]
    BadContent,
    #[error("event id does not match its content (expected {expected})")]
    IdMismatch { expected: String },
    #[error("pubkey is not a valid secp256k1 x-only key")]
    BadPubkey,
    #[error("signature does not verify")]
    BadSignature,
}

/// Why a filter (or a list of filters) was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FilterError {
    #[error("malformed JSON: {0}")]
    Json(String),
    #[error("filters must be a JSON array of objects")]
    NotArray,
    #[error("a filter must be a JSON object")]
    NotObject,
    #[error("`{0}` must be an array of 64-character lowercase hex strings")]
    BadHexList(&'static str),
    #[error("`kinds` must be an array of integers between 0 and 65535")]
    BadKinds,
    #[error("`{0}` must be an array of strings")]
    BadTagList(String),
    #[error("`{0}` must be an integer between 0 and 2^63-1")]
    BadInteger(&'static str),
    #[error("`search` must be a string")]
    BadSearch,
    #[error("unsupported filter field `{0}`")]
    UnknownField(String),
}
