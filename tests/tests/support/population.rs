//! A populated relay for the backup tests: every kind class and every rule
//! that leaves state behind, published through `nostr.publish_batch` as a
//! gateway would, so that a restore has something to lose. What a restore
//! must keep refusing is remembered, to be published again afterwards.

use e2e::now;
use nostr_pg_core::hex;
use nostr_pg_core::sign::{tags, Keys};
use nostr_pg_core::Event;
use serde_json::{json, Value};
use tokio_postgres::Client;

const AUTHORS: usize = 12;
/// `publish_batch` takes at most `nostr.max_batch` (1000) events.
const BATCH: usize = 500;
/// Events that expire a moment after they are published, and stay in the
/// table (unserved) until `nostr.purge_expired()`: a dump holds them.
const SOON_EXPIRED: usize = 15;

pub struct Population {
    pub keys: Vec<Keys>,
    /// Events a restored relay must still refuse with `blocked:`, and why.
    pub refused_again: Vec<(&'static str, Event)>,
    /// A stored event (published again it is a `duplicate:`).
    pub stored: Event,
    /// NIP-01 filters whose answers a restored relay must give unchanged.
    pub filters: Vec<Value>,
}

/// Publishes one batch; every event must get `expected` (`""` for a new
/// event, otherwise the start of the message).
async fn publish(db: &Client, events: &[(Event, Option<[u8; 32]>)], expected: &str) {
    for chunk in events.chunks(BATCH) {
        let jsons: Vec<String> = chunk.iter().map(|(e, _)| e.canonical_json()).collect();
        let auths: Vec<Option<String>> = chunk.iter().map(|(_, a)| a.map(|a| hex::encode(&a))).collect();
        let rows = db
            .query(
                "SELECT accepted, message FROM nostr.publish_batch($1::text[], $2::text[])",
                &[&jsons, &auths],
            )
            .await
            .expect("publish_batch");
        for (row, json) in rows.iter().zip(&jsons) {
            let message: String = row.get(1);
            assert!(
                message.starts_with(expected) && (expected.is_empty() == message.is_empty()),
                "{json}: {message}"
            );
        }
    }
}

fn unauthenticated(events: Vec<Event>) -> Vec<(Event, Option<[u8; 32]>)> {
    events.into_iter().map(|e| (e, None)).collect()
}

/// Fills `db` with `notes` notes and, around them, replaceable, addressable
/// and ephemeral events, deletions by id and by address, a vanish request,
/// expired and expiring events, protected events, NUL and oversized tags.
pub async fn populate(db: &Client, notes: usize) -> Population {
    let keys: Vec<Keys> = (0..AUTHORS)
        .map(|i| Keys::from_seed(&format!("backup-author-{i}")))
        .collect();
    let pk = |i: usize| hex::encode(&keys[i].pubkey());
    let now = now();
    let t0 = now - 200_000;

    // First, so they have expired by the time the rest is published.
    let expired = publish_expiring(db, &keys[7]).await;

    // Notes, with topic, mention and reply tags.
    let mut all_notes: Vec<Event> = Vec::with_capacity(notes);
    for j in 0..notes {
        let author = j % AUTHORS;
        let topic = format!("topic-{}", j % 7);
        let mention = pk((j + 1) % AUTHORS);
        let mut t: Vec<Vec<String>> = tags(&[&["t", &topic]]);
        if j % 3 == 0 {
            t.push(vec!["p".into(), mention]);
        }
        if j % 5 == 0 && j > 0 {
            t.push(vec!["e".into(), hex::encode(&all_notes[j / 2].id)]);
        }
        all_notes.push(keys[author].sign(t0 + 50 * j as i64, 1, t, &format!("note {j} about {topic}")));
    }
    publish(db, &unauthenticated(all_notes.clone()), "").await;

    // Reactions to notes.
    let reactions: Vec<Event> = (0..notes / 8)
        .map(|j| {
            let target = &all_notes[(j * 7) % all_notes.len()];
            let t = tags(&[&["e", &hex::encode(&target.id)], &["p", &hex::encode(&target.pubkey)]]);
            keys[(j + 3) % AUTHORS].sign(target.created_at + 5, 7, t, "+")
        })
        .collect();
    publish(db, &unauthenticated(reactions), "").await;

    // Replaceable (profiles in three versions, contact lists with many tags,
    // relay lists) and addressable events in two versions per address.
    let mut replaceable = Vec::new();
    let mut first_profile = None;
    let follows: Vec<Vec<String>> = (0..300)
        .map(|f| {
            vec![
                "p".into(),
                hex::encode(&Keys::from_seed(&format!("follow-{f}")).pubkey()),
            ]
        })
        .collect();
    for (i, k) in keys.iter().enumerate() {
        for v in 0..3 {
            let e = k.sign(t0 + 10 * v, 0, vec![], &format!("{{\"name\":\"author {i} v{v}\"}}"));
            if i == 0 && v == 0 {
                first_profile = Some(e.clone());
            }
            replaceable.push(e);
        }
        for v in 0..2 {
            replaceable.push(k.sign(t0 + 100 + v, 3, follows.clone(), ""));
        }
        replaceable.push(k.sign(t0 + 7, 10002, tags(&[&["r", "wss://relay.example"]]), ""));
        for d in 0..3 {
            let d_tag = format!("d-{d}");
            for v in 0..2 {
                let t = tags(&[&["d", &d_tag], &["title", &format!("article {d} v{v}")]]);
                replaceable.push(k.sign(t0 + 1000 + v, 30023, t, &format!("long form {d} version {v}")));
            }
        }
    }
    publish(db, &unauthenticated(replaceable), "").await;
    let first_profile = first_profile.expect("author 0's first profile");

    // Ephemeral: delivered, never stored (but numbered).
    let ephemeral: Vec<Event> = (0..10)
        .map(|i| keys[i % AUTHORS].sign(now, 20001, vec![], "typing"))
        .collect();
    publish(db, &unauthenticated(ephemeral), "").await;

    // NIP-09: author 1 deletes some of its notes; author 2 "deletes" notes
    // of author 3 (remembered for author 2, the notes stay); author 4
    // deletes one of its addresses.
    let own: Vec<&Event> = all_notes
        .iter()
        .filter(|e| e.pubkey == keys[1].pubkey())
        .take(40)
        .collect();
    let e_tags: Vec<Vec<String>> = own.iter().map(|e| vec!["e".into(), hex::encode(&e.id)]).collect();
    let foreign: Vec<Vec<String>> = all_notes
        .iter()
        .filter(|e| e.pubkey == keys[3].pubkey())
        .take(5)
        .map(|e| vec!["e".into(), hex::encode(&e.id)])
        .collect();
    let address = format!("30023:{}:d-0", pk(4));
    let deletions = vec![
        keys[1].sign(now - 1000, 5, e_tags, "deleted"),
        keys[2].sign(now - 1000, 5, foreign, "not mine"),
        keys[4].sign(now - 900, 5, tags(&[&["a", &address]]), ""),
    ];
    publish(db, &unauthenticated(deletions), "").await;
    let deleted_note = own.first().map(|e| (*e).clone()).expect("a deleted note");
    let deleted_version = keys[4].sign(t0 + 1000, 30023, tags(&[&["d", "d-0"]]), "older than the deletion");

    // NIP-62: author 5 vanishes (its notes and the gift wraps to it go); a
    // gift wrap to it dated before the request but sent after it stays (a
    // restore that replayed the request would delete it), and so does what
    // author 5 publishes afterwards.
    let wrap = |at: i64, text: &str| keys[6].sign(at, 1059, tags(&[&["p", &pk(5)]]), text);
    publish(db, &unauthenticated(vec![wrap(now - 5000, "sealed before")]), "").await;
    let vanish = keys[5].sign(now - 500, 62, tags(&[&["relay", "ALL_RELAYS"]]), "");
    publish(db, &unauthenticated(vec![vanish]), "").await;
    let after_vanish = vec![
        wrap(now - 4000, "sealed after"),
        keys[5].sign(now - 100, 1, vec![], "back again"),
    ];
    publish(db, &unauthenticated(after_vanish), "").await;
    let vanished_note = all_notes
        .iter()
        .find(|e| e.pubkey == keys[5].pubkey())
        .cloned()
        .expect("a note by author 5");

    // NIP-70 protected events (with their author's authentication), an
    // event expiring later, U+0000 and oversized tag values and content.
    let mut special: Vec<(Event, Option<[u8; 32]>)> = (0..10)
        .map(|i| {
            let e = keys[8].sign(now - 300 + i, 1, tags(&[&["-"]]), &format!("protected {i}"));
            (e, Some(keys[8].pubkey()))
        })
        .collect();
    let later = (now + 1_000_000).to_string();
    let huge = "x".repeat(5000);
    special.extend(unauthenticated(vec![
        keys[9].sign(now - 200, 1, tags(&[&["expiration", &later]]), "expires next month"),
        keys[9].sign(now - 199, 1, tags(&[&["t", "nul\u{0}tag"], &["r", &huge]]), "a\u{0}b"),
    ]));
    publish(db, &special, "").await;

    // What must have expired by now is in the table, no longer served.
    wait_expired(db, expired).await;

    let filters = vec![
        json!({"kinds": [1], "#t": ["topic-3"], "limit": 500}),
        json!({"#p": [pk(0)], "limit": 500}),
        json!({"authors": [pk(5)]}),
        json!({"#p": [pk(5)]}),
        json!({"authors": [pk(7), pk(8), pk(9)], "limit": 500}),
        json!({"kinds": [0, 3, 10002]}),
        json!({"kinds": [30023], "#d": ["d-0", "d-1"]}),
        json!({"kinds": [5, 62]}),
        json!({"#r": [huge]}),
        json!({"#t": ["nul\u{0}tag"]}),
        json!({"ids": [hex::encode(&deleted_note.id)]}),
        json!({"search": "topic-2", "limit": 100}),
        json!({"limit": 500}),
    ];
    Population {
        refused_again: vec![
            ("deleted by its author", deleted_note),
            ("older than the address deletion", deleted_version),
            ("by an author who vanished", vanished_note),
            ("replaced by a newer version", first_profile),
        ],
        stored: all_notes[notes - 1].clone(),
        keys,
        filters,
    }
}

/// Publishes events that expire two seconds later; returns how many were
/// stored. On a machine so busy that the clock passed their expiration
/// before they were stored (refused as expired), tries again with more room.
async fn publish_expiring(db: &Client, keys: &Keys) -> usize {
    let mut stored = 0;
    let mut room = 2;
    for round in 0.. {
        let at = (now() + room).to_string();
        let events: Vec<String> = (0..SOON_EXPIRED - stored)
            .map(|i| {
                let e = keys.sign(
                    now() - 60,
                    1,
                    tags(&[&["expiration", &at]]),
                    &format!("brief {round}.{i}"),
                );
                e.canonical_json()
            })
            .collect();
        let rows = db
            .query("SELECT message FROM nostr.publish_batch($1::text[])", &[&events])
            .await
            .expect("publish_batch");
        for row in rows {
            let message: String = row.get(0);
            match message.as_str() {
                "" => stored += 1,
                "invalid: event has expired" => {}
                other => panic!("an expiring event: {other}"),
            }
        }
        if stored == SOON_EXPIRED {
            break;
        }
        room *= 2;
    }
    stored
}

/// Waits until `n` events in the table have expired, by the clock queries
/// use (whole seconds, rounded down). Polled; the bound only limits a failure.
async fn wait_expired(db: &Client, n: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let expired: i64 = db
            .query_one(
                "SELECT count(*) FROM nostr.events WHERE expires_at <= floor(extract(epoch FROM now()))",
                &[],
            )
            .await
            .expect("count expired")
            .get(0);
        if expired as usize >= n {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{expired} of {n} events expired");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
