//! Faults under load: no event that got `OK true` is ever lost.
//!
//! - `kill -9` of the gateway while clients publish at full speed;
//! - `kill -9` of the Postgres postmaster while clients publish (on a cluster
//!   of this test's own), then a restart: the same gateway recovers by itself;
//! - a statement timeout inside a batch (a concurrent SQL transaction holds
//!   the event's lock);
//! - a write failing with SQLSTATE 53100 (disk full) inside a batch, raised
//!   by a trigger on the tag index table: a real full disk is not simulated
//!   here (it needs a mount), the error path the gateway sees is the same.
//!
//! Counts are fixed, waits bounded; each scenario prints acked vs stored.
// Test helpers expect freely: a failed expectation is a failed test (the
// workspace's expect_used lint is for code clients and the database reach).
#![allow(clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::cluster::OwnCluster;
use e2e::relay::{Client, Gateway};
use e2e::{now, TestDb};
use nostr_pg_core::hex;
use nostr_pg_core::sign::{tags, Keys};
use serde_json::{json, Value};
use support::*;

/// What the publishing clients saw.
#[derive(Default)]
struct Tally {
    acked: HashSet<String>,
    /// When each `OK true` arrived.
    ack_times: Vec<Instant>,
    errors: usize,
    other_refusals: Vec<String>,
    sent: usize,
}

type Shared = Arc<Mutex<Tally>>;

fn tally(shared: &Shared) -> std::sync::MutexGuard<'_, Tally> {
    shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Pre-signs `per_client` events for each of `clients` authors, on the
/// blocking pool (signing is the slow part of a debug build).
async fn presign(label: &str, clients: usize, per_client: usize) -> Vec<Vec<(String, String)>> {
    let mut jobs = Vec::new();
    for c in 0..clients {
        let label = format!("{label}-{c}");
        jobs.push(tokio::task::spawn_blocking(move || {
            let keys = Keys::from_seed(&label);
            let t = now();
            (0..per_client)
                .map(|i| {
                    let e = keys.sign(t - (i as i64 % 600), 1, vec![], &format!("{label} {i}"));
                    (hex::encode(&e.id), e.canonical_json())
                })
                .collect::<Vec<_>>()
        }));
    }
    let mut out = Vec::new();
    for j in jobs {
        out.push(j.await.expect("signing task"));
    }
    out
}

/// One client publishing at full speed: `window` EVENTs in flight, every
/// `error:` answer retried (as a real client would) until `stop` or the
/// connection is lost. Returns when every event was acked.
async fn publish_all(url: String, events: Vec<(String, String)>, window: usize, shared: Shared, stop: Arc<AtomicBool>) {
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(&url).await else {
        return;
    };
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let mut pending: std::collections::VecDeque<(String, String)> = events.into();
    while !pending.is_empty() && !stop.load(Ordering::Relaxed) {
        let round: Vec<(String, String)> = (0..window).filter_map(|_| pending.pop_front()).collect();
        for (_, json) in &round {
            if ws.send(Message::text(format!(r#"["EVENT",{json}]"#))).await.is_err() {
                return;
            }
        }
        tally(&shared).sent += round.len();
        let mut waiting: HashSet<&str> = round.iter().map(|(id, _)| id.as_str()).collect();
        let mut retry = false;
        while !waiting.is_empty() {
            let msg = match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => t,
                Ok(Some(Ok(_))) => continue,
                _ => return, // connection lost (gateway killed) or stuck
            };
            let f: Value = match serde_json::from_str(msg.as_str()) {
                Ok(v) => v,
                Err(_) => continue,
            };
            if f[0] != "OK" {
                continue;
            }
            let id = f[1].as_str().unwrap_or_default().to_owned();
            let Some(&key) = waiting.get(id.as_str()) else { continue };
            waiting.remove(key);
            let message = f[3].as_str().unwrap_or_default();
            let mut t = tally(&shared);
            if f[2] == true {
                t.acked.insert(id);
                t.ack_times.push(Instant::now());
            } else if message.starts_with("error:") {
                t.errors += 1;
                retry = true;
                if let Some(e) = round.iter().find(|(i, _)| *i == id) {
                    pending.push_back(e.clone());
                }
            } else {
                t.other_refusals.push(message.to_owned());
            }
        }
        if retry {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn stored_ids(db: &tokio_postgres::Client) -> HashSet<String> {
    db.query("SELECT encode(id, 'hex') FROM nostr.events", &[])
        .await
        .expect("stored ids")
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

/// Every id is served by a REQ on `gw` (asked for in chunks).
async fn served(gw_url: &str, ids: &HashSet<String>) -> usize {
    let mut c = Client::connect(gw_url).await;
    let list: Vec<&String> = ids.iter().collect();
    let mut n = 0;
    for (i, chunk) in list.chunks(400).enumerate() {
        let got = c
            .req(&format!("chk{i}"), &[json!({"ids": chunk, "limit": 500})])
            .await
            .expect("req");
        n += got.len();
    }
    n
}

async fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn kill9(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -9 {pid}");
}

#[tokio::test]
async fn kill_9_of_the_gateway_loses_no_acknowledged_event() {
    const CLIENTS: usize = 4;
    const PER_CLIENT: usize = 1500;
    let db = TestDb::new("kill_gateway").await;
    let config = ConfigFile::new(UNLIMITED);
    let gw = Gateway::start(&db.url, &["--config", &config.arg()]).await;
    let events = presign("kill-gw", CLIENTS, PER_CLIENT).await;
    let shared = Shared::default();
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = start_publishers(&gw.url, events, &shared, &stop);
    wait_for("1000 acks", Duration::from_secs(120), || {
        tally(&shared).acked.len() >= 1000
    })
    .await;
    kill9(gw.pid().expect("gateway pid"));
    let killed_at = Instant::now();
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("client ends")
            .expect("client task");
    }
    let (acked, sent) = {
        let t = tally(&shared);
        (t.acked.clone(), t.sent)
    };
    let stored = stored_ids(&db.client().await).await;
    let lost: Vec<&String> = acked.difference(&stored).collect();
    let gw2 = Gateway::start(&db.url, &["--config", &config.arg()]).await;
    let served_n = served(&gw2.url, &acked).await;
    println!(
        "kill -9 gateway: sent {sent}, acked {}, stored {}, stored without an ack (in flight at the kill) {}, \
         acked but lost {}, served by a new gateway {served_n}/{} ({:?} after the kill)",
        acked.len(),
        stored.len(),
        stored.difference(&acked).count(),
        lost.len(),
        acked.len(),
        killed_at.elapsed()
    );
    assert!(lost.is_empty(), "acknowledged events lost: {lost:?}");
    assert_eq!(served_n, acked.len());
}

#[tokio::test]
async fn kill_9_of_postgres_loses_no_acknowledged_event_and_the_gateway_recovers() {
    const CLIENTS: usize = 4;
    const PER_CLIENT: usize = 1200;
    let own = OwnCluster::start("kill-pg");
    let url = own.url.clone();
    let config = ConfigFile::new(&format!(
        "{UNLIMITED}[database]\nconnect_timeout_ms = 2000\nacquire_timeout_ms = 2000\n"
    ));
    let gw = Gateway::start(&url, &["--config", &config.arg()]).await;
    let events = presign("kill-pg", CLIENTS, PER_CLIENT).await;
    let total = CLIENTS * PER_CLIENT;
    let shared = Shared::default();
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = start_publishers(&gw.url, events, &shared, &stop);
    wait_for("1000 acks", Duration::from_secs(120), || {
        tally(&shared).acked.len() >= 1000
    })
    .await;
    kill9(own.postmaster_pid());
    let killed_at = Instant::now();
    let acked_at_kill = tally(&shared).acked.len();
    // Orphaned backends exit once they notice; until then a new postmaster
    // refuses to start (shared memory still in use).
    let deadline = Instant::now() + Duration::from_secs(60);
    let restarted_at = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        match e2e::cluster::run("start", &own.dir, own.port) {
            Ok(_) => break Instant::now(),
            Err(e) => assert!(Instant::now() < deadline, "postgres did not restart: {e}"),
        }
    };
    let errors_during_outage = tally(&shared).errors;
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(180), t)
            .await
            .expect("clients finish")
            .expect("client task");
    }
    let (acked, sent, errors, refusals, first_ack_after) = {
        let t = tally(&shared);
        let first = t.ack_times.iter().filter(|at| **at > restarted_at).min().copied();
        (t.acked.clone(), t.sent, t.errors, t.other_refusals.clone(), first)
    };
    let db = e2e::connect(&url).await;
    let stored = stored_ids(&db).await;
    let lost: Vec<&String> = acked.difference(&stored).collect();
    let served_n = served(&gw.url, &acked).await;
    let recovery = first_ack_after.map(|t| t.duration_since(restarted_at));
    println!(
        "kill -9 postmaster: {total} events, sent {sent} (with retries), acked before the kill {acked_at_kill}, \
         error: answers {errors} ({errors_during_outage} by the restart), acked {}, stored {}, acked but lost {}, \
         served by the same gateway {served_n}; postgres back {:?} after the kill, first OK true {:?} after that",
        acked.len(),
        stored.len(),
        lost.len(),
        restarted_at.duration_since(killed_at),
        recovery
    );
    assert!(lost.is_empty(), "acknowledged events lost: {lost:?}");
    // Retried events committed before the crash come back `duplicate:`, which
    // is an `OK true` too: every event ends acknowledged, none refused.
    assert!(refusals.is_empty(), "{refusals:?}");
    assert_eq!(acked.len(), total);
    assert_eq!(stored.len(), total);
    assert_eq!(served_n, acked.len());
    assert!(recovery.is_some(), "the gateway never acked again after the restart");
    drop(gw);
    drop(own);
}

async fn gateway_waiting_on_a_lock(admin: &tokio_postgres::Client, db: &str) -> bool {
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 \
             AND application_name = 'nostr_pg_gateway' AND wait_event_type = 'Lock'",
            &[&db],
        )
        .await
        .map(|r| r.get::<_, i64>(0) > 0)
        .unwrap_or(false)
}

/// A batch stuck behind a lock ends at `statement_timeout`: its client gets
/// `error:`, nothing of the batch is stored, clients in other batches are
/// served meanwhile, and the event goes through once the lock is gone.
#[tokio::test]
async fn statement_timeout_inside_a_batch() {
    let db = TestDb::new("batch_timeout").await;
    let admin = db.client().await;
    let config = ConfigFile::new(&format!("{UNLIMITED}[database]\nstatement_timeout_ms = 3000\n"));
    let gw = Gateway::start(&db.url, &["--config", &config.arg()]).await;
    let keys = Keys::from_seed("batch-timeout");
    let contested = keys.sign(now(), 1, vec![], "contested");
    // A concurrent importer inserted the same event and has not committed:
    // it holds the event's lock.
    let importer = db.client().await;
    importer.batch_execute("BEGIN").await.expect("begin");
    importer
        .execute(
            "INSERT INTO nostr.events (event) VALUES ($1::text::nostr.nostr_event)",
            &[&contested.canonical_json()],
        )
        .await
        .expect("importer insert");

    let mut a = Client::connect(&gw.url).await;
    a.send_text(&format!(r#"["EVENT",{}]"#, contested.canonical_json()))
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gateway_waiting_on_a_lock(&admin, &db.name).await {
        assert!(Instant::now() < deadline, "the batch never blocked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Others publish while that batch waits.
    let mut b = Client::connect(&gw.url).await;
    for i in 0..20 {
        let f = b
            .publish(&keys.sign(now(), 1, vec![], &format!("bystander {i}")).canonical_json())
            .await;
        assert_eq!(f[2], true, "bystander {i}: {f}");
    }
    let f = a.recv().await;
    assert_eq!(f[0], "OK");
    assert_eq!(f[2], false, "{f}");
    assert!(f[3].as_str().unwrap_or_default().starts_with("error: "), "{f}");
    // No partial state: only the bystanders are visible.
    assert_eq!(event_count(&admin).await, 20);
    importer.batch_execute("ROLLBACK").await.expect("rollback");
    let f = a.publish(&contested.canonical_json()).await;
    assert_eq!(f[2], true, "after the lock is gone: {f}");
    assert_eq!(event_count(&admin).await, 21);
    println!(
        "statement timeout in a batch: contested event got {}, 20/20 bystanders acked meanwhile",
        f[3]
    );
}

/// A write failure (SQLSTATE 53100, as a full disk raises it) in the middle
/// of a batch: the statement rolls back whole, the gateway retries the
/// batch's events one by one, so only the event that cannot be written gets
/// `error:` and its batch-mates are stored.
#[tokio::test]
async fn disk_full_inside_a_batch() {
    let db = TestDb::new("disk_full").await;
    let admin = db.client().await;
    admin
        .batch_execute(
            "CREATE FUNCTION public.fake_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.tag = 't:diskfull' THEN
                     RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full';
                 END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER fake_disk_full BEFORE INSERT ON nostr.event_tags
                 FOR EACH ROW EXECUTE FUNCTION public.fake_disk_full();",
        )
        .await
        .expect("trigger");
    // One batch of exactly these 11 events: it closes when the 11th arrives
    // (the window is only a bound on a failure).
    let config = ConfigFile::new(&format!(
        "{UNLIMITED}[publish]\nbatch_window_us = 30000000\nbatch_max_events = 11\n"
    ));
    let gw = Gateway::start(&db.url, &["--config", &config.arg()]).await;
    let keys = Keys::from_seed("disk-full");
    let mut c = Client::connect(&gw.url).await;
    let mut events: Vec<_> = (0..10)
        .map(|i| keys.sign(now(), 1, tags(&[&["t", "ok"]]), &format!("fine {i}")))
        .collect();
    let poison = keys.sign(now(), 1, tags(&[&["t", "diskfull"]]), "cannot be written");
    events.insert(5, poison.clone());
    for e in &events {
        c.send_text(&format!(r#"["EVENT",{}]"#, e.canonical_json())).await;
    }
    let mut answers = std::collections::HashMap::new();
    while answers.len() < events.len() {
        let f = c.recv().await;
        if f[0] == "OK" {
            answers.insert(
                f[1].as_str().unwrap_or_default().to_owned(),
                (f[2] == true, f[3].as_str().unwrap_or_default().to_owned()),
            );
        }
    }
    // The batch of 11 failed whole, then each event went alone: 12 calls,
    // 11 + 11 events.
    let batches = metric(&gw.http_url(), "nostr_gateway_publish_batch_size_count").await;
    let events_sent = metric(&gw.http_url(), "nostr_gateway_publish_batch_size_sum").await;
    assert_eq!(
        (batches, events_sent),
        (12.0, 22.0),
        "publish_batch calls and events sent"
    );
    for e in &events {
        let (ok, msg) = &answers[&hex::encode(&e.id)];
        if e.id == poison.id {
            assert!(
                !ok && msg.starts_with("error: ") && msg.contains("No space left"),
                "{msg}"
            );
        } else {
            assert!(ok, "batch-mate refused: {msg}");
        }
    }
    assert_eq!(event_count(&admin).await, 10);
    let tag_rows: i64 = admin
        .query_one("SELECT count(*) FROM nostr.event_tags", &[])
        .await
        .expect("tags")
        .get(0);
    assert_eq!(tag_rows, 10, "no tag row of the poisoned event survived");
    println!("disk full in a batch: 1 error:, 10/10 batch-mates stored ({batches} publish_batch calls)");
}

/// One publishing task per client, 64 events in flight each, until `stop`.
fn start_publishers(
    url: &str,
    events: Vec<Vec<(String, String)>>,
    shared: &Shared,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    events
        .into_iter()
        .map(|ev| tokio::spawn(publish_all(url.to_owned(), ev, 64, shared.clone(), Arc::clone(stop))))
        .collect()
}
