use super::*;
use crate::sign::{tags, Keys};

fn data(name: &str) -> String {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn bip340_verification_vectors() {
    let verifier = Verifier::new();
    let csv = data("bip340-vectors.csv");
    let mut checked = 0;
    for line in csv.lines().skip(1) {
        let cols: Vec<&str> = line.split(',').collect();
        let (pk, msg, sig, expect) = (cols[2], cols[4], cols[5], cols[6]);
        let lower = |s: &str| s.to_ascii_lowercase();
        let pk = hex::decode_fixed::<32>(&lower(pk)).expect("pk hex");
        let msg = hex::decode_fixed::<32>(&lower(msg)).expect("msg hex");
        let sig = hex::decode_fixed::<64>(&lower(sig)).expect("sig hex");
        let ok = verifier.verify_signature(&pk, &msg, &sig).is_ok();
        assert_eq!(ok, expect == "TRUE", "vector {}", cols[0]);
        checked += 1;
    }
    assert_eq!(checked, 15);
}

#[test]
fn canonical_vectors_accept_with_exact_id_and_preimage() {
    let verifier = Verifier::new();
    let mut checked = 0;
    for line in data("canonical.jsonl").lines().filter(|l| !l.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).expect("case json");
        let name = case["name"].as_str().unwrap_or("?");
        let send: Value = serde_json::from_str(case["send"].as_str().expect("send")).expect("frame");
        let wire = &send[1];
        let event = Event::from_value(wire).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(event.preimage(), case["preimage"].as_str().expect("preimage"), "{name}");
        verifier.verify(&event).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            hex::encode(&event.id),
            case["event"]["id"].as_str().expect("id"),
            "{name}"
        );
        // What is served parses back to the same event and hashes to the same id.
        let served = event.canonical_json();
        let again = Event::parse_verified(&served, &verifier).expect(name);
        assert_eq!(again, event, "{name}");
        // The stored form serves byte-identical JSON.
        let bytes = event.to_bytes();
        let packed = Packed::new(&bytes).expect("packed");
        assert_eq!(packed.canonical_json(), served, "{name}");
        assert_eq!(packed.unpack().as_ref(), Some(&event), "{name}");
        checked += 1;
    }
    assert_eq!(checked, 31);
}

#[test]
fn signed_events_verify_and_tampering_is_caught() {
    let keys = Keys::from_seed("event-tests");
    let verifier = Verifier::new();
    let event = keys.sign(1_700_000_000, 1, tags(&[&["t", "nostr"]]), "hello");
    verifier.verify(&event).expect("valid");

    let mut changed = event.clone();
    changed.content.push('!');
    assert!(matches!(verifier.verify(&changed), Err(EventError::IdMismatch { .. })));

    let other = keys.sign(1_700_000_001, 1, vec![], "other");
    let mut stolen = event.clone();
    stolen.sig = other.sig;
    assert_eq!(verifier.verify(&stolen), Err(EventError::BadSignature));
}

#[test]
fn shape_errors_are_typed() {
    let keys = Keys::from_seed("shapes");
    let good: Value = serde_json::from_str(&keys.sign(1, 1, vec![], "x").canonical_json()).expect("json");
    let with = |field: &str, v: Value| {
        let mut e = good.clone();
        e[field] = v;
        Event::from_value(&e)
    };
    use serde_json::json;
    assert_eq!(with("id", json!("ABC")), Err(EventError::BadHex32("id")));
    let upper = good["pubkey"].as_str().expect("pk").to_ascii_uppercase();
    assert_eq!(with("pubkey", json!(upper)), Err(EventError::BadHex32("pubkey")));
    assert_eq!(with("sig", json!("00")), Err(EventError::BadSig));
    assert_eq!(with("created_at", json!("1")), Err(EventError::BadCreatedAt));
    assert_eq!(with("created_at", json!(1.5)), Err(EventError::BadCreatedAt));
    assert_eq!(with("created_at", json!(-1)), Err(EventError::BadCreatedAt));
    assert_eq!(
        with("created_at", json!(9_223_372_036_854_775_808u64)),
        Err(EventError::BadCreatedAt)
    );
    assert_eq!(with("kind", json!(65536)), Err(EventError::BadKind));
    assert_eq!(with("kind", json!(-1)), Err(EventError::BadKind));
    assert_eq!(with("tags", json!([["e", 1]])), Err(EventError::BadTags));
    assert_eq!(with("tags", json!(["e"])), Err(EventError::BadTags));
    assert_eq!(with("tags", json!({})), Err(EventError::BadTags));
    assert_eq!(with("content", json!(null)), Err(EventError::BadContent));
    assert_eq!(Event::parse("[]"), Err(EventError::NotObject));
    assert!(matches!(Event::parse("{\"id\":"), Err(EventError::Json(_))));
    assert!(
        matches!(Event::parse("{\"content\":\"\\ud800\"}"), Err(EventError::Json(_))),
        "lone surrogate"
    );
    let mut missing = good.clone();
    missing.as_object_mut().expect("obj").remove("sig");
    assert_eq!(Event::from_value(&missing), Err(EventError::Missing("sig")));
}

#[test]
fn helpers_read_tags() {
    let keys = Keys::from_seed("helpers");
    let e = keys.sign(
        5,
        30023,
        tags(&[
            &["d", "slug"],
            &["expiration", "99"],
            &["-"],
            &["t", "a"],
            &["t", "a"],
            &["tt", "b"],
        ]),
        "",
    );
    assert_eq!(e.d_tag(), "slug");
    assert_eq!(e.expiration(), Some(99));
    assert!(e.is_protected());
    assert_eq!(e.index_keys(), vec!["d:slug".to_owned(), "t:a".to_owned()]);
    let plain = keys.sign(5, 30023, vec![], "");
    assert_eq!(plain.d_tag(), "");
    assert_eq!(plain.expiration(), None);
    assert!(!plain.is_protected());
}

#[test]
fn pow_counts_leading_zero_bits() {
    let keys = Keys::from_seed("pow");
    let mut e = keys.sign(1, 1, vec![], "");
    e.id = [0; 32];
    e.id[2] = 0x10;
    assert_eq!(e.pow_difficulty(), 19);
}

#[test]
fn packed_rejects_garbage() {
    assert!(Packed::new(&[]).is_none());
    assert!(Packed::new(&[1; 10]).is_none());
    let keys = Keys::from_seed("packed");
    let mut bytes = keys.sign(1, 1, vec![], "é").to_bytes();
    bytes.truncate(bytes.len() - 2); // cut inside the 2-byte "é"
    assert!(Packed::new(&bytes).is_none());
}
