//! Gateways on separate hosts: a database host and three gateway hosts in
//! network namespaces (`e2e::netns`), each gateway on an address of its own
//! and reached by the test's clients over a link of its own. An event
//! published on any gateway reaches the subscribers of all three. Then
//! gateway 3's database link is cut (taken down, so its connections go
//! half-open as in a real network cut) and later restored: meanwhile
//! gateways 1 and 2 keep publishing and delivering, and gateway 3 answers
//! its own clients with `error:` (an EVENT, a REQ) instead of holding them
//! on half-open connections; afterwards gateway 3's subscribers have every
//! event accepted in between, once, and gateway 3 publishes again. Gateways 1 and 2 reach the database through relays
//! that delay each direction by 5 ms, so delivery also crosses latency
//! (nothing is timed here; `tests/bench/hosts.sh` measures it).
//!
//! Needs root and iproute2 (`ip netns`). Without them the test fails and
//! says so; with `NOSTR_PG_NETNS=skip` it prints that it skips instead.
// Test helpers expect freely: a failed expectation is a failed test (the
// workspace's expect_used lint is for code clients and the database reach).
#![allow(clippy::expect_used)]

mod support;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use e2e::multihost::{Plan, Site};
use e2e::netns::Unavailable;
use e2e::now;
use e2e::relay::{Client, Gateway, WAIT};
use nostr_pg_core::hex;
use nostr_pg_core::sign::Keys;
use serde_json::{json, Value};

const TAG: &str = "hosts";

/// Ends the test when the machine cannot make namespaces: a failure that
/// says why, or with `NOSTR_PG_NETNS=skip` a printed skip.
fn unavailable(why: &str) {
    if std::env::var("NOSTR_PG_NETNS").as_deref() == Ok("skip") {
        eprintln!("SKIPPED: gateways on separate hosts (tests/tests/hosts.rs): {why} (NOSTR_PG_NETNS=skip)");
        return;
    }
    panic!(
        "gateways on separate hosts need network namespaces: {why}. Run the tests as root with \
         iproute2, or set NOSTR_PG_NETNS=skip to skip this test"
    );
}

/// A live subscription to every kind-1 event tagged [`TAG`], and the ids it
/// was sent, in order.
struct Sub {
    client: Client,
    got: Vec<String>,
}

impl Sub {
    async fn open(gw: &Gateway) -> Sub {
        let mut client = Client::connect(&gw.url).await;
        let stored = client
            .req("live", &[json!({"kinds": [1], "#t": [TAG]})])
            .await
            .expect("REQ answered with EOSE");
        Sub {
            client,
            got: e2e::relay::ids(&stored),
        }
    }

    /// Reads live events until every one of `ids` has arrived; a CLOSED (a
    /// gap told rather than filled) fails the test: the cuts here last
    /// seconds, far less than the transit rows are kept, so every gap can
    /// be filled.
    async fn until(&mut self, ids: &[String]) {
        while !ids.iter().all(|id| self.got.contains(id)) {
            let f = self.client.recv().await;
            match f[0].as_str() {
                Some("EVENT") if f[1] == "live" => {
                    self.got.push(f[2]["id"].as_str().expect("id").to_owned());
                }
                Some("CLOSED") => panic!("subscription ended: {f}"),
                _ => {}
            }
        }
    }
}

/// A new event of ours, its id, and the EVENT frame.
fn event(keys: &Keys, n: &mut usize) -> (String, String) {
    *n += 1;
    let e = keys.sign(now(), 1, vec![vec!["t".into(), TAG.into()]], &format!("event {n}"));
    (hex::encode(&e.id), format!(r#"["EVENT",{}]"#, e.canonical_json()))
}

/// Publishes a new event and checks it was accepted; its id.
async fn publish(c: &mut Client, keys: &Keys, n: &mut usize) -> String {
    let (id, frame) = event(keys, n);
    c.send_text(&frame).await;
    let ok = next_ok(c).await;
    assert_eq!(ok, json!(["OK", id, true, ""]), "accepted");
    id
}

async fn next_ok(c: &mut Client) -> Value {
    loop {
        let f = c.recv().await;
        if f[0] == "OK" {
            return f;
        }
    }
}

/// Runs REQs on `gw` from several clients at once until its pool holds at
/// least `n` connections (each stored query takes one while it runs).
async fn grow_pool(gw: &Gateway, n: usize) {
    let mut clients = Vec::new();
    for _ in 0..2 * n {
        clients.push(Client::connect(&gw.url).await);
    }
    for round in 0..100 {
        let open = support::metric(&gw.http_url(), "nostr_gateway_pool_connections").await;
        if open >= n as f64 {
            return;
        }
        let filter = json!({"kinds": [1], "#t": [TAG]});
        let reqs = clients.iter_mut().map(|c| {
            let filter = filter.clone();
            async move { c.req(&format!("grow{round}"), &[filter]).await }
        });
        for r in futures_util::future::join_all(reqs).await {
            r.expect("REQ answered");
        }
    }
    panic!("gateway's pool never grew to {n} connections");
}

async fn listen_connected(gw: &Gateway) -> f64 {
    support::metric(&gw.http_url(), "nostr_gateway_listen_connected").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_on_three_hosts_and_a_cut_link() {
    let plan = Plan {
        delays_ms: &[5, 5, 0],
        config: support::UNLIMITED,
        relay_bin: Path::new(env!("CARGO_BIN_EXE_delay_relay")),
    };
    let site = match Site::start(&plan).await {
        Ok(site) => site,
        Err(Unavailable(why)) => return unavailable(&why),
    };
    let keys = Keys::from_seed("hosts");
    let mut n = 0;
    let mut subs = Vec::new();
    let mut clients = Vec::new();
    for i in 1..=3 {
        subs.push(Sub::open(site.gateway(i)).await);
        clients.push(Client::connect(&site.gateway(i).url).await);
    }
    let [c1, c2, c3] = &mut clients[..] else {
        unreachable!("three clients")
    };
    // Every event answered OK true: each subscription must get each once.
    let mut accepted = Vec::new();

    // Published on each gateway in turn, delivered on all three.
    for c in [&mut *c1, &mut *c2, &mut *c3] {
        let id = publish(c, &keys, &mut n).await;
        for s in &mut subs {
            s.until(std::slice::from_ref(&id)).await;
        }
        accepted.push(id);
    }

    // Gateway 3 holds idle pooled connections, which the cut leaves
    // half-open: a request sent on one gets no answer and no error.
    grow_pool(site.gateway(3), 3).await;
    let mut probe = Client::connect(&site.gateway(3).url).await;

    // Gateway 3 loses its database link.
    site.hosts.cut(3);
    // An EVENT sent to gateway 3 now goes out on a half-open connection.
    let (stranded, frame) = event(&keys, &mut n);
    c3.send_text(&frame).await;
    // Gateways 1 and 2 publish and deliver to each other's subscribers as
    // before, until gateway 3 has noticed (its LISTEN check-in went
    // unanswered), and a little after.
    let (s12, s3) = subs.split_at_mut(2);
    let deadline = tokio::time::Instant::now() + 2 * WAIT;
    let mut after_noticed = 0;
    while after_noticed < 3 {
        for c in [&mut *c1, &mut *c2] {
            let id = publish(c, &keys, &mut n).await;
            for s in s12.iter_mut() {
                s.until(std::slice::from_ref(&id)).await;
            }
            accepted.push(id);
        }
        if after_noticed > 0 || listen_connected(site.gateway(3)).await == 0.0 {
            after_noticed += 1;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gateway 3 never noticed that its database link was down"
        );
    }
    let reconnects = support::metric(&site.gateway(3).http_url(), "nostr_gateway_listen_reconnects_total").await;

    // Gateway 3 answers its clients while cut off, rather than holding them
    // until the link is back (TCP alone gives up after about 15 minutes):
    // the EVENT and a REQ (which meets another half-open connection first).
    let ok = next_ok(c3).await;
    assert_eq!(ok[1], stranded, "{ok}");
    // An EVENT the gateway could not settle is answered `error:` (it may
    // still have committed: it is then delivered, at most once); one
    // answered OK true must be delivered like any other.
    let stranded_accepted = ok[2] == true;
    if stranded_accepted {
        accepted.push(stranded.clone());
    } else {
        let msg = ok[3].as_str().unwrap_or_default();
        assert!(msg.starts_with("error: "), "{ok}");
    }
    let refused = probe
        .req("cut", &[json!({"kinds": [1], "#t": [TAG]})])
        .await
        .expect_err("no stored events while cut off");
    assert_eq!(refused[0], "CLOSED", "{refused}");
    assert!(
        refused[2].as_str().unwrap_or_default().starts_with("error: "),
        "{refused}"
    );

    // Back: gateway 3 reconnects and its subscribers get what they missed.
    site.hosts.restore(3);
    s3[0].until(&accepted).await;
    // What it missed can only have come from a new LISTEN session's check-in.
    assert!(
        support::metric(&site.gateway(3).http_url(), "nostr_gateway_listen_reconnects_total").await > reconnects,
        "gateway 3 listens again"
    );
    assert_eq!(listen_connected(site.gateway(3)).await, 1.0);

    // Gateway 3 publishes again, to all; then a last event from gateway 1
    // closes every subscription's account.
    let id = publish(c3, &keys, &mut n).await;
    accepted.push(id);
    let last = publish(c1, &keys, &mut n).await;
    accepted.push(last);
    let want: HashSet<&String> = accepted.iter().collect();
    for (i, s) in (1..).zip(&mut subs) {
        s.until(&accepted).await;
        let mut seen: HashMap<&String, usize> = HashMap::new();
        for id in &s.got {
            *seen.entry(id).or_default() += 1;
        }
        let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "gateway {i} sent twice: {twice:?}");
        let extra: Vec<_> = seen
            .keys()
            .filter(|id| !want.contains(*id) && **id != &stranded)
            .collect();
        assert!(extra.is_empty(), "gateway {i} sent events nobody published: {extra:?}");
    }
    eprintln!(
        "{} events accepted across the cut; gateway 3's event sent during it was {}",
        accepted.len(),
        if stranded_accepted {
            "accepted"
        } else {
            "answered error:"
        }
    );
}
