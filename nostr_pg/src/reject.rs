//! Why an event was not stored, as one enum: its NIP-01 `OK` prefix for relay
//! clients, and its SQLSTATE for SQL callers (who get an error instead).
//!
//! | prefix | SQLSTATE | when |
//! |---|---|---|
//! | `invalid:` | 22023 `invalid_parameter_value` | malformed, bad id/signature, out of window, expired |
//! | `duplicate:` | 23505 `unique_violation` | already stored, or a newer replaceable/addressable version is |
//! | `blocked:` | 23514 `check_violation` | deleted by its author (NIP-09), or its author vanished (NIP-62) |
//! | `pow:` | 23514 `check_violation` | below `nostr.min_pow` (NIP-13) |
//! | `auth-required:` | 42501 `insufficient_privilege` | protected event (NIP-70) with no authenticated pubkey |
//! | `restricted:` | 42501 `insufficient_privilege` | protected event authenticated as someone else |
//!
//! Every message keeps its prefix in SQL errors too, so the two views agree.

use pgrx::{PgLogLevel, PgSqlErrorCode};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reject {
    Invalid(String),
    Duplicate(String),
    Blocked(String),
    Pow(String),
    AuthRequired(String),
    Restricted(String),
}

impl Reject {
    pub fn prefix(&self) -> &'static str {
        match self {
            Reject::Invalid(_) => "invalid",
            Reject::Duplicate(_) => "duplicate",
            Reject::Blocked(_) => "blocked",
            Reject::Pow(_) => "pow",
            Reject::AuthRequired(_) => "auth-required",
            Reject::Restricted(_) => "restricted",
        }
    }

    fn detail(&self) -> &str {
        match self {
            Reject::Invalid(m)
            | Reject::Duplicate(m)
            | Reject::Blocked(m)
            | Reject::Pow(m)
            | Reject::AuthRequired(m)
            | Reject::Restricted(m) => m,
        }
    }

    /// The NIP-01 message: `prefix: detail`.
    pub fn message(&self) -> String {
        format!("{}: {}", self.prefix(), self.detail())
    }

    pub fn sqlstate(&self) -> PgSqlErrorCode {
        match self {
            Reject::Invalid(_) => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            Reject::Duplicate(_) => PgSqlErrorCode::ERRCODE_UNIQUE_VIOLATION,
            Reject::Blocked(_) | Reject::Pow(_) => PgSqlErrorCode::ERRCODE_CHECK_VIOLATION,
            Reject::AuthRequired(_) | Reject::Restricted(_) => PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        }
    }

    /// Raises this as a Postgres ERROR (for SQL callers). Does not return.
    pub fn raise(&self, funcname: &'static str) -> ! {
        pgrx::pg_sys::panic::ErrorReport::new(self.sqlstate(), self.message(), funcname).report(PgLogLevel::ERROR);
        unreachable!("ERROR does not return")
    }
}

impl From<nostr_pg_core::EventError> for Reject {
    fn from(e: nostr_pg_core::EventError) -> Self {
        Reject::Invalid(e.to_string())
    }
}

/// Raises an `invalid_parameter_value` error with `message`. Does not return.
pub fn raise_invalid(message: String, funcname: &'static str) -> ! {
    Reject::Invalid(message).raise(funcname)
}
