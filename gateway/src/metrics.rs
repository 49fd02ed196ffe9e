//! Prometheus metrics, hand-written: a few atomics and fixed-bucket histograms
//! rendered in the text exposition format. The struct is owned by one gateway
//! (no global registry), so two gateways in one process count separately.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::reply::Prefix;

/// Why a stored query was answered by the primary although replicas are
/// configured (see `read_route.rs`).
pub const FALLBACKS: [&str; 4] = ["none_up", "error", "behind", "unsettled"];

/// Client message verbs we count; anything else is `other`.
pub const VERBS: [&str; 9] = [
    "EVENT",
    "REQ",
    "COUNT",
    "CLOSE",
    "AUTH",
    "NEG-OPEN",
    "NEG-MSG",
    "NEG-CLOSE",
    "other",
];

#[derive(Debug, Default)]
pub struct Metrics {
    pub connections_open: AtomicI64,
    pub connections_total: AtomicU64,
    pub connections_refused: AtomicU64,
    /// Connections (WebSocket or HTTP) refused because `nostr.ip_blocked`.
    pub connections_blocked: AtomicU64,
    messages: [AtomicU64; VERBS.len()],
    pub events_accepted: AtomicU64,
    /// Answered `OK true` with `duplicate:`: the relay had them already.
    pub events_duplicate: AtomicU64,
    events_rejected: [AtomicU64; Prefix::ALL.len() + 1],
    pub live_events_sent: AtomicU64,
    pub slow_clients_dropped: AtomicU64,
    pub reqs_rate_limited: AtomicU64,
    pub db_errors: AtomicU64,
    /// EVENTs a publish batch left out for want of locks, sent again.
    pub events_deferred: AtomicU64,
    pub listen_reconnects: AtomicU64,
    /// 1 while the LISTEN connection is up and checked in, else 0: while 0,
    /// other gateways' events wait (and are caught up on reconnect).
    pub listen_connected: AtomicI64,
    /// Live events that no notification named, delivered by a check-in.
    pub live_caught_up: AtomicU64,
    /// Subscriptions ended with `CLOSED error:` because live events they
    /// were owed could not be recovered.
    pub live_gaps_closed: AtomicU64,
    /// By the reasons in [`FALLBACKS`].
    replica_fallbacks: [AtomicU64; FALLBACKS.len()],
    pub query_seconds: Histogram,
    /// From an EVENT read to its OK, for events that went to the database
    /// (queueing, batching and the commit).
    pub event_ok_seconds: Histogram,
    pub publish_seconds: Histogram,
    pub publish_batch_size: Histogram,
    pub fanout_lag_seconds: Histogram,
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {
            publish_batch_size: Histogram::with_bounds(&[1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 200.0, 500.0]),
            ..Metrics::default()
        }
    }

    pub fn message(&self, verb: &str) {
        let i = VERBS.iter().position(|v| *v == verb).unwrap_or(VERBS.len() - 1);
        if let Some(c) = self.messages.get(i) {
            c.fetch_add(1, Relaxed);
        }
    }

    /// Counts a stored query the primary answered instead of a replica.
    pub fn replica_fallback(&self, reason: &str) {
        if let Some(c) = FALLBACKS
            .iter()
            .position(|r| *r == reason)
            .and_then(|i| self.replica_fallbacks.get(i))
        {
            c.fetch_add(1, Relaxed);
        }
    }

    /// Counts one answered EVENT by the prefix of its message.
    pub fn event_result(&self, accepted: bool, message: &str) {
        if accepted {
            let counter = if Prefix::of_message(message) == Some(Prefix::Duplicate) {
                &self.events_duplicate
            } else {
                &self.events_accepted
            };
            counter.fetch_add(1, Relaxed);
            return;
        }
        let i = Prefix::of_message(message)
            .and_then(|p| Prefix::ALL.iter().position(|q| *q == p))
            .unwrap_or(Prefix::ALL.len());
        if let Some(c) = self.events_rejected.get(i) {
            c.fetch_add(1, Relaxed);
        }
    }

    /// The text exposition format, with the gauges read at the time.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        gauges.render(&mut out);
        gauge(
            &mut out,
            "nostr_gateway_connections",
            "Open WebSocket connections",
            self.connections_open.load(Relaxed),
        );
        counter(
            &mut out,
            "nostr_gateway_connections_total",
            "Accepted WebSocket connections",
            &self.connections_total,
        );
        counter(
            &mut out,
            "nostr_gateway_connections_refused_total",
            "Connections refused by caps",
            &self.connections_refused,
        );
        counter(
            &mut out,
            "nostr_gateway_connections_blocked_total",
            "Connections (WebSocket or HTTP) from blocked addresses, refused with 403",
            &self.connections_blocked,
        );
        header(
            &mut out,
            "nostr_gateway_messages_total",
            "Client messages by verb",
            "counter",
        );
        for (verb, c) in VERBS.iter().zip(&self.messages) {
            let _ = writeln!(
                out,
                "nostr_gateway_messages_total{{verb=\"{verb}\"}} {}",
                c.load(Relaxed)
            );
        }
        header(
            &mut out,
            "nostr_gateway_events_total",
            "Answered EVENTs by result and reason prefix",
            "counter",
        );
        let _ = writeln!(
            out,
            "nostr_gateway_events_total{{result=\"accepted\",reason=\"\"}} {}",
            self.events_accepted.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "nostr_gateway_events_total{{result=\"accepted\",reason=\"duplicate\"}} {}",
            self.events_duplicate.load(Relaxed)
        );
        let reasons = Prefix::ALL.iter().map(|p| p.as_str()).chain(["other"]);
        for (reason, c) in reasons.zip(&self.events_rejected) {
            let _ = writeln!(
                out,
                "nostr_gateway_events_total{{result=\"rejected\",reason=\"{reason}\"}} {}",
                c.load(Relaxed)
            );
        }
        counter(
            &mut out,
            "nostr_gateway_live_events_sent_total",
            "Live events queued to subscribers",
            &self.live_events_sent,
        );
        counter(
            &mut out,
            "nostr_gateway_slow_clients_dropped_total",
            "Clients disconnected for a full live queue",
            &self.slow_clients_dropped,
        );
        counter(
            &mut out,
            "nostr_gateway_reqs_rate_limited_total",
            "REQs and COUNTs refused by the per-IP query rate limit",
            &self.reqs_rate_limited,
        );
        counter(
            &mut out,
            "nostr_gateway_db_errors_total",
            "Database calls that failed",
            &self.db_errors,
        );
        counter(
            &mut out,
            "nostr_gateway_events_deferred_total",
            "EVENTs a publish batch had no lock room for, sent again in a later batch",
            &self.events_deferred,
        );
        counter(
            &mut out,
            "nostr_gateway_listen_reconnects_total",
            "LISTEN connection (re)establishments",
            &self.listen_reconnects,
        );
        gauge(
            &mut out,
            "nostr_gateway_listen_connected",
            "LISTEN connection up and checked in (1) or lost (0)",
            self.listen_connected.load(Relaxed),
        );
        counter(
            &mut out,
            "nostr_gateway_live_caught_up_total",
            "Live events no notification named, delivered by a LISTEN check-in",
            &self.live_caught_up,
        );
        counter(
            &mut out,
            "nostr_gateway_live_gaps_closed_total",
            "Subscriptions closed because live events they were owed were lost",
            &self.live_gaps_closed,
        );
        header(
            &mut out,
            "nostr_gateway_replica_fallbacks_total",
            "Stored queries the primary answered instead of a replica, by reason",
            "counter",
        );
        for (reason, c) in FALLBACKS.iter().zip(&self.replica_fallbacks) {
            let _ = writeln!(
                out,
                "nostr_gateway_replica_fallbacks_total{{reason=\"{reason}\"}} {}",
                c.load(Relaxed)
            );
        }
        self.query_seconds
            .render(&mut out, "nostr_gateway_query_seconds", "REQ and COUNT database time");
        self.event_ok_seconds.render(
            &mut out,
            "nostr_gateway_event_ok_seconds",
            "From an EVENT read to its OK, for events sent to the database",
        );
        self.publish_seconds.render(
            &mut out,
            "nostr_gateway_publish_seconds",
            "publish_batch round trip, per batch",
        );
        self.publish_batch_size.render(
            &mut out,
            "nostr_gateway_publish_batch_size",
            "Events per publish_batch call",
        );
        self.fanout_lag_seconds.render(
            &mut out,
            "nostr_gateway_fanout_lag_seconds",
            "From notification received to events queued to subscribers",
        );
        out
    }
}

/// Values that live elsewhere (the pool, the subscription index, the
/// replicas), read when `/metrics` is served.
#[derive(Debug, Default, Clone)]
pub struct Gauges {
    pub pool_max: usize,
    pub pool_open: usize,
    pub pool_idle: usize,
    pub pool_waiting: usize,
    pub subscriptions: usize,
    pub replicas: Vec<ReplicaStatus>,
}

/// One read replica as `/metrics` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaStatus {
    /// `host:port`.
    pub label: String,
    /// In rotation: reachable, still a standby, and within the lag limits.
    pub up: bool,
    /// Bytes of WAL it had still to replay at the last check.
    pub lag_bytes: u64,
    pub lag_seconds: f64,
    /// Stored queries it answered.
    pub queries: u64,
}

impl Gauges {
    fn render(&self, out: &mut String) {
        let as_i64 = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        gauge(
            out,
            "nostr_gateway_pool_max",
            "Largest size of the database pool",
            as_i64(self.pool_max),
        );
        gauge(
            out,
            "nostr_gateway_pool_connections",
            "Open pooled database connections",
            as_i64(self.pool_open),
        );
        gauge(
            out,
            "nostr_gateway_pool_idle",
            "Pooled connections free for use",
            as_i64(self.pool_idle),
        );
        gauge(
            out,
            "nostr_gateway_pool_waiting",
            "Tasks waiting for a pooled connection",
            as_i64(self.pool_waiting),
        );
        gauge(
            out,
            "nostr_gateway_subscriptions",
            "Open live subscriptions (REQs past or before EOSE)",
            as_i64(self.subscriptions),
        );
        if self.replicas.is_empty() {
            return;
        }
        type Value = fn(&ReplicaStatus) -> String;
        let per_replica: [(&str, &str, &str, Value); 4] = [
            (
                "nostr_gateway_replica_up",
                "Read replica in rotation (1) or not (0)",
                "gauge",
                |r| u64::from(r.up).to_string(),
            ),
            (
                "nostr_gateway_replica_lag_bytes",
                "WAL the read replica had still to replay at its last check",
                "gauge",
                |r| r.lag_bytes.to_string(),
            ),
            (
                "nostr_gateway_replica_lag_seconds",
                "Age of the last transaction the read replica replayed, while it is behind",
                "gauge",
                |r| r.lag_seconds.to_string(),
            ),
            (
                "nostr_gateway_replica_queries_total",
                "Stored queries (REQ, COUNT) the read replica answered",
                "counter",
                |r| r.queries.to_string(),
            ),
        ];
        for (name, help, kind, value) in per_replica {
            header(out, name, help, kind);
            for r in &self.replicas {
                let _ = writeln!(out, "{name}{{replica=\"{}\"}} {}", r.label, value(r));
            }
        }
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn counter(out: &mut String, name: &str, help: &str, c: &AtomicU64) {
    header(out, name, help, "counter");
    let _ = writeln!(out, "{name} {}", c.load(Relaxed));
}

fn gauge(out: &mut String, name: &str, help: &str, v: i64) {
    header(out, name, help, "gauge");
    let _ = writeln!(out, "{name} {v}");
}

/// Seconds buckets from half a millisecond to ten seconds.
const SECONDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A cumulative histogram with fixed upper bounds.
#[derive(Debug)]
pub struct Histogram {
    bounds: Vec<f64>,
    /// Non-cumulative counts per bucket, plus the `+Inf` bucket last.
    counts: Vec<AtomicU64>,
    /// Sum of observations in millionths, to stay in integer atomics.
    sum_micros: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::with_bounds(&SECONDS)
    }
}

impl Histogram {
    pub fn with_bounds(bounds: &[f64]) -> Histogram {
        Histogram {
            bounds: bounds.to_vec(),
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: f64) {
        let i = self
            .bounds
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(self.bounds.len());
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Relaxed);
        }
        // Saturating float-to-int cast: negative or NaN observations count as 0.
        self.sum_micros.fetch_add((value * 1e6) as u64, Relaxed);
    }

    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Relaxed)).sum()
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        header(out, name, help, "histogram");
        let mut cumulative = 0;
        for (bound, c) in self.bounds.iter().zip(&self.counts) {
            cumulative += c.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let total = self.count();
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_micros.load(Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {total}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::new();
        m.message("REQ");
        m.message("BOGUS");
        m.event_result(true, "");
        m.event_result(true, "duplicate: have it");
        m.event_result(false, "blocked: deleted");
        m.event_result(false, "weird");
        m.query_seconds.observe(0.002);
        m.query_seconds.observe(20.0);
        let text = m.render(&Gauges::default());
        assert!(text.contains("nostr_gateway_messages_total{verb=\"REQ\"} 1"));
        assert!(text.contains("nostr_gateway_messages_total{verb=\"other\"} 1"));
        assert!(text.contains("nostr_gateway_events_total{result=\"accepted\",reason=\"\"} 1"));
        assert!(text.contains("nostr_gateway_events_total{result=\"accepted\",reason=\"duplicate\"} 1"));
        assert!(text.contains("nostr_gateway_events_total{result=\"rejected\",reason=\"blocked\"} 1"));
        let gauges = Gauges {
            pool_max: 8,
            pool_open: 3,
            pool_idle: 1,
            pool_waiting: 0,
            subscriptions: 5,
            replicas: vec![ReplicaStatus {
                label: "127.0.0.1:5433".into(),
                up: true,
                lag_bytes: 12,
                lag_seconds: 0.5,
                queries: 7,
            }],
        };
        m.replica_fallback("behind");
        m.replica_fallback("nonsense");
        let text_g = m.render(&gauges);
        assert!(text_g.contains("nostr_gateway_pool_connections 3"));
        assert!(text_g.contains("nostr_gateway_pool_idle 1"));
        assert!(text_g.contains("nostr_gateway_subscriptions 5"));
        assert!(text_g.contains("nostr_gateway_replica_up{replica=\"127.0.0.1:5433\"} 1"));
        assert!(text_g.contains("nostr_gateway_replica_lag_bytes{replica=\"127.0.0.1:5433\"} 12"));
        assert!(text_g.contains("nostr_gateway_replica_lag_seconds{replica=\"127.0.0.1:5433\"} 0.5"));
        assert!(text_g.contains("nostr_gateway_replica_queries_total{replica=\"127.0.0.1:5433\"} 7"));
        assert!(text_g.contains("nostr_gateway_replica_fallbacks_total{reason=\"behind\"} 1"));
        assert!(
            !text.contains("nostr_gateway_replica_up"),
            "no replicas, no per-replica lines"
        );
        assert!(text.contains("nostr_gateway_events_total{result=\"rejected\",reason=\"other\"} 1"));
        assert!(text.contains("nostr_gateway_query_seconds_bucket{le=\"0.001\"} 0"));
        assert!(text.contains("nostr_gateway_query_seconds_bucket{le=\"0.0025\"} 1"));
        assert!(text.contains("nostr_gateway_query_seconds_bucket{le=\"10\"} 1"));
        assert!(text.contains("nostr_gateway_query_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("nostr_gateway_query_seconds_count 2"));
    }
}
