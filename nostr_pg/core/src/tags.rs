//! Index keys for single-letter tags. The database indexes `letter:value`; a
//! value that is long (btree entries are capped near 2.7 kB) or holds U+0000
//! (Postgres text cannot) is indexed by its SHA-256 instead, as `letter#hex`.
//! The separator differs, so a hashed key can never equal a verbatim one, and
//! filters map their values through the same function, so matching stays exact.

use sha2::{Digest, Sha256};

/// Longest tag value indexed verbatim, in bytes.
pub const MAX_VERBATIM: usize = 256;

/// Whether `name` is a single ASCII letter (the tags NIP-01 filters can name).
pub fn is_indexable_name(name: &str) -> bool {
    name.len() == 1 && name.bytes().all(|b| b.is_ascii_alphabetic())
}

/// The index key of tag `letter` with first value `value`.
pub fn key(letter: &str, value: &str) -> String {
    if value.len() <= MAX_VERBATIM && !value.contains('\0') {
        let mut k = String::with_capacity(letter.len() + 1 + value.len());
        k.push_str(letter);
        k.push(':');
        k.push_str(value);
        k
    } else {
        let mut k = String::with_capacity(letter.len() + 65);
        k.push_str(letter);
        k.push('#');
        crate::hex::encode_into(&mut k, &Sha256::digest(value.as_bytes()));
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_verbatim_long_and_nul_hashed() {
        assert_eq!(key("t", "nostr"), "t:nostr");
        let long = "x".repeat(MAX_VERBATIM + 1);
        assert!(key("t", &long).starts_with("t#"));
        assert_eq!(key("t", &long).len(), 66);
        assert!(key("t", "a\0b").starts_with("t#"));
        assert_ne!(key("t", "a"), key("T", "a"));
    }

    #[test]
    fn names() {
        assert!(is_indexable_name("e"));
        assert!(is_indexable_name("Z"));
        assert!(!is_indexable_name("ee"));
        assert!(!is_indexable_name("-"));
        assert!(!is_indexable_name(""));
        assert!(!is_indexable_name("é"));
    }
}
