//! Signing events: for tests, the benchmark harness and tools that pre-sign
//! events. The relay itself never signs.

use secp256k1::{All, Keypair, Secp256k1};
use sha2::{Digest, Sha256};

use crate::event::Event;

/// A secret key able to sign events.
pub struct Keys {
    secp: Secp256k1<All>,
    keypair: Keypair,
}

impl Keys {
    /// Keys from a 32-byte secret; `None` if it is not a valid secp256k1 scalar.
    pub fn from_secret(secret: [u8; 32]) -> Option<Keys> {
        let secp = Secp256k1::new();
        let keypair = Keypair::from_seckey_byte_array(&secp, secret).ok()?;
        Some(Keys { secp, keypair })
    }

    /// Deterministic keys derived from a public seed string: test keys only.
    pub fn from_seed(seed: &str) -> Keys {
        let mut secret: [u8; 32] = Sha256::digest(seed.as_bytes()).into();
        loop {
            if let Some(keys) = Keys::from_secret(secret) {
                return keys;
            }
            secret = Sha256::digest(secret).into();
        }
    }

    /// The x-only public key.
    pub fn pubkey(&self) -> [u8; 32] {
        self.keypair.x_only_public_key().0.serialize()
    }

    /// Builds and signs an event (BIP-340 without auxiliary randomness, so the
    /// same inputs always give the same signature).
    pub fn sign(&self, created_at: i64, kind: u16, tags: Vec<Vec<String>>, content: &str) -> Event {
        let mut event = Event {
            id: [0; 32],
            pubkey: self.pubkey(),
            created_at,
            kind,
            tags,
            content: content.to_owned(),
            sig: [0; 64],
        };
        event.id = event.computed_id();
        event.sig = self
            .secp
            .sign_schnorr_no_aux_rand(&event.id, &self.keypair)
            .to_byte_array();
        event
    }
}

/// Builds a tag list from string slices: `tags(&[&["e", id], &["t", "x"]])`.
pub fn tags(list: &[&[&str]]) -> Vec<Vec<String>> {
    list.iter()
        .map(|t| t.iter().map(|s| (*s).to_owned()).collect())
        .collect()
}
