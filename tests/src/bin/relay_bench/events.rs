//! Fresh events signed before a workload starts its clock, so signing is never
//! part of what is measured. Each run labels its events (and keys) uniquely,
//! so repeated rounds against the same relay never collide as duplicates.

use nostr_pg_core::sign::Keys;

/// An event ready to publish: its id and the `["EVENT", …]` frame.
pub struct Signed {
    pub id: String,
    pub frame: String,
}

/// What to sign: author index, kind, tags, content.
pub struct Plan {
    pub author: usize,
    pub kind: u16,
    pub tags: Vec<Vec<String>>,
    pub content: String,
}

pub fn keys(label: &str, n: usize) -> Vec<Keys> {
    (0..n)
        .map(|a| Keys::from_seed(&format!("relay_bench {label} author {a}")))
        .collect()
}

pub fn pubkey_hex(k: &Keys) -> String {
    nostr_pg_core::hex::encode(&k.pubkey())
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A label unique to this process and moment, for keys and content.
pub fn unique_label(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Signs every plan on every core, in order.
pub fn sign_all(keys: &[Keys], plans: Vec<Plan>) -> Vec<Signed> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let per = plans.len().div_ceil(threads).max(1);
    let created_at = now();
    std::thread::scope(|s| {
        let handles: Vec<_> = plans
            .chunks(per)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .filter_map(|p| {
                            let key = keys.get(p.author)?;
                            let e = key.sign(created_at, p.kind, p.tags.clone(), &p.content);
                            let json = e.canonical_json();
                            Some(Signed {
                                id: nostr_pg_core::hex::encode(&e.id),
                                frame: format!(r#"["EVENT",{json}]"#),
                            })
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    })
}

pub fn tag(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| (*s).to_owned()).collect()
}
