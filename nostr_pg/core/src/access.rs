//! Who may read what: kinds whose events can be restricted to the people
//! involved. The gateway applies it to live events; the extension applies the
//! same rule in SQL (`nostr_pg/src/query/plan.rs`), before each filter's limit.

use crate::hex;
use crate::Event;

/// NIP-04 direct messages, NIP-59 gift wraps, and kind 1060: when reads are
/// restricted, served only to their author or a `p`-tagged recipient.
pub const RESTRICTED_KINDS: [u16; 3] = [4, 1059, 1060];

/// Whether `event` involves one of `pubkeys`, as author or as a `p` tag.
pub fn involves(event: &Event, pubkeys: &[[u8; 32]]) -> bool {
    pubkeys.contains(&event.pubkey)
        || event
            .tag_values("p")
            .any(|p| hex::decode_fixed::<32>(p).is_some_and(|k| pubkeys.contains(&k)))
}

/// Whether a reader may see `event`: `viewers` is `None` when reads are not
/// restricted, else the reader's authenticated pubkeys (possibly none).
pub fn readable(event: &Event, viewers: Option<&[[u8; 32]]>) -> bool {
    match viewers {
        Some(keys) if RESTRICTED_KINDS.contains(&event.kind) => involves(event, keys),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::Keys;

    #[test]
    fn restricted_kinds_reach_only_the_people_involved() {
        let alice = Keys::from_seed("access-alice");
        let bob = Keys::from_seed("access-bob");
        let carol = Keys::from_seed("access-carol");
        let p_bob = vec![vec!["p".to_owned(), hex::encode(&bob.pubkey())]];
        let dm = alice.sign(1, 4, p_bob.clone(), "hi bob");
        let note = alice.sign(1, 1, p_bob, "hi all");
        assert!(readable(&dm, None));
        assert!(readable(&dm, Some(&[alice.pubkey()])));
        assert!(readable(&dm, Some(&[bob.pubkey()])));
        assert!(!readable(&dm, Some(&[carol.pubkey()])));
        assert!(!readable(&dm, Some(&[])));
        assert!(readable(&note, Some(&[])));
    }
}
