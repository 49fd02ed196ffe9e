//! NIP-01 kind classes: they decide what "publishing" means for an event.

/// How the relay stores events of a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KindClass {
    /// Stored as is.
    Regular,
    /// 0, 3, 10000..20000: one per (pubkey, kind), newest wins.
    Replaceable,
    /// 20000..30000: delivered to live subscribers, never stored.
    Ephemeral,
    /// 30000..40000: one per (pubkey, kind, `d` tag), newest wins.
    Addressable,
}

impl KindClass {
    pub fn of(kind: u16) -> KindClass {
        match kind {
            0 | 3 | 10000..=19999 => KindClass::Replaceable,
            20000..=29999 => KindClass::Ephemeral,
            30000..=39999 => KindClass::Addressable,
            _ => KindClass::Regular,
        }
    }
}

/// NIP-09 deletion request.
pub const DELETION: u16 = 5;
/// NIP-62 request to vanish.
pub const VANISH: u16 = 62;

/// Kinds NIP-50 search does not look at: their content is not prose (contact
/// lists, encrypted DMs, deletions, reposts, reactions, gift wraps, zap
/// receipts). The database's search index leaves them out too.
pub const UNSEARCHED: [u16; 7] = [3, 4, 5, 6, 7, 1059, 9735];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_boundaries() {
        assert_eq!(KindClass::of(0), KindClass::Replaceable);
        assert_eq!(KindClass::of(1), KindClass::Regular);
        assert_eq!(KindClass::of(3), KindClass::Replaceable);
        assert_eq!(KindClass::of(9999), KindClass::Regular);
        assert_eq!(KindClass::of(10000), KindClass::Replaceable);
        assert_eq!(KindClass::of(19999), KindClass::Replaceable);
        assert_eq!(KindClass::of(20000), KindClass::Ephemeral);
        assert_eq!(KindClass::of(29999), KindClass::Ephemeral);
        assert_eq!(KindClass::of(30000), KindClass::Addressable);
        assert_eq!(KindClass::of(39999), KindClass::Addressable);
        assert_eq!(KindClass::of(40000), KindClass::Regular);
        assert_eq!(KindClass::of(65535), KindClass::Regular);
    }
}
