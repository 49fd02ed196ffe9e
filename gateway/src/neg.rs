//! NIP-77 set reconciliation, the relay's side: one [`NegSession`] per open
//! `NEG-OPEN`, holding the (created_at, id) items of the stored events that
//! match its filter, answering each client message with the next one
//! (negentropy protocol version 1, through the `negentropy` crate).
//!
//! The items of a session are held in memory for its life (40 bytes each,
//! at most `limits.max_negentropy_records`, which is what NEG-ERR `blocked:`
//! answers past); the database is read once, at NEG-OPEN.

use std::panic::{catch_unwind, AssertUnwindSafe};

use negentropy::{Id, Negentropy, NegentropyStorageVector};
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

/// One reconciliation in progress.
pub struct NegSession {
    inner: Negentropy<'static, NegentropyStorageVector>,
}

impl std::fmt::Debug for NegSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NegSession")
    }
}

impl NegSession {
    /// A session over `items` (created_at, id), in any order.
    pub fn new(items: impl IntoIterator<Item = (u64, [u8; 32])>) -> Result<NegSession, NegError> {
        let mut storage = NegentropyStorageVector::new();
        for (created_at, id) in items {
            storage.insert(created_at, Id::from_byte_array(id)).map_err(protocol)?;
        }
        storage.seal().map_err(protocol)?;
        let inner = Negentropy::owned(storage, FRAME_SIZE_LIMIT).map_err(protocol)?;
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

fn protocol(e: negentropy::Error) -> NegError {
    NegError::Protocol(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> [u8; 32] {
        [n; 32]
    }

    /// A client (the crate as initiator) and our session agree on what
    /// each side lacks.
    #[test]
    fn reconciles_with_an_initiator() {
        let relay_items: Vec<(u64, [u8; 32])> = (0..200u8).map(|n| (1000 + u64::from(n), id(n))).collect();
        let mut relay = NegSession::new(relay_items).unwrap_or_else(|e| panic!("{e}"));
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

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let items: Vec<(u64, [u8; 32])> = (0..50u8).map(|n| (u64::from(n), id(n))).collect();
        let mut s = NegSession::new(items).unwrap_or_else(|e| panic!("{e}"));
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
