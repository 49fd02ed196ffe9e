//! NIP-01 machine-readable prefixes, held in one enum so every refusal a client
//! sees (in `OK` or `CLOSED`) is spelled the same way and counted the same way.

use std::fmt;

/// The prefix before the colon in an `OK` or `CLOSED` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Prefix {
    Duplicate,
    Pow,
    Blocked,
    RateLimited,
    Invalid,
    Restricted,
    AuthRequired,
    Unsupported,
    /// NIP-77's NEG-ERR: the relay ended a reconciliation.
    Closed,
    Error,
}

impl Prefix {
    pub const ALL: [Prefix; 10] = [
        Prefix::Duplicate,
        Prefix::Pow,
        Prefix::Blocked,
        Prefix::RateLimited,
        Prefix::Invalid,
        Prefix::Restricted,
        Prefix::AuthRequired,
        Prefix::Unsupported,
        Prefix::Closed,
        Prefix::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Prefix::Duplicate => "duplicate",
            Prefix::Pow => "pow",
            Prefix::Blocked => "blocked",
            Prefix::RateLimited => "rate-limited",
            Prefix::Invalid => "invalid",
            Prefix::Restricted => "restricted",
            Prefix::AuthRequired => "auth-required",
            Prefix::Unsupported => "unsupported",
            Prefix::Closed => "closed",
            Prefix::Error => "error",
        }
    }

    /// `prefix: text`, the form NIP-01 prescribes.
    pub fn with(self, text: impl fmt::Display) -> String {
        format!("{}: {}", self.as_str(), text)
    }

    /// The prefix a message starts with, if any. Used to label metrics for the
    /// messages the extension writes.
    pub fn of_message(message: &str) -> Option<Prefix> {
        let (head, _) = message.split_once(':')?;
        Prefix::ALL.into_iter().find(|p| p.as_str() == head)
    }
}

/// Whether a `nostr.publish_batch` message says the operator's write policy
/// shadow-rejected the event (`shadow: note`): the client is answered
/// `OK true` with no message, and the event, never stored, is not delivered.
/// Not a NIP-01 prefix: clients never see it.
pub fn is_shadow(message: &str) -> bool {
    message.split_once(':').is_some_and(|(head, _)| head == "shadow")
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_answers_are_recognised_and_are_no_prefix() {
        assert!(is_shadow("shadow: quietly dropped"));
        assert!(is_shadow("shadow: "));
        assert!(!is_shadow(""));
        assert!(!is_shadow("blocked: shadow: no"));
        assert!(!is_shadow("shadowy: x"));
        assert_eq!(Prefix::of_message("shadow: x"), None);
    }

    #[test]
    fn formats_and_recognises_prefixes() {
        assert_eq!(Prefix::RateLimited.with("slow down"), "rate-limited: slow down");
        assert_eq!(
            Prefix::of_message("duplicate: already have it"),
            Some(Prefix::Duplicate)
        );
        assert_eq!(Prefix::of_message("auth-required: log in"), Some(Prefix::AuthRequired));
        assert_eq!(Prefix::of_message(""), None);
        assert_eq!(Prefix::of_message("nonsense: x"), None);
        for p in Prefix::ALL {
            assert_eq!(Prefix::of_message(&p.with("x")), Some(p));
        }
    }
}
