//! `nostr-pg-admin sync` and `mirror` as processes, against relays nobody
//! here wrote (the `nostr-relay-builder` crate's local relay, run in this
//! test process, NIP-77 and all) and against a second nostr_pg database
//! behind its own gateway: sync down, up and both end with the union on
//! both sides and count what they moved; a mirror of two relays with
//! overlapping events stores each once, survives `kill -9` mid-stream
//! without losing any, and keeps storing from a good upstream while another
//! floods it with garbage; SIGINT stops a sync with its summary.
// Test helpers expect freely: a failed expectation is a failed test (the
// workspace's expect_used lint is for code clients and the database reach).
#![allow(clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::admin::{self, Imported};
use e2e::relay::{Client as RawClient, Gateway, WAIT};
use e2e::{now, publish, stored_ids, TestDb};
use futures_util::{SinkExt, StreamExt};
use nostr_pg_core::sign::{tags, Keys};
use nostr_relay_builder::prelude::*;
use serde_json::Value;
use support::{ConfigFile, UNLIMITED};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

/// Notes `from..from + n` of one author, one second apart, as canonical JSON.
fn notes(seed: &str, from: usize, n: usize) -> Vec<String> {
    let keys = Keys::from_seed(seed);
    let t = now() - 20_000;
    (from..from + n)
        .map(|i| {
            keys.sign(t + i as i64, 1, vec![], &format!("note {i}"))
                .canonical_json()
        })
        .collect()
}

fn id_of(json: &str) -> String {
    nostr_pg_core::Event::parse(json)
        .map(|e| nostr_pg_core::hex::encode(&e.id))
        .expect("event")
}

fn ids(json: &[String]) -> BTreeSet<String> {
    json.iter().map(|j| id_of(j)).collect()
}

/// A `nostr-relay-builder` relay on 127.0.0.1 with an in-memory store we
/// can read and write directly; rate limits out of the way.
struct OtherRelay {
    relay: LocalRelay,
    store: Arc<dyn NostrDatabase>,
    url: String,
}

impl OtherRelay {
    async fn start() -> OtherRelay {
        let store: Arc<dyn NostrDatabase> = Arc::new(MemoryDatabase::with_opts(MemoryDatabaseOptions {
            events: true,
            max_events: None,
        }));
        let builder = RelayBuilder::default()
            .addr(IpAddr::V4(Ipv4Addr::LOCALHOST))
            .database(Arc::clone(&store))
            .default_filter_limit(100_000)
            .rate_limit(RateLimit {
                max_reqs: 10_000,
                notes_per_minute: 1_000_000,
            });
        let relay = LocalRelay::new(builder);
        relay.run().await.expect("run the local relay");
        let url = relay.url().await.to_string();
        OtherRelay { relay, store, url }
    }

    async fn save(&self, json: &[String]) {
        for j in json {
            let event = Event::from_json(j).expect("event");
            self.store.save_event(&event).await.expect("save");
        }
    }

    async fn ids(&self) -> BTreeSet<String> {
        self.store
            .query(Filter::new())
            .await
            .expect("query")
            .into_iter()
            .map(|e| e.id.to_hex())
            .collect()
    }
}

impl Drop for OtherRelay {
    fn drop(&mut self) {
        self.relay.shutdown();
    }
}

async fn sync(db_url: &str, relay: &str, extra: &[&str]) -> Imported {
    let out = admin::finish(admin::spawn(db_url, &[&["sync", relay, "--json"], extra].concat())).await;
    assert!(out.status.success(), "{:?}\n{}", out.status, out.stderr);
    assert_eq!(out.summary["status"], "complete", "{}\n{}", out.summary, out.stderr);
    out
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

#[tokio::test]
async fn sync_down_up_and_both_with_a_relay_builder_relay() {
    let db = TestDb::new("sync_rb").await;
    let c = db.client().await;
    let other = OtherRelay::start().await;
    // Here 0..200, there 100..300.
    let all = notes("sync-rb", 0, 300);
    c.query("SELECT * FROM nostr.publish_batch($1)", &[&all[..200].to_vec()])
        .await
        .expect("publish_batch");
    other.save(&all[100..]).await;

    // Down: fetches 200..300, sends nothing.
    let out = sync(&db.url, &other.url, &["--dir", "down", "--ids-per-req", "30"]).await;
    let s = &out.summary;
    assert_eq!((n(&s["items"]), n(&s["have"]), n(&s["need"])), (200, 100, 100), "{s}");
    assert_eq!(n(&s["received"]), 100, "{s}");
    assert_eq!(n(&s["down"]["accepted"]), 100, "{s}");
    assert_eq!(n(&s["sent"]), 0, "{s}");
    assert!(n(&s["bytes_sent"]) > 0 && n(&s["bytes_received"]) > 0, "{s}");
    assert!(
        n(&s["reconcile_bytes"]) > 0 && n(&s["reconcile_bytes"]) < n(&s["bytes_sent"]) + n(&s["bytes_received"]),
        "{s}"
    );
    assert!(out.stderr.contains("sync complete with"), "{}", out.stderr);
    assert_eq!(stored_ids(&c).await, ids(&all));
    assert_eq!(other.ids().await, ids(&all[100..]), "down sends nothing");

    // Up: sends 0..100, fetches nothing.
    let out = sync(&db.url, &other.url, &["--dir", "up", "--window", "7"]).await;
    let s = &out.summary;
    assert_eq!((n(&s["have"]), n(&s["need"])), (100, 0), "{s}");
    assert_eq!(
        (n(&s["sent"]), n(&s["up"]["accepted"]), n(&s["received"])),
        (100, 100, 0),
        "{s}"
    );
    assert_eq!(other.ids().await, ids(&all));

    // Both, with something new on each side, restricted by a filter: only
    // kind 1 moves, the profile here stays here.
    let more = notes("sync-rb", 300, 40);
    c.query("SELECT * FROM nostr.publish_batch($1)", &[&more[..20].to_vec()])
        .await
        .expect("publish_batch");
    let profile = Keys::from_seed("sync-rb-profile")
        .sign(now() - 100, 0, vec![], "{}")
        .canonical_json();
    assert_eq!(publish(&c, &profile).await, (true, String::new()));
    other.save(&more[20..]).await;
    let out = sync(&db.url, &other.url, &["--filter", r#"{"kinds":[1]}"#]).await;
    let s = &out.summary;
    assert_eq!((n(&s["have"]), n(&s["need"])), (20, 20), "{s}");
    assert_eq!((n(&s["down"]["accepted"]), n(&s["up"]["accepted"])), (20, 20), "{s}");
    let mut union = ids(&all);
    union.extend(ids(&more));
    assert_eq!(other.ids().await, union, "the profile is not kind 1");
    union.insert(id_of(&profile));
    assert_eq!(stored_ids(&c).await, union);

    // In step now: nothing to do.
    let out = sync(&db.url, &other.url, &["--filter", r#"{"kinds":[1]}"#]).await;
    assert_eq!(
        (n(&out.summary["have"]), n(&out.summary["need"])),
        (0, 0),
        "{}",
        out.summary
    );
}

#[tokio::test]
async fn sync_between_two_nostr_pg_databases_counts_refusals() {
    let here = TestDb::new("sync_here").await;
    let there = TestDb::new("sync_there").await;
    let (h, t) = (here.client().await, there.client().await);
    let config = ConfigFile::new(UNLIMITED);
    let gw = Gateway::start(&there.url, &["--config", &config.arg()]).await;
    let all = notes("sync-pg", 0, 500);
    h.query("SELECT * FROM nostr.publish_batch($1)", &[&all[..350].to_vec()])
        .await
        .expect("publish_batch");
    t.query("SELECT * FROM nostr.publish_batch($1)", &[&all[150..].to_vec()])
        .await
        .expect("publish_batch");
    // Bob's note is here; there, bob deleted it: sending it is refused.
    let bob = Keys::from_seed("sync-pg-bob");
    let note = bob.sign(now() - 50, 1, vec![], "regretted").canonical_json();
    let deletion = bob
        .sign(now() - 40, 5, tags(&[&["e", &id_of(&note)]]), "")
        .canonical_json();
    assert_eq!(publish(&h, &note).await, (true, String::new()));
    assert_eq!(publish(&t, &deletion).await, (true, String::new()));

    let out = sync(&here.url, &gw.url, &["--dir", "up"]).await;
    let s = &out.summary;
    assert_eq!((n(&s["have"]), n(&s["need"])), (151, 151), "{s}");
    assert_eq!(n(&s["sent"]), 151, "{s}");
    assert_eq!(n(&s["up"]["accepted"]), 150, "{s}");
    assert_eq!(n(&s["up"]["refusals"]["blocked"]), 1, "{s}");
    assert_eq!(s["up"]["samples"][0]["id"], id_of(&note), "{s}");
    assert!(out.stderr.contains("refused there:"), "{}", out.stderr);

    // Both: the deletion comes here and removes the note.
    let out = sync(&here.url, &gw.url, &[]).await;
    let s = &out.summary;
    assert_eq!((n(&s["have"]), n(&s["need"])), (1, 151), "{s}");
    assert_eq!(n(&s["down"]["accepted"]), 151, "{s}");
    let mut want = ids(&all);
    want.insert(id_of(&deletion));
    assert_eq!(stored_ids(&h).await, want);
    assert_eq!(stored_ids(&t).await, want);
}

/// The mirror's row count reaches `n` (bounded wait).
async fn wait_for_count(c: &tokio_postgres::Client, n: i64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = e2e::stored_count(c).await;
        if got >= n {
            return;
        }
        assert!(Instant::now() < deadline, "{got} of {n} events stored in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn mirror(db_url: &str, urls: &[&str], extra: &[&str]) -> tokio::process::Child {
    let args = [
        &["mirror"][..],
        urls,
        &[
            "--json",
            "--summary-secs",
            "3600",
            "--min-backoff-ms",
            "50",
            "--max-backoff-ms",
            "200",
        ],
        extra,
    ]
    .concat();
    admin::spawn(db_url, &args)
}

/// SIGTERM, then the final JSON summary.
async fn stop(child: tokio::process::Child) -> Imported {
    let pid = child.id().expect("pid");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let out = admin::finish(child).await;
    assert!(out.status.success(), "{:?}\n{}", out.status, out.stderr);
    assert_eq!(out.summary["status"], "stopped", "{}", out.summary);
    out
}

fn upstream<'a>(summary: &'a Value, url: &str) -> &'a Value {
    summary["upstreams"]
        .as_array()
        .and_then(|list| list.iter().find(|u| u["url"] == url))
        .unwrap_or_else(|| panic!("no {url} in {summary}"))
}

/// Publishes through a relay's own NIP-01 door (stored and sent live).
async fn publish_to(url: &str, events: &[String]) {
    let mut client = RawClient::connect(url).await;
    for e in events {
        let ok = client.publish(e).await;
        assert_eq!(ok[2], true, "{ok}");
    }
    client.close().await;
}

#[tokio::test]
async fn mirror_stores_overlapping_events_once_and_survives_kill_9() {
    let db = TestDb::new("mirror_kill").await;
    let c = db.client().await;
    let (r1, r2) = (OtherRelay::start().await, OtherRelay::start().await);
    let all = notes("mirror-kill", 0, 260);
    // Stored before the mirror starts: 0..70 on one, 30..100 on the other.
    r1.save(&all[..70]).await;
    r2.save(&all[30..100]).await;
    let urls = [r1.url.as_str(), r2.url.as_str()];
    let first = mirror(&db.url, &urls, &["--since-margin", "0"]);
    wait_for_count(&c, 100).await;

    // Live, on both relays, while the mirror is killed halfway through.
    let (u1, u2) = (r1.url.clone(), r2.url.clone());
    let live = all[100..].to_vec();
    let publisher = tokio::spawn(async move {
        for chunk in live.chunks(10) {
            publish_to(&u1, chunk).await;
            publish_to(&u2, chunk).await;
        }
    });
    wait_for_count(&c, 150).await;
    let mut first = first;
    first.start_kill().expect("kill -9 the mirror");
    let killed = first.wait().await.expect("wait");
    assert!(!killed.success());
    admin::wait_for_no_sessions(&c, &db.name).await;
    let before_restart = e2e::stored_count(&c).await;
    let cursors: i64 = c
        .query_one(
            "SELECT count(*) FROM nostr_mirror.cursors WHERE last_created_at > 0",
            &[],
        )
        .await
        .expect("cursors")
        .get(0);
    assert_eq!(cursors, 2, "both upstreams have a cursor");

    let second = mirror(&db.url, &urls, &["--since-margin", "0"]);
    publisher.await.expect("publisher");
    wait_for_count(&c, 260).await;
    let out = stop(second).await;
    eprintln!("after the restart: {}", out.summary);
    // Every event once, nothing else.
    assert_eq!(stored_ids(&c).await, ids(&all));
    assert_eq!(e2e::stored_count(&c).await, 260);
    // The restart resumed from the cursors, not from the beginning.
    for url in urls {
        let u = upstream(&out.summary, url);
        let received = n(&u["received"]);
        assert!(
            received < 260 - 100,
            "{url} sent {received} after the restart: {}",
            out.summary
        );
        assert_eq!(n(&u["invalid"]), 0, "{}", out.summary);
    }
    let accepted: u64 = urls.iter().map(|u| n(&upstream(&out.summary, u)["accepted"])).sum();
    assert_eq!(
        accepted as i64,
        260 - before_restart,
        "what the second run stored: {}",
        out.summary
    );
    assert!(out.stderr.contains("mirror, "), "{}", out.stderr);
}

/// A relay that answers any REQ with a flood of garbage: frames that are
/// not JSON, events that are not events, events whose id is not their
/// hash, until `stop`.
async fn garbage_relay(stop: Arc<AtomicBool>, sent: Arc<AtomicU64>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let forged = notes("mirror-garbage", 0, 1)[0].replace("note 0", "forged");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (stop, sent, forged) = (Arc::clone(&stop), Arc::clone(&sent), forged.clone());
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                // Wait for the REQ, then flood.
                let Some(Ok(_)) = ws.next().await else { return };
                let frames = [
                    "not json at all".to_owned(),
                    r#"["EVENT","nostr-pg-admin-mirror",{"kind":1}]"#.to_owned(),
                    format!(r#"["EVENT","nostr-pg-admin-mirror",{forged}]"#),
                    r#"["EVENT"]"#.to_owned(),
                ];
                let mut i = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let frame = &frames[i % frames.len()];
                    if ws.send(Message::text(frame.clone())).await.is_err() {
                        return;
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                    if i.is_multiple_of(256) {
                        tokio::task::yield_now().await;
                    }
                }
            });
        }
    });
    format!("ws://{addr}")
}

#[tokio::test]
async fn mirror_keeps_storing_while_another_upstream_floods_garbage() {
    let db = TestDb::new("mirror_garbage").await;
    let c = db.client().await;
    let good = OtherRelay::start().await;
    let stop_flood = Arc::new(AtomicBool::new(false));
    let flooded = Arc::new(AtomicU64::new(0));
    let bad = garbage_relay(Arc::clone(&stop_flood), Arc::clone(&flooded)).await;
    let child = mirror(&db.url, &[&bad, &good.url], &["--queue", "16"]);
    // The flood is under way before the good relay has anything.
    let deadline = Instant::now() + WAIT;
    while flooded.load(Ordering::Relaxed) < 10_000 {
        assert!(Instant::now() < deadline, "the garbage relay never flooded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let events = notes("mirror-good", 0, 60);
    publish_to(&good.url, &events).await;
    wait_for_count(&c, 60).await;
    stop_flood.store(true, Ordering::Relaxed);
    let out = stop(child).await;
    eprintln!("flood: {}", out.summary);
    assert_eq!(stored_ids(&c).await, ids(&events), "the good events, nothing forged");
    let g = upstream(&out.summary, &good.url);
    assert_eq!(n(&g["accepted"]), 60, "{}", out.summary);
    assert_eq!(n(&g["invalid"]), 0, "{}", out.summary);
    let b = upstream(&out.summary, &bad);
    assert!(n(&b["invalid"]) >= 1000, "{}", out.summary);
    assert_eq!(n(&b["accepted"]), 0, "{}", out.summary);
    assert!(
        b["samples"]["invalid"].as_array().is_some_and(|s| !s.is_empty()),
        "{}",
        out.summary
    );
}

/// A relay that takes the connection and never answers; the first text
/// frame it gets goes to `got`.
async fn silent_relay(got: tokio::sync::mpsc::Sender<String>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let Ok((tcp, _)) = listener.accept().await else { return };
        let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
            return;
        };
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Text(t) = msg {
                let _ = got.try_send(t.as_str().to_owned());
            }
        }
    });
    format!("ws://{addr}")
}

#[tokio::test]
async fn sigint_stops_a_sync_with_a_summary() {
    let db = TestDb::new("sync_sigint").await;
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let url = silent_relay(tx).await;
    let child = admin::spawn(&db.url, &["sync", &url, "--json"]);
    let first = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("the sync's first message in time")
        .expect("a message");
    assert!(first.starts_with(r#"["NEG-OPEN","#), "{first}");
    let pid = child.id().expect("pid");
    let sent = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("kill -INT");
    assert!(status.success());
    let out = admin::finish(child).await;
    assert!(sent.elapsed() < Duration::from_secs(10), "took {:?}", sent.elapsed());
    assert_eq!(out.status.code(), Some(130), "{}", out.stderr);
    assert_eq!(out.summary["status"], "interrupted", "{}", out.summary);
    assert!(out.stderr.contains("sync interrupted with"), "{}", out.stderr);
}
