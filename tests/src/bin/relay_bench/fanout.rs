//! Workload 3, fanout: M live subscribers with overlapping filters (a topic
//! filter shared by M/T subscribers, plus an author filter shared by M/A)
//! while events are published at a fixed rate. Measures publish → delivery
//! latency at every subscriber, and whether every expected delivery arrived.
//!
//! Send times live in one array indexed by event number; a subscriber maps the
//! id it receives to that number, so one process clock times both ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::args::Args;
use crate::error::BenchError;
use crate::events::{self, Plan};
use crate::record::Record;
use crate::stats::Latencies;
use crate::ws::{self, Frame, Target};

struct Shared {
    start: Instant,
    /// Nanoseconds after `start` at which event k was sent, plus one (0 = unsent).
    sent: Vec<AtomicU64>,
    index: HashMap<String, usize>,
}

#[derive(Default)]
struct SubStats {
    latencies: Latencies,
    delivered: u64,
    unknown: u64,
}

async fn subscriber(
    mut socket: ws::Ws,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> Result<SubStats, BenchError> {
    let mut stats = SubStats::default();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            msg = socket.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None => return Err(BenchError::Relay("closed a subscriber".into())),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(BenchError::ws("subscriber read")(e)),
                };
                let now = Instant::now();
                if let Frame::Event { id, .. } = ws::parse(text.as_str()) {
                    let sent = shared.index.get(id).and_then(|&k| shared.sent.get(k)).map(|a| a.load(Ordering::Acquire));
                    match sent {
                        Some(at) if at > 0 => {
                            stats.delivered += 1;
                            let since = now.duration_since(shared.start);
                            stats.latencies.push(since.saturating_sub(Duration::from_nanos(at - 1)));
                        }
                        _ => stats.unknown += 1,
                    }
                }
            }
        }
    }
    Ok(stats)
}

pub async fn run(args: &Args) -> Result<(), BenchError> {
    let target = Target::parse(args.req("url")?)?;
    let relay = args.req("relay")?;
    let out = args.req("out")?;
    let round: u32 = args.num("round", 1)?;
    let subscribers: usize = args.num("subscribers", 1_000)?;
    let rate: f64 = args.num("rate", 500.0)?;
    let seconds: f64 = args.num("seconds", 20.0)?;
    let topics: usize = args.num("topics", 20)?;
    let authors: usize = args.num("authors", 100)?;
    let publishers: usize = args.num("publishers", 4)?;
    let sources: usize = args.num("sources", 8)?;
    let count = (rate * seconds).round() as usize;

    // Topics unique to this run, so subscriptions find no history and every
    // delivery is a live one.
    let label = events::unique_label(&format!("fanout-{relay}"));
    let topic = |k: usize| format!("{label}-{k}");
    let keys = events::keys(&label, authors);
    let pubkeys: Vec<String> = keys.iter().map(events::pubkey_hex).collect();

    eprintln!("relay_bench: signing {count} fanout events for {relay}");
    let plans = (0..count)
        .map(|i| Plan {
            author: (i * 31) % authors,
            kind: 1,
            tags: vec![
                events::tag(&["t", &topic(i % topics)]),
                events::tag(&["t", &topic((i * 7 + 3) % topics)]),
            ],
            content: format!("fanout {label} {i}"),
        })
        .collect();
    let signed = events::sign_all(&keys, plans);

    // Subscriber s follows topic s % T and author (s * 13) % A.
    let sub_topic = |s: usize| s % topics;
    let sub_author = |s: usize| (s * 13) % authors;
    let shared = Arc::new(Shared {
        start: Instant::now(),
        sent: (0..signed.len()).map(|_| AtomicU64::new(0)).collect(),
        index: signed.iter().enumerate().map(|(k, s)| (s.id.clone(), k)).collect(),
    });

    eprintln!("relay_bench: opening {subscribers} subscribers to {relay}");
    let (stop_tx, stop_rx) = watch::channel(false);
    let source_ips = ws::sources(sources);
    let mut subs = Vec::with_capacity(subscribers);
    let mut failed_subscribers = 0u64;
    let mut opened_ids = Vec::with_capacity(subscribers);
    let since = events::now() - 60;
    for s in 0..subscribers {
        let source = source_ips.get(s % source_ips.len()).copied();
        let opened = async {
            let mut socket = ws::connect(&target, source, true).await?;
            let req = json!(["REQ", "live",
                {"kinds": [1], "#t": [topic(sub_topic(s))], "since": since},
                {"kinds": [1], "authors": [pubkeys.get(sub_author(s)).cloned().unwrap_or_default()], "since": since}]);
            ws::send(&mut socket, req.to_string()).await?;
            loop {
                match ws::next_text(&mut socket, Duration::from_secs(30)).await? {
                    None => return Err(BenchError::Relay("closed a subscriber before EOSE".into())),
                    Some(t) if matches!(ws::parse(&t), Frame::Eose { .. }) => break,
                    Some(t) if matches!(ws::parse(&t), Frame::Closed { .. } | Frame::Notice(_)) => {
                        return Err(BenchError::Relay(format!("refused a subscription: {t}")))
                    }
                    Some(_) => {}
                }
            }
            Ok::<_, BenchError>(socket)
        };
        match opened.await {
            Ok(socket) => {
                opened_ids.push(s);
                subs.push(tokio::spawn(subscriber(socket, shared.clone(), stop_rx.clone())));
            }
            Err(e) => {
                if failed_subscribers < 3 {
                    eprintln!("relay_bench: subscriber {s}: {e}");
                }
                failed_subscribers += 1;
            }
        }
    }

    let mut expected = 0u64;
    for i in 0..signed.len() {
        let (a, b) = (i % topics, (i * 7 + 3) % topics);
        let author = (i * 31) % authors;
        expected += opened_ids
            .iter()
            .filter(|&&s| sub_topic(s) == a || sub_topic(s) == b || sub_author(s) == author)
            .count() as u64;
    }

    // Publishers: frames go out on a fixed schedule, round-robin over a few
    // connections; OKs are drained by a reader per connection.
    let mut sinks = Vec::new();
    let mut readers = Vec::new();
    let oks = Arc::new(AtomicU64::new(0));
    for _ in 0..publishers.max(1) {
        let (sink, mut stream) = ws::connect(&target, None, false).await?.split();
        sinks.push(sink);
        let oks = oks.clone();
        readers.push(tokio::spawn(async move {
            while let Some(Ok(Message::Text(t))) = stream.next().await {
                if let Frame::Ok { accepted: true, .. } = ws::parse(t.as_str()) {
                    oks.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    eprintln!("relay_bench: publishing {count} events at {rate}/s");
    let begin = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate.max(1e-3));
    let mut late = Duration::ZERO;
    for (k, s) in signed.iter().enumerate() {
        let due = begin + interval.mul_f64(k as f64);
        tokio::time::sleep_until(due.into()).await;
        late = late.max(Instant::now().saturating_duration_since(due));
        let Some(sink) = sinks.get_mut(k % publishers.max(1)) else {
            continue;
        };
        let at = u64::try_from(Instant::now().duration_since(shared.start).as_nanos()).unwrap_or(u64::MAX - 1);
        if let Some(slot) = shared.sent.get(k) {
            slot.store(at + 1, Ordering::Release);
        }
        sink.send(Message::text(s.frame.clone()))
            .await
            .map_err(BenchError::ws("publish"))?;
    }
    let publish_secs = begin.elapsed().as_secs_f64();
    // Let the last deliveries land.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _receivers_may_be_gone = stop_tx.send(true);

    let mut total = SubStats::default();
    let mut dropped = 0u64;
    for t in subs {
        match t.await {
            Ok(Ok(s)) => {
                total.delivered += s.delivered;
                total.unknown += s.unknown;
                total.latencies.extend(s.latencies);
            }
            _ => dropped += 1,
        }
    }
    for mut sink in sinks {
        let _closing = sink.close().await;
    }
    for r in readers {
        r.abort();
    }
    Record::new(relay, "fanout", "live", round)
        .set("subscribers", subscribers as f64)
        .set("failed_subscribers", failed_subscribers as f64)
        .set("dropped_subscribers", dropped as f64)
        .set("published", count as f64)
        .set("accepted", oks.load(Ordering::Relaxed) as f64)
        .set("publish_rate", count as f64 / publish_secs.max(1e-9))
        .set("publisher_late_ms", late.as_secs_f64() * 1e3)
        .set("expected", expected as f64)
        .set("delivered", total.delivered as f64)
        .set(
            "delivered_fraction",
            total.delivered as f64 / (expected as f64).max(1.0),
        )
        .set("delivered_per_s", total.delivered as f64 / publish_secs.max(1e-9))
        .latencies("", &mut total.latencies, true)
        .append(out)
}
