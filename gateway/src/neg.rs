//! NIP-77 set reconciliation: [`SortedItems`], the compact item storage
//! both sides use, and [`NegSession`], the relay's side of one open
//! `NEG-OPEN` (negentropy protocol version 1, through the `negentropy`
//! crate). `nostr-pg-admin sync` is the initiator over the same storage.
//!
//! The protocol looks items up by position and by bound, so a session needs
//! all of its (created_at, id) items at hand: they are held as one vector of
//! 40-byte [`Item`]s (8 bytes of time, 32 of id; nothing else per item),
//! filled while the rows stream in from the database in REQ's order
//! (`created_at DESC, id`, the order of the `events_created_idx` index, so
//! PostgreSQL needs no sort) and turned into the protocol's ascending order
//! in place when the last row is in ([`ItemsBuilder`]): no sort, no second
//! copy, and no tokio-postgres rows kept. The cap (`blocked:` past
//! `limits.max_negentropy_records`) is checked before each row is taken, so
//! nothing past it is read.

use std::panic::{catch_unwind, AssertUnwindSafe};

use negentropy::{Bound, Id, Item, Negentropy, NegentropyStorageBase};
use thiserror::Error;

/// Largest message the relay sends, in bytes before hex encoding: twice
/// that, plus the envelope, fits a 128 KiB WebSocket message (what common
/// clients accept).
pub const FRAME_SIZE_LIMIT: u64 = 60_000;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum NegError {
    #[error("message is not hex")]
    Hex,
    #[error("negentropy: {0}")]
    Protocol(String),
    #[error("negentropy failed on this message")]
    Panicked,
}

/// Bytes one item takes in [`SortedItems`].
pub const ITEM_BYTES: usize = std::mem::size_of::<Item>();

/// (created_at, id) items in ascending order, deduplicated: the storage
/// negentropy reconciles over.
#[derive(Debug, Default, Clone)]
pub struct SortedItems {
    items: Vec<Item>,
}

impl SortedItems {
    /// From items in any order (sorted here).
    pub fn from_unsorted(items: impl IntoIterator<Item = (u64, [u8; 32])>) -> SortedItems {
        let mut items: Vec<Item> = items.into_iter().map(|(t, id)| item(t, id)).collect();
        items.sort_unstable();
        items.dedup();
        SortedItems { items }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

fn item(timestamp: u64, id: [u8; 32]) -> Item {
    Item {
        timestamp,
        id: Id::from_byte_array(id),
    }
}

/// Collects items arriving newest first (`created_at DESC`, ties by
/// ascending id: REQ's order and that of the database's index) and turns
/// them into [`SortedItems`] in place.
#[derive(Debug, Default)]
pub struct ItemsBuilder {
    items: Vec<Item>,
    /// Whether every item so far came in the promised order.
    ordered: bool,
}

impl ItemsBuilder {
    pub fn new() -> ItemsBuilder {
        ItemsBuilder {
            items: Vec::new(),
            ordered: true,
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn push(&mut self, created_at: u64, id: [u8; 32]) {
        let next = item(created_at, id);
        if let Some(last) = self.items.last() {
            let in_order = last.timestamp > next.timestamp || (last.timestamp == next.timestamp && last.id < next.id);
            self.ordered &= in_order;
        }
        self.items.push(next);
    }

    /// Ascending (created_at, id). Reversing the whole vector leaves ties
    /// in descending id order; reversing each run of one timestamp fixes
    /// that. Items that did not come in order (they should) are sorted.
    pub fn finish(mut self) -> SortedItems {
        let mut items = std::mem::take(&mut self.items);
        if self.ordered {
            items.reverse();
            let mut start = 0;
            while start < items.len() {
                let t = items[start].timestamp;
                let len = items[start..].iter().take_while(|i| i.timestamp == t).count();
                items[start..start + len].reverse();
                start += len;
            }
        } else {
            items.sort_unstable();
            items.dedup();
        }
        items.shrink_to_fit();
        SortedItems { items }
    }
}

impl NegentropyStorageBase for SortedItems {
    fn size(&self) -> Result<usize, negentropy::Error> {
        Ok(self.items.len())
    }

    fn get_item(&self, i: usize) -> Result<Option<Item>, negentropy::Error> {
        Ok(self.items.get(i).copied())
    }

    fn iterate(
        &self,
        begin: usize,
        end: usize,
        cb: &mut dyn FnMut(Item, usize) -> Result<bool, negentropy::Error>,
    ) -> Result<(), negentropy::Error> {
        let slice = self.items.get(begin..end).ok_or(negentropy::Error::BadRange)?;
        for (i, item) in slice.iter().enumerate() {
            if !cb(*item, begin + i)? {
                break;
            }
        }
        Ok(())
    }

    fn find_lower_bound(&self, first: usize, last: usize, value: &Bound) -> usize {
        match self.items.get(first..last) {
            Some(slice) => first + slice.partition_point(|i| *i < value.item),
            None => first,
        }
    }
}

/// One reconciliation in progress.
pub struct NegSession {
    inner: Negentropy<'static, SortedItems>,
}

impl std::fmt::Debug for NegSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NegSession")
    }
}

impl NegSession {
    /// A session over `items`.
    pub fn new(items: SortedItems) -> Result<NegSession, NegError> {
        let inner = Negentropy::owned(items, FRAME_SIZE_LIMIT).map_err(protocol)?;
        Ok(NegSession { inner })
    }

    /// The answer to a client message (both hex). A client's bytes must not
    /// take the connection down, so a panic inside the library is an error
    /// here (the session is then dropped by the caller).
    pub fn reconcile(&mut self, message_hex: &str) -> Result<String, NegError> {
        let query = ::hex::decode(message_hex).map_err(|_| NegError::Hex)?;
        let inner = &mut self.inner;
        match catch_unwind(AssertUnwindSafe(|| inner.reconcile(&query))) {
            Ok(Ok(answer)) => Ok(::hex::encode(answer)),
            Ok(Err(e)) => Err(protocol(e)),
            Err(_) => Err(NegError::Panicked),
        }
    }
}

pub fn protocol(e: negentropy::Error) -> NegError {
    NegError::Protocol(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use negentropy::NegentropyStorageVector;

    fn id(n: u8) -> [u8; 32] {
        [n; 32]
    }

    /// A client (the crate as initiator) and our session agree on what
    /// each side lacks.
    #[test]
    fn reconciles_with_an_initiator() {
        let relay_items: Vec<(u64, [u8; 32])> = (0..200u8).map(|n| (1000 + u64::from(n), id(n))).collect();
        let mut relay = NegSession::new(SortedItems::from_unsorted(relay_items)).unwrap_or_else(|e| panic!("{e}"));
        let mut client_storage = NegentropyStorageVector::new();
        for n in 100..250u8 {
            client_storage
                .insert(1000 + u64::from(n), Id::from_byte_array(id(n)))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        client_storage.seal().unwrap_or_else(|e| panic!("{e}"));
        let mut client = Negentropy::owned(client_storage, 0).unwrap_or_else(|e| panic!("{e}"));
        let mut message = client.initiate().unwrap_or_else(|e| panic!("{e}"));
        let (mut have, mut need) = (Vec::new(), Vec::new());
        for _ in 0..20 {
            let answer = relay
                .reconcile(&::hex::encode(&message))
                .unwrap_or_else(|e| panic!("{e}"));
            let answer = ::hex::decode(answer).unwrap_or_else(|e| panic!("{e}"));
            match client
                .reconcile_with_ids(&answer, &mut have, &mut need)
                .unwrap_or_else(|e| panic!("{e}"))
            {
                Some(next) => message = next,
                None => break,
            }
        }
        // The client has 200..250 the relay lacks, and needs 0..100.
        assert_eq!(have.len(), 50);
        assert_eq!(need.len(), 100);
    }

    /// Newest first with ascending ids in ties, as the database sends them,
    /// ends ascending; so does an out-of-order feed.
    #[test]
    fn the_builder_turns_newest_first_into_ascending() {
        let mut want: Vec<(u64, [u8; 32])> = Vec::new();
        for t in [5u64, 5, 5, 7, 9, 9, 12] {
            want.push((t, id(want.len() as u8)));
        }
        let mut b = ItemsBuilder::new();
        let mut desc = want.clone();
        desc.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for (t, i) in &desc {
            b.push(*t, *i);
        }
        let got = b.finish();
        let as_pairs = |s: &SortedItems| s.items.iter().map(|i| (i.timestamp, *i.id)).collect::<Vec<_>>();
        assert_eq!(as_pairs(&got), want);
        let mut b = ItemsBuilder::new();
        for (t, i) in want.iter().rev().chain(want.iter()) {
            b.push(*t, *i);
        }
        assert_eq!(as_pairs(&b.finish()), want, "sorted and deduplicated");
        assert_eq!(ITEM_BYTES, 40);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let items: Vec<(u64, [u8; 32])> = (0..50u8).map(|n| (u64::from(n), id(n))).collect();
        let mut s = NegSession::new(SortedItems::from_unsorted(items)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.reconcile("zz"), Err(NegError::Hex));
        assert!(s.reconcile("").is_err());
        assert!(s.reconcile("00").is_err());
        // Deterministic junk after the version byte: answered or refused,
        // never a panic inside the library.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..400usize {
            let mut bytes = vec![0x61u8];
            for _ in 0..len % 80 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                bytes.push((x >> 24) as u8);
            }
            assert_ne!(
                s.reconcile(&::hex::encode(&bytes)),
                Err(NegError::Panicked),
                "{bytes:?}"
            );
        }
    }
}
