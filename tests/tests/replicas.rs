//! Read replicas: a gateway given a streaming standby (`--read-database-url`)
//! answers REQ and COUNT from it, seen on the standby itself; a connection
//! reads its own writes while the standby lags; a subscription whose stored
//! part the standby answered gets every later event live exactly once, and
//! so does each of many subscriptions made while two gateways write (the
//! standby answering some, the primary the others); a standby past the lag
//! limit, or one of two stopped in the middle of a loop of REQs (then the
//! other too), leaves rotation with no REQ failing, and comes back; NIP-77
//! items are read on the standby too, and on the primary when it lags. Each
//! test makes a cluster of its own and standbys of it (`pg_basebackup -R`).
// Test helpers expect freely: a failed expectation is a failed test (the
// workspace's expect_used lint is for code clients and the database reach).
#![allow(clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use e2e::cluster::OwnCluster;
use e2e::relay::{http_get, ids, Client, Gateway, WAIT};
use e2e::{connect, now};
use nostr_pg_core::hex;
use nostr_pg_core::sign::Keys;
use serde_json::{json, Value};

/// Settings for the tests' gateways: checks every 100 ms, a 1 MiB lag
/// limit (a paused standby stays in rotation until that much WAL waits),
/// and rate limits out of the way of the REQ loops.
const CONFIG: &str = r#"
[limits]
reqs_per_second_per_ip = 1000000.0
req_burst_per_ip = 1000000.0
events_per_second_per_ip = 1000000.0
event_burst_per_ip = 1000000.0
events_per_second_per_pubkey = 1000000.0
event_burst_per_pubkey = 1000000.0
[replicas]
check_every_ms = 100
max_lag_bytes = 1048576
max_lag_ms = 600000
"#;

/// A config file in the temp dir, removed on drop.
struct ConfigFile(String);

impl ConfigFile {
    fn new(label: &str) -> ConfigFile {
        let path = std::env::temp_dir().join(format!("nostr_pg-{label}-{}.toml", std::process::id()));
        std::fs::write(&path, CONFIG).expect("write config");
        ConfigFile(path.to_string_lossy().into_owned())
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A primary, standbys of it, and a gateway reading from the standbys.
struct Setup {
    // Dropped in this order: the gateway goes before the clusters under it.
    gw: Gateway,
    primary: OwnCluster,
    /// The first standby (the one most tests look at).
    standby: OwnCluster,
    others: Vec<OwnCluster>,
    config: ConfigFile,
}

impl Setup {
    async fn new(label: &str) -> Setup {
        Setup::with_standbys(label, 1).await
    }

    async fn with_standbys(label: &str, n: usize) -> Setup {
        let primary = OwnCluster::start(&format!("{label}-primary"));
        let mut standbys: Vec<OwnCluster> = (0..n)
            .map(|i| primary.standby(&format!("{label}-standby{i}")))
            .collect();
        let config = ConfigFile::new(label);
        let mut args = vec!["--config".to_owned(), config.0.clone()];
        for standby in &standbys {
            args.extend(["--read-database-url".to_owned(), standby.url.clone()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let gw = Gateway::start(&primary.url, &args).await;
        let standby = standbys.remove(0);
        let setup = Setup {
            gw,
            primary,
            standby,
            others: standbys,
            config,
        };
        for standby in setup.standbys() {
            setup.wait_metric_of(standby, "nostr_gateway_replica_up", 1.0).await;
        }
        setup
    }

    fn standbys(&self) -> impl Iterator<Item = &OwnCluster> {
        std::iter::once(&self.standby).chain(&self.others)
    }

    /// `/metrics` as name{labels} -> value.
    async fn metrics(&self) -> HashMap<String, f64> {
        let (_, body) = http_get(&self.gw, "/metrics", "text/plain").await;
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' '))
            .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
            .collect()
    }

    /// A per-replica metric of `standby`.
    async fn metric_of(&self, standby: &OwnCluster, name: &str) -> f64 {
        let key = format!("{name}{{replica=\"127.0.0.1:{}\"}}", standby.port);
        *self
            .metrics()
            .await
            .get(&key)
            .unwrap_or_else(|| panic!("no {key} in /metrics"))
    }

    /// A per-replica metric of the first standby.
    async fn replica_metric(&self, name: &str) -> f64 {
        self.metric_of(&self.standby, name).await
    }

    async fn fallbacks(&self, reason: &str) -> f64 {
        let key = format!("nostr_gateway_replica_fallbacks_total{{reason=\"{reason}\"}}");
        *self
            .metrics()
            .await
            .get(&key)
            .unwrap_or_else(|| panic!("no {key} in /metrics"))
    }

    /// Waits until a per-replica metric of `standby` reaches `want` (the
    /// health checks run every 100 ms; the bound only limits a failure).
    async fn wait_metric_of(&self, standby: &OwnCluster, name: &str, want: f64) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let got = self.metric_of(standby, name).await;
            if got == want || (name.ends_with("_total") && got >= want) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} of port {} stayed {got}, wanted {want}",
                standby.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// [`Setup::wait_metric_of`] the first standby.
    async fn wait_metric(&self, name: &str, want: f64) {
        self.wait_metric_of(&self.standby, name, want).await;
    }

    /// Pauses the standby's replay at a point where no transaction of the
    /// primary is running (its snapshot then answers REQs exactly), after
    /// everything written so far.
    async fn pause_replay(&self) {
        let standby = connect(&self.standby.url).await;
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            self.primary.wait_replayed_by(&self.standby).await;
            standby
                .batch_execute("SELECT pg_wal_replay_pause()")
                .await
                .expect("pause");
            loop {
                let state: String = standby
                    .query_one("SELECT pg_get_wal_replay_pause_state()", &[])
                    .await
                    .expect("pause state")
                    .get(0);
                if state == "paused" {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let settled: bool = standby
                .query_one(
                    "SELECT pg_snapshot_xmin(s) = pg_snapshot_xmax(s) FROM pg_current_snapshot() s",
                    &[],
                )
                .await
                .expect("snapshot")
                .get(0);
            if settled {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "replay never paused settled");
            standby
                .batch_execute("SELECT pg_wal_replay_resume()")
                .await
                .expect("resume");
        }
    }

    async fn resume_replay(&self) {
        let standby = connect(&self.standby.url).await;
        standby
            .batch_execute("SELECT pg_wal_replay_resume()")
            .await
            .expect("resume");
        self.primary.wait_replayed_by(&self.standby).await;
    }
}

/// Calls of the statements matching `pattern` in `pg_stat_statements`.
async fn calls(url: &str, pattern: &str) -> i64 {
    connect(url)
        .await
        .query_one(
            "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements \
             WHERE query LIKE $1 AND query NOT LIKE '%pg_stat_statements%'",
            &[&pattern],
        )
        .await
        .expect("pg_stat_statements")
        .get(0)
}

fn id_of(e: &nostr_pg_core::Event) -> String {
    hex::encode(&e.id)
}

/// Publishes `n` kind-1 events tagged `tag`; their ids.
async fn publish_n(c: &mut Client, keys: &Keys, tag: &str, n: usize, from: usize) -> Vec<String> {
    let mut out = Vec::new();
    for i in from..from + n {
        let e = keys.sign(now(), 1, vec![vec!["t".into(), tag.into()]], &format!("{tag} {i}"));
        let ok = c.publish(&e.canonical_json()).await;
        assert_eq!(ok[2], true, "{ok}");
        out.push(id_of(&e));
    }
    out
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_answers_reads_and_live_delivery_stays_exact() {
    let s = Setup::new("replica-reads").await;
    let keys = Keys::from_seed("replica-reads");
    let tag = "replica-reads";
    let filter = json!({"kinds": [1], "#t": [tag], "limit": 500});
    let mut publisher = Client::connect(&s.gw.url).await;
    let first = publish_n(&mut publisher, &keys, tag, 5, 0).await;

    // Stored queries run on the standby, not the primary.
    s.pause_replay().await;
    let standby_reqs = calls(&s.standby.url, "%nostr.req_json%").await;
    let primary_reqs = calls(&s.primary.url, "%nostr.req_json%").await;
    let standby_counts = calls(&s.standby.url, "%nostr.count(%").await;
    let answered = s.replica_metric("nostr_gateway_replica_queries_total").await;
    let mut sub = Client::connect(&s.gw.url).await;
    let stored = sub.req("live", std::slice::from_ref(&filter)).await.expect("req");
    assert_eq!(
        sorted(ids(&stored)),
        sorted(first.clone()),
        "stored part from the standby"
    );
    let n = sub.count("n", std::slice::from_ref(&filter)).await.expect("count");
    assert_eq!(n, 5);
    assert_eq!(calls(&s.standby.url, "%nostr.req_json%").await, standby_reqs + 1);
    assert_eq!(calls(&s.standby.url, "%nostr.count(%").await, standby_counts + 1);
    assert_eq!(
        calls(&s.primary.url, "%nostr.req_json%").await,
        primary_reqs,
        "the primary ran no REQ"
    );
    assert_eq!(
        s.replica_metric("nostr_gateway_replica_queries_total").await,
        answered + 2.0
    );

    // Read-your-writes while the standby's replay is paused: each answer it
    // gives misses the new events, so the primary answers instead.
    let behind = s.fallbacks("behind").await;
    let mut second = Vec::new();
    for i in 0..5 {
        let mine = publish_n(&mut publisher, &keys, tag, 1, 5 + i).await;
        let got = publisher
            .req(&format!("ryw{i}"), &[json!({"ids": mine.clone()})])
            .await
            .expect("req");
        assert_eq!(
            ids(&got),
            mine,
            "a connection reads the event it was just told OK about"
        );
        second.extend(mine);
    }
    let n = publisher
        .count("n", std::slice::from_ref(&filter))
        .await
        .expect("count");
    assert_eq!(n, 10, "COUNT reads the writes too");
    assert_eq!(s.fallbacks("behind").await, behind + 6.0);

    // The subscription whose stored part came from the standby gets each
    // later event live, once: everything up to the marker, nothing twice.
    let marker = publish_n(&mut publisher, &keys, tag, 1, 99).await;
    let mut live = Vec::new();
    loop {
        let e = sub.next_event("live").await;
        let id = e["id"].as_str().expect("id").to_owned();
        let done = id == marker[0];
        live.push(id);
        if done {
            break;
        }
    }
    let mut want = second.clone();
    want.extend(marker.clone());
    assert_eq!(
        live, want,
        "live part: every event after the stored part, once, in order"
    );
    assert!(
        sub.try_recv(Duration::from_millis(200)).await.is_none(),
        "nothing after the marker"
    );

    // Caught up again, the standby answers with everything.
    s.resume_replay().await;
    let answered = s.replica_metric("nostr_gateway_replica_queries_total").await;
    let all = sub.req("all", std::slice::from_ref(&filter)).await.expect("req");
    assert_eq!(all.len(), 11);
    assert_eq!(
        s.replica_metric("nostr_gateway_replica_queries_total").await,
        answered + 1.0
    );

    // Past the lag limit the standby leaves rotation; REQs go on; it comes
    // back once it has caught up.
    s.pause_replay().await;
    connect(&s.primary.url)
        .await
        .batch_execute("CREATE TABLE public.filler AS SELECT repeat('x', 1000) AS x FROM generate_series(1, 4000)")
        .await
        .expect("write 4 MB of WAL");
    s.wait_metric("nostr_gateway_replica_up", 0.0).await;
    assert!(s.replica_metric("nostr_gateway_replica_lag_bytes").await > 1_048_576.0);
    let none_up = s.fallbacks("none_up").await;
    let all = sub.req("lagging", std::slice::from_ref(&filter)).await.expect("req");
    assert_eq!(all.len(), 11);
    assert_eq!(s.fallbacks("none_up").await, none_up + 1.0);
    s.resume_replay().await;
    s.wait_metric("nostr_gateway_replica_up", 1.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standbys_stopped_mid_load_fail_no_req() {
    let s = Arc::new(Setup::with_standbys("replica-stop", 2).await);
    let (a, b) = (&s.standby, &s.others[0]);
    let keys = Keys::from_seed("replica-stop");
    let tag = "replica-stop";
    let mut publisher = Client::connect(&s.gw.url).await;
    let events = publish_n(&mut publisher, &keys, tag, 3, 0).await;
    for standby in s.standbys() {
        s.primary.wait_replayed_by(standby).await;
    }

    // A loop of REQs (each closed after EOSE) until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let looping = {
        let (url, stop, done, want) = (s.gw.url.clone(), Arc::clone(&stop), Arc::clone(&done), sorted(events));
        tokio::spawn(async move {
            let mut c = Client::connect(&url).await;
            let mut failures: Vec<Value> = Vec::new();
            let filter = json!({"kinds": [1], "#t": [tag]});
            while !stop.load(SeqCst) {
                let sub = format!("r{}", done.load(SeqCst));
                match c.req(&sub, std::slice::from_ref(&filter)).await {
                    Ok(got) if sorted(ids(&got)) == want => {}
                    Ok(got) => failures.push(json!({"wrong answer": got})),
                    Err(closed) => failures.push(closed),
                }
                c.send(&json!(["CLOSE", sub])).await;
                done.fetch_add(1, SeqCst);
            }
            failures
        })
    };
    let wait_reqs = |n: usize| {
        let done = Arc::clone(&done);
        async move {
            let deadline = tokio::time::Instant::now() + WAIT;
            while done.load(SeqCst) < n {
                assert!(tokio::time::Instant::now() < deadline, "the REQ loop stalled");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    let ctl = |which: usize, cmd: &'static str| {
        let s = Arc::clone(&s);
        async move {
            tokio::task::spawn_blocking(move || [&s.standby, &s.others[0]][which].ctl(cmd))
                .await
                .expect("cluster.sh");
        }
    };
    let queries = "nostr_gateway_replica_queries_total";
    let primary_stood_in = || async { s.fallbacks("error").await + s.fallbacks("none_up").await };

    // Both standbys serve the loop in turn.
    s.wait_metric_of(a, queries, 10.0).await;
    s.wait_metric_of(b, queries, 10.0).await;

    // One stops under the loop: the other answers everything, the REQs in
    // flight on the stopped one included; the primary is not needed.
    ctl(0, "stop").await;
    s.wait_metric_of(a, "nostr_gateway_replica_up", 0.0).await;
    let (b_before, primary_before) = (s.metric_of(b, queries).await, primary_stood_in().await);
    wait_reqs(done.load(SeqCst) + 30).await;
    assert!(
        s.metric_of(b, queries).await >= b_before + 1.0,
        "the other standby answered"
    );
    assert_eq!(primary_stood_in().await, primary_before, "no REQ needed the primary");

    // Both gone: the primary answers.
    ctl(1, "stop").await;
    s.wait_metric_of(b, "nostr_gateway_replica_up", 0.0).await;
    wait_reqs(done.load(SeqCst) + 30).await;
    assert!(primary_stood_in().await > primary_before, "the primary stood in");

    // Restarted, both are put back in rotation and serve again.
    ctl(0, "start").await;
    ctl(1, "start").await;
    for standby in [a, b] {
        s.wait_metric_of(standby, "nostr_gateway_replica_up", 1.0).await;
        let answered = s.metric_of(standby, queries).await;
        s.wait_metric_of(standby, queries, answered + 10.0).await;
    }
    stop.store(true, SeqCst);
    let failures = looping.await.expect("REQ loop");
    eprintln!(
        "{} REQs, {} answered by the primary while the standbys were away",
        done.load(SeqCst),
        primary_stood_in().await
    );
    assert!(failures.is_empty(), "failed REQs: {failures:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_made_while_two_gateways_write_get_each_event_once() {
    let s = Setup::new("replica-race").await;
    // A second gateway on the primary only: its commits reach the first one
    // through LISTEN, later than through its own publisher.
    let other = Gateway::start(&s.primary.url, &["--config", &s.config.0]).await;
    let tag = "replica-race";
    const N: usize = 100;
    const SUBS: usize = 20;
    let progress = Arc::new(AtomicUsize::new(0));
    let writer = |url: String, seed: &'static str| {
        let progress = Arc::clone(&progress);
        tokio::spawn(async move {
            let keys = Keys::from_seed(seed);
            let mut c = Client::connect(&url).await;
            let mut all = Vec::new();
            for i in 0..N {
                all.extend(publish_n(&mut c, &keys, tag, 1, i).await);
                progress.fetch_add(1, SeqCst);
            }
            all
        })
    };
    // The markers are the writers' last events, known in advance only by
    // position: subscribers wait for them by id once the writers are done,
    // so each subscriber learns them through a channel.
    let (markers_tx, markers_rx) = tokio::sync::watch::channel(None::<[String; 2]>);
    let a = writer(s.gw.url.clone(), "race-a");
    let b = writer(other.url.clone(), "race-b");
    let mut subs = Vec::new();
    for i in 0..SUBS {
        // Spread over the writing: each waits for its share of progress.
        let deadline = tokio::time::Instant::now() + WAIT;
        while progress.load(SeqCst) < i * 2 * N / SUBS {
            assert!(tokio::time::Instant::now() < deadline, "writers stalled");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let (url, mut rx) = (s.gw.url.clone(), markers_rx.clone());
        subs.push(tokio::spawn(async move {
            let mut c = Client::connect(&url).await;
            let stored = c
                .req("s", &[json!({"kinds": [1], "#t": [tag], "limit": 500})])
                .await
                .expect("req");
            let mut got = ids(&stored);
            let n_stored = got.len();
            let markers = rx
                .wait_for(Option::is_some)
                .await
                .expect("markers")
                .clone()
                .expect("set");
            while !markers.iter().all(|m| got.contains(m)) {
                got.push(c.next_event("s").await["id"].as_str().expect("id").to_owned());
            }
            (got, n_stored)
        }));
    }
    let (a, b) = (a.await.expect("writer a"), b.await.expect("writer b"));
    let last = |v: &Vec<String>| v.last().cloned().expect("events");
    markers_tx.send_replace(Some([last(&a), last(&b)]));
    let want = sorted(a.iter().chain(&b).cloned().collect());
    for (i, sub) in subs.into_iter().enumerate() {
        let (got, n_stored) = sub.await.expect("subscriber");
        let mut seen = std::collections::HashSet::new();
        let twice: Vec<&String> = got.iter().filter(|id| !seen.insert(*id)).collect();
        assert!(
            twice.is_empty(),
            "subscriber {i} got {} events twice: {twice:?}",
            twice.len()
        );
        assert_eq!(
            sorted(got.clone()),
            want,
            "subscriber {i} ({n_stored} stored) missed events"
        );
    }
    let answered = s.replica_metric("nostr_gateway_replica_queries_total").await;
    let mut why = Vec::new();
    for reason in ["behind", "unsettled", "error", "none_up"] {
        why.push(format!("{reason} {}", s.fallbacks(reason).await));
    }
    eprintln!(
        "{SUBS} REQs while writing: {answered} answered by the standby; primary: {}",
        why.join(", ")
    );
}

/// A NIP-77 reconciliation from an empty client set: the ids the relay
/// says the client needs.
async fn neg_need(c: &mut Client, sub: &str, filter: &Value) -> Vec<String> {
    use negentropy::{Negentropy, NegentropyStorageVector};
    let mut storage = NegentropyStorageVector::new();
    storage.seal().expect("seal");
    let mut neg = Negentropy::owned(storage, 0).expect("negentropy");
    let first = neg.initiate().expect("initiate");
    c.send(&json!(["NEG-OPEN", sub, filter, ::hex::encode(first)])).await;
    let mut need = Vec::new();
    loop {
        let f = c.recv().await;
        assert_eq!(f[0], "NEG-MSG", "{f}");
        let bytes = ::hex::decode(f[2].as_str().expect("hex")).expect("hex");
        let (mut have, mut missing) = (Vec::new(), Vec::new());
        let next = neg
            .reconcile_with_ids(&bytes, &mut have, &mut missing)
            .expect("reconcile");
        need.extend(missing.iter().map(|id| hex::encode(&**id)));
        match next {
            Some(msg) => c.send(&json!(["NEG-MSG", sub, ::hex::encode(msg)])).await,
            None => break,
        }
    }
    c.send(&json!(["NEG-CLOSE", sub])).await;
    need
}

/// NIP-77 reads go where COUNT goes: a NEG-OPEN's items come from the
/// standby when it has replayed what the gateway acknowledged, and from the
/// primary (counted as `behind`) when it has not, so a reconciliation never
/// misses an event the client was told OK about.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negentropy_reads_on_the_replica_unless_it_is_behind() {
    let s = Setup::new("replica-neg").await;
    let keys = Keys::from_seed("replica-neg");
    let tag = "replica-neg";
    let filter = json!({"kinds": [1], "#t": [tag]});
    let mut c = Client::connect(&s.gw.url).await;
    let mut first = publish_n(&mut c, &keys, tag, 6, 0).await;
    s.pause_replay().await;
    // The NIP-77 item query (gateway/src/db/sql/neg_items.sql).
    let pattern = "%SELECT created_at, id FROM nostr.events%";
    let on_standby = calls(&s.standby.url, pattern).await;
    let on_primary = calls(&s.primary.url, pattern).await;
    let answered = s.replica_metric("nostr_gateway_replica_queries_total").await;
    let need = neg_need(&mut c, "n1", &filter).await;
    assert_eq!(sorted(need), sorted(first.clone()), "everything, from the standby");
    assert_eq!(calls(&s.standby.url, pattern).await, on_standby + 1);
    assert_eq!(
        calls(&s.primary.url, pattern).await,
        on_primary,
        "the primary read no items"
    );
    assert_eq!(
        s.replica_metric("nostr_gateway_replica_queries_total").await,
        answered + 1.0
    );

    // The standby is paused: it lacks the new event, so the primary answers.
    let behind = s.fallbacks("behind").await;
    first.extend(publish_n(&mut c, &keys, tag, 1, 6).await);
    let need = neg_need(&mut c, "n2", &filter).await;
    assert_eq!(sorted(need), sorted(first), "the event just acknowledged is in");
    assert_eq!(s.fallbacks("behind").await, behind + 1.0);
    assert_eq!(calls(&s.primary.url, pattern).await, on_primary + 1);
    s.resume_replay().await;
}
