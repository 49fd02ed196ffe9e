//! Signs a NIP-02 contact list (kind 3) that follows every pubkey read from
//! stdin (64 hex characters a line), for benchmarks that need an author who
//! follows a whole data set (tests/bench/policy_cost.sh).
//!
//! `sign_contacts --seed S [--created-at UNIX_TIME] < pubkeys.txt > event.json`

use std::io::BufRead;

use e2e::{arg, now};
use nostr_pg_core::sign::Keys;

fn main() {
    let seed = arg("--seed").unwrap_or_else(|| "bench-admin".to_owned());
    let created_at = arg("--created-at").and_then(|t| t.parse().ok()).unwrap_or_else(now);
    let tags: Vec<Vec<String>> = std::io::stdin()
        .lock()
        .lines()
        .map_while(Result::ok)
        .map(|l| l.trim().to_owned())
        .filter(|l| l.len() == 64 && l.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|pk| vec!["p".to_owned(), pk])
        .collect();
    let event = Keys::from_seed(&seed).sign(created_at, 3, tags, "");
    println!("{}", event.canonical_json());
}
