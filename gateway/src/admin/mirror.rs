//! `mirror URL... [--filter JSON]`: a long-running aggregator. Each upstream
//! relay is subscribed to on its own (see [`super::mirror_upstream`]): its
//! events go through `nostr.publish_batch` (every relay rule; the same event
//! from two relays is stored once, the second answered `duplicate`), and
//! where it left off is kept in the database (`nostr_mirror.cursors`).
//!
//! A summary of every upstream's counters goes to stderr every
//! `--summary-secs`, and at the end. SIGINT or SIGTERM stops the readers,
//! lets the writers publish what is queued and save their cursors, prints
//! the summary (and with `--json` the same as JSON on stdout) and exits 0.
//! A second signal abandons what is queued (a restart fetches it again).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::mirror_cursor::Cursors;
use super::mirror_upstream::{self, MirrorSettings, Stats};
use super::upstream::check_url;
use crate::db::Db;

#[derive(Debug, Clone)]
pub struct MirrorOptions {
    pub urls: Vec<String>,
    pub database_url: String,
    pub filter: Option<String>,
    pub since_margin: i64,
    pub queue: usize,
    pub batch: usize,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    pub summary_every: Duration,
}

/// How a mirror ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MirrorEnd {
    /// Stopped by a signal, queues flushed and cursors saved.
    Stopped,
    /// A second signal: what was queued was dropped.
    Abandoned,
    Failed(String),
}

pub struct MirrorReport {
    pub end: MirrorEnd,
    pub upstreams: Vec<Arc<Stats>>,
    pub elapsed: Duration,
}

impl MirrorReport {
    pub fn json(&self) -> Value {
        let status = match &self.end {
            MirrorEnd::Stopped => "stopped",
            MirrorEnd::Abandoned => "abandoned",
            MirrorEnd::Failed(_) => "failed",
        };
        let mut out = json!({
            "status": status,
            "seconds": (self.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            "upstreams": self.upstreams.iter().map(|s| s.json()).collect::<Vec<_>>(),
        });
        if let (MirrorEnd::Failed(why), Some(obj)) = (&self.end, out.as_object_mut()) {
            obj.insert("error".into(), Value::String(why.clone()));
        }
        out
    }

    pub fn text(&self) -> String {
        summary(&self.upstreams, self.elapsed)
    }
}

fn summary(upstreams: &[Arc<Stats>], elapsed: Duration) -> String {
    let mut s = format!("mirror, {:.0} s:\n", elapsed.as_secs_f64());
    for u in upstreams {
        s.push_str(&u.line());
        s.push('\n');
    }
    s
}

/// The filter as an object (`{}` when none is given).
pub fn parse_filter(filter: Option<&str>) -> Result<Map<String, Value>, String> {
    let text = filter.unwrap_or("{}");
    nostr_pg_core::Filter::parse(text).map_err(|e| format!("--filter: {e}"))?;
    match serde_json::from_str(text) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err("--filter: one JSON object".into()),
    }
}

/// Runs until a signal arrives on `signals`.
pub async fn run(db: Db, opts: MirrorOptions, mut signals: mpsc::Receiver<()>) -> MirrorReport {
    let started = Instant::now();
    let failed = |why: String| MirrorReport {
        end: MirrorEnd::Failed(why),
        upstreams: Vec::new(),
        elapsed: started.elapsed(),
    };
    for url in &opts.urls {
        if let Err(e) = check_url(url) {
            return failed(e.to_string());
        }
    }
    let filter = match parse_filter(opts.filter.as_deref()) {
        Ok(f) => f,
        Err(e) => return failed(e),
    };
    let cursors = match Cursors::open(&opts.database_url).await {
        Ok(c) => Arc::new(c),
        Err(e) => return failed(e),
    };
    let settings = Arc::new(MirrorSettings {
        filter_text: Value::Object(filter.clone()).to_string(),
        filter,
        since_margin: opts.since_margin,
        queue: opts.queue,
        batch: opts.batch,
        min_backoff: opts.min_backoff,
        max_backoff: opts.max_backoff,
        connect_timeout: Duration::from_secs(10),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut upstreams = Vec::new();
    let mut tasks = JoinSet::new();
    for url in &opts.urls {
        let stats = Arc::new(Stats::new(url));
        match cursors.load(url, &settings.filter_text).await {
            Ok(Some(c)) => stats.cursor.store(c, std::sync::atomic::Ordering::Relaxed),
            Ok(None) => {}
            Err(e) => return failed(e),
        }
        upstreams.push(Arc::clone(&stats));
        tasks.spawn(mirror_upstream::run(
            db.clone(),
            Arc::clone(&cursors),
            stats,
            Arc::clone(&settings),
            stop_rx.clone(),
        ));
    }
    eprintln!("mirroring {} upstream relays", upstreams.len());
    let mut ticker = tokio::time::interval_at(
        tokio::time::Instant::now() + opts.summary_every,
        opts.summary_every.max(Duration::from_millis(100)),
    );
    let mut signalled = 0;
    let mut end = MirrorEnd::Stopped;
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                None => break,
                Some(Ok(())) => {}
                Some(Err(e)) => tracing::warn!("a mirror task failed: {e}"),
            },
            _ = ticker.tick() => eprint!("{}", summary(&upstreams, started.elapsed())),
            Some(()) = signals.recv() => {
                signalled += 1;
                stop_tx.send_replace(true);
                if signalled == 1 {
                    eprintln!("stopping: publishing what is queued and saving the cursors (signal again to drop it)");
                } else {
                    tasks.abort_all();
                    while tasks.join_next().await.is_some() {}
                    end = MirrorEnd::Abandoned;
                    break;
                }
            }
        }
    }
    MirrorReport {
        end,
        upstreams,
        elapsed: started.elapsed(),
    }
}
