//! What `nostr.publish_batch` and the gateway agree on about batches.

/// The detail of the `error:` answer for an event a batch left out: the batch
/// already held as many locks as the extension allows one batch
/// (`nostr.max_locks_per_batch`), so the event was not looked at. Sending it
/// again, in a later batch, is safe; the gateway does so by itself.
pub const DEFERRED: &str = "batch too large to lock at once; send it again";

/// Whether a `publish_batch` message is [`DEFERRED`]'s.
pub fn is_deferred(message: &str) -> bool {
    message.strip_prefix("error: ") == Some(DEFERRED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_message_is_deferred() {
        assert!(is_deferred(&format!("error: {DEFERRED}")));
        assert!(!is_deferred(DEFERRED));
        assert!(!is_deferred("error: something else"));
        assert!(!is_deferred(&format!("invalid: {DEFERRED}")));
    }
}
