//! The LISTEN connection: one per gateway, dedicated (never taken from the
//! pool, so a pool full of slow REQs cannot hold back live delivery).
//!
//! Each `nostr_events` notification names a transaction; the listener reads
//! what it accepted (`nostr.changes`) unless it was delivered already, and
//! dispatches it. Every `listen_checkpoint_ms` it checks in (see the module
//! above): a snapshot, the transactions committed since the previous one
//! that nobody delivered, and the transit table's state. A check-in that
//! does not come back within `listen_timeout_ms` means the connection is
//! dead, half-open ones included, and it is re-established with backoff; the
//! first check-in of the new session delivers what was committed meanwhile.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use nostr_pg_core::Event;
use tokio::sync::{mpsc, watch};
use tokio_postgres::{AsyncMessage, Client, Statement};

use super::Fanout;
// TCP keepalive on the LISTEN socket (always, whatever tcp_user_timeout_ms
// says): a second line of defence behind the check-ins against a peer that
// vanished without a FIN.
use crate::db::{
    Db, DbError, CHANGES, CHECKPOINT, COMMITTED_BETWEEN, KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_RETRIES, LISTEN,
};
use crate::metrics::Metrics;
use crate::reply::Prefix;
use crate::shutdown::stopped;
use crate::snapshot::{parse_xid, Snapshot, Xid};

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A snapshot that sees no transaction as finished: the start of everything
/// a freshly emptied transit table may hold.
const SINCE_EVER: &str = "1:1:";
/// How the LISTEN connection shows in `pg_stat_activity`.
pub const LISTEN_APPLICATION_NAME: &str = "nostr_pg_gateway_listen";

/// What the listener knows across sessions: the snapshot of its last
/// check-in, and which incarnation of the transit table it was in.
#[derive(Debug, Default)]
struct Position {
    checked_in: Option<Snapshot>,
    epoch: Option<i64>,
}

/// Why a session ended; after a session that worked, backoff restarts.
struct Lost {
    was_listening: bool,
    reason: String,
}

impl Lost {
    fn new(reason: impl ToString) -> Lost {
        Lost {
            was_listening: false,
            reason: reason.to_string(),
        }
    }
}

/// Runs the LISTEN loop until shutdown, reconnecting with backoff.
pub async fn run(db: Db, fanout: Arc<Fanout>, metrics: Arc<Metrics>, mut shutdown: watch::Receiver<bool>) {
    let mut position = Position::default();
    let mut backoff = BACKOFF_MIN;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let session = Session {
            db: &db,
            fanout: &fanout,
            metrics: &metrics,
            timeout: Duration::from_millis(db.settings().listen_timeout_ms),
        };
        let ended = session.run(&mut position, &mut shutdown).await;
        metrics.listen_connected.store(0, Relaxed);
        match ended {
            Ok(()) => return,
            Err(lost) => {
                if lost.was_listening {
                    backoff = BACKOFF_MIN;
                }
                tracing::warn!("LISTEN connection lost, retrying in {backoff:?}: {}", lost.reason);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stopped(&mut shutdown) => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

struct Session<'a> {
    db: &'a Db,
    fanout: &'a Fanout,
    metrics: &'a Metrics,
    timeout: Duration,
}

impl Session<'_> {
    /// One LISTEN session: Ok on shutdown, Err when the connection fails.
    async fn run(&self, position: &mut Position, shutdown: &mut watch::Receiver<bool>) -> Result<(), Lost> {
        let mut pg = self.db.pg_config().clone();
        pg.application_name(LISTEN_APPLICATION_NAME)
            .keepalives(true)
            .keepalives_idle(KEEPALIVE_IDLE)
            .keepalives_interval(KEEPALIVE_INTERVAL)
            .keepalives_retries(KEEPALIVE_RETRIES);
        let (client, mut connection) = match tokio::time::timeout(self.timeout, pg.connect(self.db.tls().clone())).await
        {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return Err(Lost::new(DbError::from_pg(&e))),
            Err(_) => return Err(Lost::new("connect timed out")),
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        // Drives the connection; ends (closing `rx`) when the connection fails.
        let driver = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(n)) => {
                        if tx.send(n.payload().to_owned()).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!("LISTEN connection error: {e}");
                        return;
                    }
                }
            }
        });
        let _abort_driver = AbortOnDrop(driver);
        self.bounded(client.batch_execute(LISTEN)).await?;
        let client = self.prepare(&client).await?;
        self.metrics.listen_reconnects.fetch_add(1, Relaxed);
        // Registered: every transaction that commits from now on notifies us.
        // The first check-in covers what committed before.
        self.check_in(&client, position).await?;
        self.metrics.listen_connected.store(1, Relaxed);
        tracing::info!("listening for nostr_events");
        let every = Duration::from_millis(self.db.settings().listen_checkpoint_ms);
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let listening = |reason: String| Lost {
            was_listening: true,
            reason,
        };
        loop {
            tokio::select! {
                // Notifications first: a check-in only runs when none wait,
                // so events are delivered in the order their transactions
                // committed whenever the notifications arrive.
                biased;
                first = rx.recv() => {
                    let Some(first) = first else {
                        return Err(listening("connection closed".into()));
                    };
                    let received = Instant::now();
                    let mut xids = Vec::new();
                    for payload in std::iter::once(first).chain(std::iter::from_fn(|| rx.try_recv().ok())) {
                        match parse_xid(&payload) {
                            Some(x) => xids.push(x),
                            None => tracing::warn!("ignoring malformed nostr_events payload {payload:?}"),
                        }
                    }
                    self.deliver_named(&client, xids).await.map_err(|l| listening(l.reason))?;
                    self.metrics.fanout_lag_seconds.observe_duration(received.elapsed());
                }
                _ = ticker.tick() => {
                    self.check_in(&client, position).await.map_err(|l| listening(l.reason))?;
                }
                _ = stopped(shutdown) => return Ok(()),
            }
        }
    }

    /// Prepares the session's statements once, all in one round trip. A
    /// statement given as text is prepared on every call, a round trip of
    /// its own: to a database on another host that doubled the time from a
    /// notification to its events' delivery.
    async fn prepare<'c>(&self, client: &'c Client) -> Result<Prepared<'c>, Lost> {
        let (changes, checkpoint, committed_between) = self
            .bounded(async {
                futures_util::try_join!(
                    client.prepare(CHANGES),
                    client.prepare(CHECKPOINT),
                    client.prepare(COMMITTED_BETWEEN)
                )
            })
            .await?;
        Ok(Prepared {
            client,
            changes,
            checkpoint,
            committed_between,
        })
    }

    /// Runs a statement on the LISTEN connection, bounded by the timeout:
    /// a statement that does not come back means the connection is gone.
    async fn bounded<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, Lost> {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Lost::new(DbError::from_pg(&e))),
            Err(_) => Err(Lost::new(format!("no answer within {:?}", self.timeout))),
        }
    }

    /// Takes a snapshot; delivers every transaction committed since the last
    /// check-in that nobody delivered; then counts everything the snapshot
    /// sees as delivered. If those transactions cannot be read any more, ends
    /// every live subscription instead.
    async fn check_in(&self, client: &Prepared<'_>, position: &mut Position) -> Result<(), Lost> {
        let row = self.bounded(client.client.query_one(&client.checkpoint, &[])).await?;
        let now = row
            .try_get::<_, String>(0)
            .ok()
            .and_then(|s| Snapshot::parse(&s))
            .ok_or_else(|| Lost::new("check-in returned no snapshot"))?;
        let epoch: i64 = row.try_get(1).map_err(Lost::new)?;
        let purged_below = row
            .try_get::<_, String>(2)
            .ok()
            .and_then(|s| parse_xid(&s))
            .ok_or_else(|| Lost::new("check-in returned no purge horizon"))?;
        if let Some(before) = &position.checked_in {
            let same_table = position.epoch == Some(epoch);
            if same_table && purged_below <= before.xmin() {
                self.catch_up(client, before, &now).await?;
            } else if same_table {
                // Away longer than transit rows are kept: nobody's gap can be
                // filled.
                let why = "live events were lost (the relay fell behind for too long); subscribe again";
                let n = self.fanout.index.report_gap(None, &Prefix::Error.with(why));
                tracing::warn!("live delivery gap cannot be filled; told {n} connections");
            } else {
                // A crash emptied the transit table: what committed before it
                // is gone, so subscriptions that read before it end; what
                // committed since is all in the new table, so the others get
                // it (each skips what its snapshot saw).
                let why = "live events were lost (the database restarted); subscribe again";
                let n = self.fanout.index.report_gap(Some(epoch), &Prefix::Error.with(why));
                tracing::warn!("live delivery gap across a crash; told {n} connections");
                let since = Snapshot::parse(SINCE_EVER).ok_or_else(|| Lost::new("bad snapshot constant"))?;
                self.catch_up(client, &since, &now).await?;
            }
        }
        self.fanout.checked_in(&now, epoch);
        position.checked_in = Some(now);
        position.epoch = Some(epoch);
        self.fanout.mark_ready();
        Ok(())
    }

    /// Delivers the transactions that accepted events and committed between
    /// the two snapshots, unless someone delivered them already.
    async fn catch_up(&self, client: &Prepared<'_>, since: &Snapshot, upto: &Snapshot) -> Result<(), Lost> {
        let rows = self
            .bounded(
                client
                    .client
                    .query(&client.committed_between, &[&since.to_string(), &upto.to_string()]),
            )
            .await?;
        let xids: Vec<Xid> = rows
            .iter()
            .filter_map(|r| r.try_get::<_, String>(0).ok().and_then(|s| parse_xid(&s)))
            .collect();
        tracing::debug!("check-in {since} .. {upto}: unclaimed transactions among {xids:?}");
        let caught_up = self.deliver_named(client, xids).await?;
        self.metrics.live_caught_up.fetch_add(caught_up, Relaxed);
        Ok(())
    }

    /// Delivers the transactions `xids` names that nobody delivered yet.
    /// Reads first and claims after, so a failed read loses nothing (the next
    /// check-in finds them). Returns how many events this call delivered.
    async fn deliver_named(&self, client: &Prepared<'_>, xids: Vec<Xid>) -> Result<u64, Lost> {
        let mut seen = std::collections::HashSet::new();
        let todo: Vec<Xid> = xids
            .into_iter()
            .filter(|x| seen.insert(*x) && !self.fanout.is_claimed(*x))
            .collect();
        if todo.is_empty() {
            return Ok(0);
        }
        if self.fanout.index.is_empty() {
            // Nobody is subscribed: skip reading the rows (an import would
            // otherwise re-read everything it wrote). A subscription made
            // after this check reads with a snapshot that already sees them.
            for x in todo {
                self.fanout.claim(x);
            }
            return Ok(0);
        }
        let names: Vec<String> = todo.iter().map(Xid::to_string).collect();
        let rows = self.bounded(client.client.query(&client.changes, &[&names])).await?;
        let mut by_xid: HashMap<Xid, Vec<(Event, String)>> = HashMap::new();
        for row in &rows {
            let (Ok(xid), Ok(json)) = (row.try_get::<_, String>(0), row.try_get::<_, String>(1)) else {
                continue;
            };
            let Some(xid) = parse_xid(&xid) else { continue };
            match Event::parse(&json) {
                Ok(event) => by_xid.entry(xid).or_default().push((event, json)),
                Err(e) => tracing::warn!("nostr.changes returned an unparseable event: {e}"),
            }
        }
        let mut delivered = 0;
        for xid in todo {
            let events = by_xid.remove(&xid).unwrap_or_default();
            let n = events.len() as u64;
            if self.fanout.deliver(xid, events) {
                delivered += n;
            }
        }
        Ok(delivered)
    }
}

/// The LISTEN connection with its statements prepared.
struct Prepared<'c> {
    client: &'c Client,
    changes: Statement,
    checkpoint: Statement,
    committed_between: Statement,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
