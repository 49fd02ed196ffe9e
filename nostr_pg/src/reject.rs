//! Why an event was not stored, as one enum: its NIP-01 `OK` answer for relay
//! clients, and its SQLSTATE for SQL callers (who get an error instead).
//!
//! | OK | prefix | SQLSTATE | when |
//! |---|---|---|---|
//! | false | `invalid:` | 22023 `invalid_parameter_value` | malformed, bad id/signature, out of window, expired |
//! | **true** | `duplicate:` | 23505 `unique_violation` | already stored: it was accepted before (NIP-01's own example) |
//! | false | `blocked:` | 23505 `unique_violation` | a newer version of this replaceable/addressable event is stored |
//! | false | `blocked:` | 23514 `check_violation` | deleted by its author (NIP-09), or its author vanished (NIP-62) |
//! | false | `pow:` | 23514 `check_violation` | below `nostr.min_pow` (NIP-13) |
//! | false | `auth-required:` | 42501 `insufficient_privilege` | protected event (NIP-70) with no authenticated pubkey |
//! | false | `restricted:` | 42501 `insufficient_privilege` | protected event authenticated as someone else |
//! | false | `error:` | 53400 `configuration_limit_exceeded` | the batch had no room left to lock it (`nostr.max_locks_per_batch`): send it again |
//! | **true** | `shadow:` | (none: an INSERT inserts no row) | the write policy shadow-rejected it: never stored nor delivered; the gateway answers `OK true ""` |
//!
//! Every message keeps its prefix in SQL errors too, so the two views agree.

use pgrx::{PgLogLevel, PgSqlErrorCode};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reject {
    Invalid(String),
    /// The very same event is stored already.
    Duplicate(String),
    /// A newer version of the same replaceable or addressable event is stored.
    Superseded(String),
    Blocked(String),
    Pow(String),
    AuthRequired(String),
    Restricted(String),
    /// Not looked at, for want of a resource; the same event may succeed later.
    Error(String),
    /// Shadow-rejected by the write policy: answered as accepted, never
    /// stored nor delivered. Never raised (see the trigger).
    Shadow(String),
}

impl Reject {
    pub fn prefix(&self) -> &'static str {
        match self {
            Reject::Invalid(_) => "invalid",
            Reject::Duplicate(_) => "duplicate",
            Reject::Superseded(_) | Reject::Blocked(_) => "blocked",
            Reject::Pow(_) => "pow",
            Reject::AuthRequired(_) => "auth-required",
            Reject::Restricted(_) => "restricted",
            Reject::Error(_) => "error",
            Reject::Shadow(_) => "shadow",
        }
    }

    fn detail(&self) -> &str {
        match self {
            Reject::Invalid(m)
            | Reject::Duplicate(m)
            | Reject::Superseded(m)
            | Reject::Blocked(m)
            | Reject::Pow(m)
            | Reject::AuthRequired(m)
            | Reject::Restricted(m)
            | Reject::Error(m)
            | Reject::Shadow(m) => m,
        }
    }

    /// The boolean of the NIP-01 `OK`: a duplicate was accepted before, so it
    /// is answered `true` (the relay has it), and so is a shadow-rejected
    /// event (the client must not know); every other refusal `false`.
    pub fn accepted(&self) -> bool {
        matches!(self, Reject::Duplicate(_) | Reject::Shadow(_))
    }

    /// The NIP-01 message: `prefix: detail`.
    pub fn message(&self) -> String {
        format!("{}: {}", self.prefix(), self.detail())
    }

    pub fn sqlstate(&self) -> PgSqlErrorCode {
        match self {
            Reject::Invalid(_) => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            Reject::Duplicate(_) | Reject::Superseded(_) => PgSqlErrorCode::ERRCODE_UNIQUE_VIOLATION,
            Reject::Blocked(_) | Reject::Pow(_) => PgSqlErrorCode::ERRCODE_CHECK_VIOLATION,
            Reject::AuthRequired(_) | Reject::Restricted(_) => PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            Reject::Error(_) => PgSqlErrorCode::ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
            Reject::Shadow(_) => PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
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
