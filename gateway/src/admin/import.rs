//! `import FILE|-`: JSON Lines into the relay through `nostr.publish_batch`,
//! so every event meets every publish rule (id, signature, time window,
//! deletion, expiry, replacement, vanish, PoW) exactly as if a client had sent
//! it to a gateway.
//!
//! One thread reads and splits the input (decompressing it) and checks each
//! line's shape; lines that are not an event's JSON never reach the database
//! and are counted with their reason. Events go out in batches, each one
//! statement and one commit, over `connections` connections at once. The
//! publish rules do not depend on the order events arrive in (a deletion
//! removes what it names whether that came before or after it, the newest
//! replaceable event wins either way), so batches may finish in any order and
//! the database ends the same; only which of two conflicting lines is counted
//! as refused may differ from a one-by-one import.
//!
//! Re-running an import is safe: publishing is idempotent, and a line whose
//! event is already stored is answered `duplicate`. By default such lines are
//! found with one indexed lookup per batch and not sent at all (their
//! signatures are not verified again): only when the line's id is the hash of
//! its content and the stored event has the same signature, that is, when the
//! line is the stored event.
//!
//! The first SIGINT stops reading; the batches in flight finish (each commits
//! or fails as a whole) and the summary is printed. A second SIGINT abandons
//! them: their events are reported as `unknown`, committed or not as whole
//! batches, and a re-run settles them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nostr_pg_core::{batch, hex, Event};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use super::input::{self, Line, Lines};
use super::progress::{self, Progress};
use super::tally::{self, End, Report, Tally};
use crate::db::{Db, DbError};
use crate::limits::lock;

/// How long the end of an import waits for the reader thread to stop.
const READER_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// A file, or `-` for standard input.
    pub input: String,
    /// Events per `publish_batch` call (at most `nostr.max_batch`).
    pub batch: usize,
    /// Batches in flight at once, each on its own connection.
    pub connections: usize,
    pub max_line_bytes: usize,
    /// Look stored events up before publishing, and do not send them.
    pub skip_stored: bool,
    /// Sample lines kept per outcome.
    pub samples: usize,
    /// Progress line interval when stderr is not a terminal.
    pub progress_every: Duration,
}

/// A line that is an event's JSON, waiting for its batch.
struct Item {
    line: u64,
    raw: String,
    id: String,
    /// Id and signature when the id is the hash of the content: only such a
    /// line may be skipped as already stored.
    check: Option<([u8; 32], [u8; 64])>,
}

/// What the reader, the workers and the reporting share.
struct Shared {
    tally: Mutex<Tally>,
    /// No new batches: interrupted, or failed. Workers waiting for a batch
    /// watch it.
    stop: watch::Sender<bool>,
    failure: Mutex<Option<String>>,
    /// Events in batches being published right now.
    inflight: AtomicU64,
    /// What the input turned out to be, once opened.
    compression: Mutex<&'static str>,
}

impl Shared {
    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    fn halt(&self) {
        self.stop.send_replace(true);
    }

    fn fail(&self, why: String) {
        let mut f = lock(&self.failure);
        if f.is_none() {
            *f = Some(why);
        }
        drop(f);
        self.halt();
    }
}

/// Runs an import to its end. Each message on `interrupts` is one SIGINT.
pub async fn run(db: Db, opts: ImportOptions, mut interrupts: mpsc::Receiver<()>) -> Report {
    let mut progress = Progress::new(opts.progress_every);
    let shared = Arc::new(Shared {
        tally: Mutex::new(Tally::new(opts.samples)),
        stop: watch::channel(false).0,
        failure: Mutex::new(None),
        inflight: AtomicU64::new(0),
        compression: Mutex::new("-"),
    });

    // The reader is a thread of its own: it may block on a slow standard
    // input, and nothing waits for it if it does (see below).
    let (tx, rx) = mpsc::channel::<Vec<Item>>(opts.connections.saturating_mul(2).max(2));
    let (done_tx, done_rx) = oneshot::channel::<()>();
    let reader_shared = Arc::clone(&shared);
    let reader_opts = opts.clone();
    std::thread::spawn(move || {
        read(&reader_opts, &reader_shared, &tx);
        // Ignored if nobody waits any more.
        let _ = done_tx.send(());
    });

    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let mut workers = JoinSet::new();
    for _ in 0..opts.connections {
        let (db, rx, shared) = (db.clone(), Arc::clone(&rx), Arc::clone(&shared));
        workers.spawn(worker(db, rx, shared, opts.skip_stored));
    }
    // Only the workers hold the queue now: once they are gone, the reader's
    // next send fails and it stops.
    drop(rx);

    let mut ticker = tokio::time::interval(progress.interval());
    let mut interrupted = 0;
    let mut unknown = 0;
    loop {
        tokio::select! {
            joined = workers.join_next() => match joined {
                None => break,
                Some(Ok(())) => {}
                Some(Err(e)) => shared.fail(format!("import worker failed: {e}")),
            },
            _ = ticker.tick() => {
                let line = progress_line(&lock(&shared.tally), progress.elapsed());
                progress.tick(&line);
            }
            Some(()) = interrupts.recv(), if interrupted < 2 => {
                interrupted += 1;
                shared.halt();
                progress.finish();
                if interrupted == 1 {
                    eprintln!("interrupted: finishing the batches in flight (interrupt again to abandon them)");
                } else {
                    workers.abort_all();
                    // Aborted tasks stop at their next await; then the
                    // count is final.
                    while workers.join_next().await.is_some() {}
                    unknown = shared.inflight.load(Ordering::SeqCst);
                    eprintln!("interrupted again: abandoned {unknown} events in flight");
                    break;
                }
            }
        }
    }
    progress.finish();
    // The reader ends at its next line (stop) or send (queue closed); one
    // blocked on a silent standard input is left behind, and its lines so
    // far are counted.
    match tokio::time::timeout(READER_GRACE, done_rx).await {
        Ok(Ok(())) | Err(_) => {}
        Ok(Err(_)) => shared.fail("the input reader failed".into()),
    }

    let failure = lock(&shared.failure).clone();
    let end = match failure {
        Some(why) => End::Failed(why),
        None if interrupted > 0 => End::Interrupted,
        None => End::Complete,
    };
    let tally = lock(&shared.tally).clone();
    let compression = *lock(&shared.compression);
    Report {
        tally,
        end,
        unknown,
        elapsed: progress.elapsed(),
        compression,
    }
}

fn progress_line(t: &Tally, elapsed: Duration) -> String {
    let refused = t.settled() - t.count(tally::ACCEPTED) - t.count(tally::DUPLICATE);
    format!(
        "{} lines, {} accepted, {} duplicate, {} refused; {:.0} events/s",
        t.lines,
        t.count(tally::ACCEPTED),
        t.count(tally::DUPLICATE),
        refused,
        progress::rate(t.settled(), elapsed)
    )
}

/// The reader thread: lines to batches. Lines that are no event are
/// settled here.
fn read(opts: &ImportOptions, shared: &Shared, tx: &mpsc::Sender<Vec<Item>>) {
    let reader = match input::open(&opts.input) {
        Ok((reader, compression)) => {
            *lock(&shared.compression) = compression.name();
            reader
        }
        Err(e) => {
            shared.fail(format!("cannot read {}: {e}", opts.input));
            return;
        }
    };
    let mut lines = Lines::new(reader, opts.max_line_bytes);
    let mut batch = Vec::with_capacity(opts.batch);
    while !shared.stopped() {
        let (number, line) = match lines.next_line() {
            Ok(Some(l)) => l,
            Ok(None) => break,
            Err(e) => {
                shared.fail(format!("cannot read {}: {e}", opts.input));
                return;
            }
        };
        let item = classify(number, line, opts, shared);
        if let Some(item) = item {
            batch.push(item);
            if batch.len() >= opts.batch {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(opts.batch));
                if tx.blocking_send(full).is_err() {
                    return;
                }
            }
        }
    }
    if !batch.is_empty() && !shared.stopped() && tx.blocking_send(batch).is_err() {
        tracing::debug!("import stopped before the last batch");
    }
}

/// Counts a line, settles it if it is no event, and otherwise makes it an item.
fn classify(number: u64, line: Line, opts: &ImportOptions, shared: &Shared) -> Option<Item> {
    let mut t = lock(&shared.tally);
    t.lines += 1;
    let raw = match line {
        Line::Text(raw) => raw,
        Line::Blank => {
            t.blank += 1;
            return None;
        }
        Line::NotUtf8 { at } => {
            t.record(tally::NOT_UTF8, number, "", &format!("not UTF-8 (byte {at})"));
            return None;
        }
        Line::TooLong { bytes } => {
            let why = format!("{bytes} bytes, more than --max-line-bytes {}", opts.max_line_bytes);
            t.record(tally::TOO_LONG, number, "", &why);
            return None;
        }
    };
    drop(t);
    match Event::parse(&raw) {
        Ok(event) => {
            let check = (opts.skip_stored && event.computed_id() == event.id).then_some((event.id, event.sig));
            Some(Item {
                line: number,
                id: hex::encode(&event.id),
                raw,
                check,
            })
        }
        Err(e) => {
            lock(&shared.tally).record(tally::MALFORMED, number, "", &e.to_string());
            None
        }
    }
}

async fn worker(
    db: Db,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Vec<Item>>>>,
    shared: Arc<Shared>,
    skip_stored: bool,
) {
    let mut stop = shared.stop.subscribe();
    loop {
        let next = tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => return,
            next = async { rx.lock().await.recv().await } => next,
        };
        let Some(items) = next else { return };
        // Stopped while this batch was being taken: it stays unsent.
        if shared.stopped() {
            return;
        }
        let n = items.len() as u64;
        shared.inflight.fetch_add(n, Ordering::SeqCst);
        let mut flight = Flight {
            shared: &shared,
            settled: 0,
        };
        let result = publish(&db, items, &mut flight, skip_stored).await;
        // What a failure left without an answer is unsettled, not in flight.
        let left = n.saturating_sub(flight.settled);
        shared.inflight.fetch_sub(left, Ordering::SeqCst);
        if let Err(e) = result {
            shared.fail(format!("database: {e}"));
            return;
        }
    }
}

/// The batch a worker is publishing: each of its lines leaves the in-flight
/// count the moment its outcome is recorded, so a batch abandoned halfway
/// reports exactly its unanswered lines as `unknown`.
struct Flight<'a> {
    shared: &'a Shared,
    settled: u64,
}

impl Flight<'_> {
    fn settle(&mut self, t: &mut Tally, outcome: &'static str, line: u64, id: &str, reason: &str) {
        t.record(outcome, line, id, reason);
        self.shared.inflight.fetch_sub(1, Ordering::SeqCst);
        self.settled += 1;
    }
}

async fn publish(db: &Db, mut items: Vec<Item>, flight: &mut Flight<'_>, skip_stored: bool) -> Result<(), DbError> {
    if skip_stored {
        let ids: Vec<Vec<u8>> = items
            .iter()
            .filter_map(|i| i.check.map(|(id, _)| id.to_vec()))
            .collect();
        if !ids.is_empty() {
            let stored: HashMap<Vec<u8>, String> = db.stored_sigs(&ids).await?.into_iter().collect();
            if !stored.is_empty() {
                let shared = flight.shared;
                let mut t = lock(&shared.tally);
                items.retain(|i| {
                    let same = i
                        .check
                        .is_some_and(|(id, sig)| stored.get(&id[..]) == Some(&hex::encode(&sig)));
                    if same {
                        t.skipped_stored += 1;
                        flight.settle(
                            &mut t,
                            tally::DUPLICATE,
                            i.line,
                            &i.id,
                            "duplicate: already stored (not sent)",
                        );
                    }
                    !same
                });
            }
        }
    }
    send(db, items, flight).await
}

/// One `publish_batch` call for `items`, and what follows from its answer.
async fn send(db: &Db, items: Vec<Item>, flight: &mut Flight<'_>) -> Result<(), DbError> {
    if items.is_empty() {
        return Ok(());
    }
    let raws: Vec<String> = items.iter().map(|i| i.raw.clone()).collect();
    let auth = vec![None; items.len()];
    // An import has no client: blocked addresses do not apply to it.
    let addrs = vec![None; items.len()];
    let total = items.len();
    match db.publish_batch(&raws, &auth, &addrs).await {
        Ok(outcome) => {
            let mut deferred = Vec::new();
            let mut rows = outcome.rows.into_iter();
            {
                let shared = flight.shared;
                let mut t = lock(&shared.tally);
                for item in items {
                    match rows.next() {
                        // Past the batch's lock budget: sent again below;
                        // the extension always takes a batch's first event.
                        Some(row) if batch::is_deferred(&row.message) && total > 1 => deferred.push(item),
                        Some(row) => {
                            let id = if row.id.is_empty() { &item.id } else { &row.id };
                            let outcome = tally::outcome_of(row.accepted, &row.message);
                            flight.settle(&mut t, outcome, item.line, id, &row.message);
                        }
                        None => {
                            let e = DbError::Protocol("publish_batch returned fewer rows than events".into());
                            flight.settle(&mut t, "error", item.line, &item.id, &e.reply());
                        }
                    }
                }
            }
            Box::pin(send(db, deferred, flight)).await
        }
        // A statement error fails the whole batch: one by one, so a single
        // poisonous event cannot take its batch-mates down with it.
        Err(DbError::Sql { .. }) if total > 1 => {
            for item in items {
                Box::pin(send(db, vec![item], flight)).await?;
            }
            Ok(())
        }
        Err(e @ DbError::Sql { .. }) => {
            if let Some(item) = items.first() {
                let shared = flight.shared;
                flight.settle(&mut lock(&shared.tally), "error", item.line, &item.id, &e.reply());
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}
