//! `sync URL [--filter JSON] [--dir down|up|both]`: NIP-77 reconciliation
//! with another relay, this tool the initiator (negentropy protocol version
//! 1), then the transfer of what differs.
//!
//! 1. Our items: (created_at, id) of the stored events matching the filter,
//!    streamed from the database into 40-byte items ([`crate::neg`]).
//! 2. `NEG-OPEN` / `NEG-MSG` rounds until the library says the sets are
//!    reconciled: the ids only we have (`have`) and only they have (`need`),
//!    32 bytes each.
//! 3. Down: the missing events by `REQ {"ids": [...]}`, `--ids-per-req` at a
//!    time, each event checked to be one we asked for, then published through
//!    `nostr.publish_batch` (every relay rule applies; refusals are counted
//!    by reason).
//! 4. Up: our events they lack, read from the database a chunk at a time and
//!    sent as `EVENT`s, at most `--window` waiting for their `OK`.
//!
//! A SIGINT stops at the next message; what is done stays done (each batch
//! committed whole), and the summary says how far it got. Running the sync
//! again finishes the job.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use negentropy::{Id, Negentropy};
use nostr_pg_core::{batch, hex, Event, Filter};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::progress::{self, Progress};
use super::tally::{self, End};
use super::upstream::{event_frame, frame, json_string, Incoming, Upstream};
use crate::db::{Db, DbError, NegQuery, NegRead};
use crate::neg::FRAME_SIZE_LIMIT;
use crate::reply::Prefix;

const NEG_SUB: &str = "nostr-pg-admin-sync";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Direction {
    /// Fetch what they have and we lack.
    Down,
    /// Send what we have and they lack.
    Up,
    Both,
}

impl Direction {
    fn name(self) -> &'static str {
        match self {
            Direction::Down => "down",
            Direction::Up => "up",
            Direction::Both => "both",
        }
    }

    fn down(self) -> bool {
        self != Direction::Up
    }

    fn up(self) -> bool {
        self != Direction::Down
    }
}

#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub url: String,
    /// One NIP-01 filter object.
    pub filter: String,
    pub direction: Direction,
    /// Ids per `REQ` when fetching, and events read from our database at a
    /// time when sending.
    pub ids_per_req: usize,
    /// `EVENT`s sent and not yet answered with `OK`, at most.
    pub window: usize,
    /// Events per `publish_batch`.
    pub batch: usize,
    /// More of our events matching the filter is an error.
    pub max_items: usize,
    /// The longest wait for the relay's next message.
    pub timeout: Duration,
    pub samples: usize,
    pub progress_every: Duration,
}

/// What one direction did.
#[derive(Debug, Clone, Default)]
pub struct Flow {
    /// Events received (down) or sent (up).
    pub moved: u64,
    /// New to the receiving side.
    pub accepted: u64,
    /// Already there.
    pub duplicate: u64,
    /// Refused, by prefix (`invalid`, `blocked`, ...).
    pub refused: BTreeMap<&'static str, u64>,
    /// The first refusals: (id, reason).
    pub samples: Vec<(String, String)>,
}

impl Flow {
    fn refused_total(&self) -> u64 {
        self.refused.values().sum()
    }

    fn settle(&mut self, accepted: bool, id: &str, message: &str, max_samples: usize) {
        match tally::outcome_of(accepted, message) {
            tally::ACCEPTED => self.accepted += 1,
            tally::DUPLICATE => self.duplicate += 1,
            other => {
                *self.refused.entry(other).or_default() += 1;
                if self.samples.len() < max_samples {
                    self.samples.push((id.to_owned(), message.to_owned()));
                }
            }
        }
    }

    fn json(&self) -> Value {
        json!({
            "events": self.moved,
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "refused": self.refused_total(),
            "refusals": self.refused,
            "samples": self.samples.iter().map(|(id, r)| json!({"id": id, "reason": r})).collect::<Vec<_>>(),
        })
    }
}

/// The end of a sync, with what is needed to report it.
#[derive(Debug, Clone)]
pub struct SyncReport {
    pub url: String,
    pub direction: Direction,
    pub end: End,
    /// Our events matching the filter.
    pub items: u64,
    pub rounds: u64,
    /// Ids only we have, and only they have.
    pub have: u64,
    pub need: u64,
    pub down: Flow,
    /// Asked for but not sent by the relay.
    pub missing: u64,
    /// Sent by the relay but not asked for (dropped).
    pub unrequested: u64,
    pub up: Flow,
    /// Ours to send but gone from our database meanwhile.
    pub gone: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Reading our items from the database.
    pub items_time: Duration,
    /// The NEG-OPEN/NEG-MSG rounds alone: their time and bytes (both ways).
    pub reconcile_time: Duration,
    pub reconcile_bytes: u64,
    pub elapsed: Duration,
}

impl SyncReport {
    pub fn json(&self) -> Value {
        let mut out = json!({
            "status": self.end.name(),
            "url": self.url,
            "direction": self.direction.name(),
            "items": self.items,
            "rounds": self.rounds,
            "have": self.have,
            "need": self.need,
            "received": self.down.moved,
            "sent": self.up.moved,
            "down": self.down.json(),
            "up": self.up.json(),
            "missing": self.missing,
            "unrequested": self.unrequested,
            "gone": self.gone,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "items_seconds": millis(self.items_time),
            "reconcile_seconds": millis(self.reconcile_time),
            "reconcile_bytes": self.reconcile_bytes,
            "seconds": millis(self.elapsed),
        });
        if let (End::Failed(why), Some(obj)) = (&self.end, out.as_object_mut()) {
            obj.insert("error".into(), Value::String(why.clone()));
        }
        out
    }

    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "sync {} with {} ({}): {} events here, {} rounds, {:.1} s",
            self.end.name(),
            self.url,
            self.direction.name(),
            self.items,
            self.rounds,
            self.elapsed.as_secs_f64()
        );
        let _ = writeln!(
            s,
            "  reconciliation: {:.1} s reading our items, {:.1} s and {} bytes of NEG rounds",
            self.items_time.as_secs_f64(),
            self.reconcile_time.as_secs_f64(),
            self.reconcile_bytes
        );
        let _ = writeln!(s, "  have (only here)  {}", self.have);
        let _ = writeln!(s, "  need (only there) {}", self.need);
        let d = &self.down;
        let _ = writeln!(
            s,
            "  received {}: accepted {}, duplicate {}, refused {}{}",
            d.moved,
            d.accepted,
            d.duplicate,
            d.refused_total(),
            by_reason(&d.refused)
        );
        if self.missing > 0 || self.unrequested > 0 {
            let _ = writeln!(
                s,
                "  not sent by the relay {}, unrequested (dropped) {}",
                self.missing, self.unrequested
            );
        }
        let u = &self.up;
        let _ = writeln!(
            s,
            "  sent {}: accepted {}, duplicate {}, refused {}{}",
            u.moved,
            u.accepted,
            u.duplicate,
            u.refused_total(),
            by_reason(&u.refused)
        );
        if self.gone > 0 {
            let _ = writeln!(s, "  gone from here meanwhile {}", self.gone);
        }
        let _ = writeln!(s, "  bytes sent {}, received {}", self.bytes_sent, self.bytes_received);
        for (what, flow) in [("refused here", d), ("refused there", u)] {
            for (id, reason) in &flow.samples {
                let _ = writeln!(s, "  {what}: {id}: {reason}");
            }
        }
        if let End::Failed(why) = &self.end {
            let _ = writeln!(s, "error: {why}");
        }
        s
    }
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

fn by_reason(refused: &BTreeMap<&'static str, u64>) -> String {
    if refused.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = refused.iter().map(|(k, v)| format!("{k} {v}")).collect();
    format!(" ({})", parts.join(", "))
}

/// Why a sync stopped early.
enum Halt {
    Interrupted,
    Failed(String),
}

impl From<DbError> for Halt {
    fn from(e: DbError) -> Halt {
        Halt::Failed(format!("database: {e}"))
    }
}

struct Run<'a> {
    db: &'a Db,
    opts: &'a SyncOptions,
    relay: Upstream,
    interrupts: &'a mut mpsc::Receiver<()>,
    progress: Progress,
    r: SyncReport,
    phase: &'static str,
}

/// Runs a sync to its end. Each message on `interrupts` is one SIGINT.
pub async fn run(db: Db, opts: SyncOptions, mut interrupts: mpsc::Receiver<()>) -> SyncReport {
    let progress = Progress::new(opts.progress_every);
    let mut report = SyncReport {
        url: opts.url.clone(),
        direction: opts.direction,
        end: End::Complete,
        items: 0,
        rounds: 0,
        have: 0,
        need: 0,
        down: Flow::default(),
        missing: 0,
        unrequested: 0,
        up: Flow::default(),
        gone: 0,
        bytes_sent: 0,
        bytes_received: 0,
        items_time: Duration::ZERO,
        reconcile_time: Duration::ZERO,
        reconcile_bytes: 0,
        elapsed: Duration::ZERO,
    };
    let relay = tokio::select! {
        r = tokio::time::timeout(opts.timeout, Upstream::connect(&opts.url)) => match r {
            Ok(Ok(relay)) => relay,
            Ok(Err(e)) => {
                report.end = End::Failed(format!("{}: {e}", opts.url));
                return report;
            }
            Err(_) => {
                report.end = End::Failed(format!("{}: no connection in {} s", opts.url, opts.timeout.as_secs()));
                return report;
            }
        },
        Some(()) = interrupts.recv() => {
            report.end = End::Interrupted;
            return report;
        }
    };
    let mut run = Run {
        db: &db,
        opts: &opts,
        relay,
        interrupts: &mut interrupts,
        progress,
        r: report,
        phase: "reading our events",
    };
    let result = run.all().await;
    run.progress.finish();
    run.r.end = match result {
        Ok(()) => End::Complete,
        Err(Halt::Interrupted) => End::Interrupted,
        Err(Halt::Failed(why)) => End::Failed(why),
    };
    run.r.bytes_sent = run.relay.bytes_out;
    run.r.bytes_received = run.relay.bytes_in;
    run.r.elapsed = run.progress.elapsed();
    let Run { relay, r, .. } = run;
    relay.close().await;
    r
}

impl Run<'_> {
    async fn all(&mut self) -> Result<(), Halt> {
        let (have, need) = self.reconcile().await?;
        if self.opts.direction.down() {
            self.phase = "fetching";
            self.download(&need).await?;
        }
        if self.opts.direction.up() {
            self.phase = "sending";
            self.upload(&have).await?;
        }
        Ok(())
    }

    fn tick(&mut self) {
        let r = &self.r;
        let line = format!(
            "sync {}: {} rounds, have {} need {}; received {} ({} new), sent {} ({} new); {:.1} MB, {:.0} events/s",
            self.phase,
            r.rounds,
            r.have,
            r.need,
            r.down.moved,
            r.down.accepted,
            r.up.moved,
            r.up.accepted,
            (self.relay.bytes_in + self.relay.bytes_out) as f64 / 1e6,
            progress::rate(r.down.moved + r.up.moved, self.progress.elapsed()),
        );
        self.progress.tick(&line);
    }

    /// The relay's next message, or why there is none.
    async fn next(&mut self) -> Result<Incoming, Halt> {
        self.tick();
        let timeout = self.opts.timeout;
        tokio::select! {
            m = tokio::time::timeout(timeout, self.relay.recv()) => match m {
                Ok(Ok(m)) => Ok(m),
                Ok(Err(e)) => Err(Halt::Failed(format!("relay: {e}"))),
                Err(_) => Err(Halt::Failed(format!("relay: no message in {} s", timeout.as_secs()))),
            },
            Some(()) = self.interrupts.recv() => Err(Halt::Interrupted),
        }
    }

    async fn send(&mut self, text: String) -> Result<(), Halt> {
        self.relay
            .send(text)
            .await
            .map_err(|e| Halt::Failed(format!("relay: {e}")))
    }

    /// Ids only we have, and only they have.
    async fn reconcile(&mut self) -> Result<(Vec<[u8; 32]>, Vec<[u8; 32]>), Halt> {
        let filter = Filter::parse(&self.opts.filter).map_err(|e| Halt::Failed(format!("--filter: {e}")))?;
        let query = NegQuery {
            filter_json: &self.opts.filter,
            filter: &filter,
            hidden: &[],
            cap: self.opts.max_items,
        };
        let started = std::time::Instant::now();
        let items = match self.db.neg_items(&query, None, false).await?.0 {
            NegRead::Items { items, .. } => items,
            NegRead::TooMany | NegRead::NoBudget => {
                return Err(Halt::Failed(format!(
                    "more than --max-items {} events match the filter here",
                    self.opts.max_items
                )))
            }
        };
        self.r.items = items.len() as u64;
        self.r.items_time = started.elapsed();
        self.phase = "reconciling";
        let started = std::time::Instant::now();
        let bytes_before = self.relay.bytes_in + self.relay.bytes_out;
        let neg_failed = |e: negentropy::Error| Halt::Failed(format!("negentropy: {e}"));
        let mut neg = Negentropy::owned(items, FRAME_SIZE_LIMIT).map_err(neg_failed)?;
        let first = neg.initiate().map_err(neg_failed)?;
        let open = frame(
            "NEG-OPEN",
            NEG_SUB,
            &[&self.opts.filter, &json_string(&::hex::encode(first))],
        );
        self.send(open).await?;
        let (mut have, mut need) = (Vec::new(), Vec::new());
        loop {
            let hex_msg = match self.next().await? {
                Incoming::NegMsg { sub, hex } if sub == NEG_SUB => hex,
                Incoming::NegErr { sub, reason } if sub == NEG_SUB => {
                    return Err(Halt::Failed(format!("the relay ended the reconciliation: {reason}")))
                }
                Incoming::Notice(n) => {
                    return Err(Halt::Failed(format!(
                        "the relay answered NOTICE {n:?} (does it serve NIP-77?)"
                    )))
                }
                _ => continue,
            };
            self.r.rounds += 1;
            let bytes = ::hex::decode(&hex_msg).map_err(|_| Halt::Failed("the relay's NEG-MSG is not hex".into()))?;
            let (mut h, mut n): (Vec<Id>, Vec<Id>) = (Vec::new(), Vec::new());
            // The relay's bytes must not take the tool down with a panic
            // inside the library.
            let step = catch_unwind(AssertUnwindSafe(|| neg.reconcile_with_ids(&bytes, &mut h, &mut n)))
                .map_err(|_| Halt::Failed("negentropy failed on the relay's message".into()))?
                .map_err(neg_failed)?;
            have.extend(h.into_iter().map(|id| *id));
            need.extend(n.into_iter().map(|id| *id));
            self.r.have = have.len() as u64;
            self.r.need = need.len() as u64;
            match step {
                Some(next) => {
                    let msg = frame("NEG-MSG", NEG_SUB, &[&json_string(&::hex::encode(next))]);
                    self.send(msg).await?;
                }
                None => break,
            }
        }
        self.r.reconcile_time = started.elapsed();
        self.r.reconcile_bytes = self.relay.bytes_in + self.relay.bytes_out - bytes_before;
        self.send(frame("NEG-CLOSE", NEG_SUB, &[])).await?;
        Ok((have, need))
    }

    /// Fetches `need` from the relay and publishes it here.
    async fn download(&mut self, need: &[[u8; 32]]) -> Result<(), Halt> {
        for (n, chunk) in need.chunks(self.opts.ids_per_req.max(1)).enumerate() {
            let sub = format!("nostr-pg-admin-fetch-{n}");
            let ids: Vec<String> = chunk.iter().map(|id| format!("\"{}\"", hex::encode(id))).collect();
            let filter = format!("{{\"ids\":[{}],\"limit\":{}}}", ids.join(","), chunk.len());
            self.send(frame("REQ", &sub, &[&filter])).await?;
            let mut wanted: HashSet<[u8; 32]> = chunk.iter().copied().collect();
            let mut got: Vec<(String, String)> = Vec::with_capacity(chunk.len());
            loop {
                match self.next().await? {
                    Incoming::Event { sub: s, raw } if s == sub => {
                        let id = Event::parse(raw.get()).ok().map(|e| e.id);
                        match id {
                            Some(id) if wanted.remove(&id) => got.push((hex::encode(&id), raw.get().to_owned())),
                            _ => self.r.unrequested += 1,
                        }
                    }
                    Incoming::Eose { sub: s } if s == sub => break,
                    Incoming::Closed { sub: s, reason } if s == sub => {
                        if self.r.down.samples.len() < self.opts.samples {
                            self.r.down.samples.push((String::new(), format!("CLOSED {reason}")));
                        }
                        break;
                    }
                    _ => {}
                }
            }
            self.send(frame("CLOSE", &sub, &[])).await?;
            self.r.missing += wanted.len() as u64;
            self.r.down.moved += got.len() as u64;
            for part in got.chunks(self.opts.batch.max(1)) {
                self.publish(part.to_vec()).await?;
            }
        }
        Ok(())
    }

    /// One `publish_batch`, with events past the batch's lock budget sent
    /// again (the extension always takes a batch's first event).
    async fn publish(&mut self, mut events: Vec<(String, String)>) -> Result<(), Halt> {
        while !events.is_empty() {
            let raws: Vec<String> = events.iter().map(|(_, raw)| raw.clone()).collect();
            let auth = vec![None; raws.len()];
            // Relayed events have no client: blocked addresses do not apply.
            let addrs = vec![None; raws.len()];
            let outcome = self.db.publish_batch(&raws, &auth, &addrs).await?;
            let total = events.len();
            let mut deferred = Vec::new();
            let mut rows = outcome.rows.into_iter();
            for (id, raw) in events {
                match rows.next() {
                    Some(row) if batch::is_deferred(&row.message) && total > 1 => deferred.push((id, raw)),
                    Some(row) => self.r.down.settle(row.accepted, &id, &row.message, self.opts.samples),
                    None => return Err(Halt::Failed("publish_batch returned fewer rows than events".into())),
                }
            }
            events = deferred;
        }
        Ok(())
    }

    /// Sends `have` to the relay, `--window` at a time.
    async fn upload(&mut self, have: &[[u8; 32]]) -> Result<(), Halt> {
        for chunk in have.chunks(self.opts.ids_per_req.max(1)) {
            let ids: Vec<Vec<u8>> = chunk.iter().map(|id| id.to_vec()).collect();
            let events = self.db.stored_events(&ids).await?;
            self.r.gone += (chunk.len() - events.len().min(chunk.len())) as u64;
            let mut queue = events.into_iter();
            let mut waiting: HashSet<String> = HashSet::new();
            loop {
                while waiting.len() < self.opts.window.max(1) {
                    let Some(raw) = queue.next() else { break };
                    let Ok(event) = Event::parse(&raw) else {
                        self.r.gone += 1;
                        continue;
                    };
                    waiting.insert(hex::encode(&event.id));
                    self.r.up.moved += 1;
                    self.send(event_frame(&raw)).await?;
                }
                if waiting.is_empty() {
                    break;
                }
                if let Incoming::Ok { id, accepted, message } = self.next().await? {
                    if waiting.remove(&id) {
                        let message = if accepted || !message.is_empty() {
                            message
                        } else {
                            Prefix::Error.with("refused without a reason")
                        };
                        self.r.up.settle(accepted, &id, &message, self.opts.samples);
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flows_count_by_prefix() {
        let mut f = Flow::default();
        f.settle(true, "a", "", 1);
        f.settle(true, "b", "duplicate: have it", 1);
        f.settle(false, "c", "blocked: deleted", 1);
        f.settle(false, "d", "invalid: bad signature", 1);
        assert_eq!((f.accepted, f.duplicate, f.refused_total()), (1, 1, 2));
        assert_eq!(f.samples, [("c".to_owned(), "blocked: deleted".to_owned())]);
        assert_eq!(by_reason(&f.refused), " (blocked 1, invalid 1)");
    }
}
