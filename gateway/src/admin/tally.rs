//! What an import did, line by line: counts by outcome, the first few lines
//! of each outcome other than `accepted` with their reasons, and the two
//! renderings of it (a summary for people, JSON for programs).
//!
//! Outcomes are the NIP-01 prefixes the relay answered (`duplicate`,
//! `invalid`, `blocked`, ...; `accepted` for a new event), and three of the
//! tool's own for lines that never reached the relay: `malformed` (not an
//! event's JSON), `not-utf8` and `too-long`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Value};

use crate::reply::Prefix;

pub const ACCEPTED: &str = "accepted";
pub const DUPLICATE: &str = "duplicate";
pub const MALFORMED: &str = "malformed";
pub const NOT_UTF8: &str = "not-utf8";
pub const TOO_LONG: &str = "too-long";
/// Shadow-rejected by the relay's write policy: not stored.
pub const SHADOW: &str = "shadow";

/// The outcome of a `publish_batch` row: `accepted` for a new event, else
/// the prefix of its message (`error` when it has none it knows).
pub fn outcome_of(accepted: bool, message: &str) -> &'static str {
    if crate::reply::is_shadow(message) {
        return SHADOW;
    }
    match Prefix::of_message(message) {
        Some(p) => p.as_str(),
        None if accepted => ACCEPTED,
        None => Prefix::Error.as_str(),
    }
}

/// One line kept as an example of its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub line: u64,
    /// The event id the line claims ('' when none could be read).
    pub id: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Lines read so far.
    pub lines: u64,
    pub blank: u64,
    /// Lines per outcome.
    pub counts: BTreeMap<&'static str, u64>,
    /// Of the duplicates: found stored before publishing, and not sent.
    pub skipped_stored: u64,
    pub samples: BTreeMap<&'static str, Vec<Sample>>,
    /// Samples kept per outcome.
    pub max_samples: usize,
}

impl Tally {
    pub fn new(max_samples: usize) -> Tally {
        Tally {
            max_samples,
            ..Tally::default()
        }
    }

    pub fn record(&mut self, outcome: &'static str, line: u64, id: &str, reason: &str) {
        *self.counts.entry(outcome).or_default() += 1;
        if outcome == ACCEPTED {
            return;
        }
        let samples = self.samples.entry(outcome).or_default();
        if samples.len() < self.max_samples {
            samples.push(Sample {
                line,
                id: id.to_owned(),
                reason: reason.to_owned(),
            });
        }
    }

    /// Lines that got an outcome (blank lines excepted).
    pub fn settled(&self) -> u64 {
        self.counts.values().sum()
    }

    pub fn count(&self, outcome: &str) -> u64 {
        self.counts.get(outcome).copied().unwrap_or(0)
    }
}

/// How an import ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Every line of the input has its outcome.
    Complete,
    /// Stopped by SIGINT: lines not sent, or in batches abandoned.
    Interrupted,
    /// Stopped by an error (reading the input, or the database).
    Failed(String),
}

impl End {
    pub fn name(&self) -> &'static str {
        match self {
            End::Complete => "complete",
            End::Interrupted => "interrupted",
            End::Failed(_) => "failed",
        }
    }
}

/// The end of an import, with what is needed to report it.
#[derive(Debug, Clone)]
pub struct Report {
    pub tally: Tally,
    pub end: End,
    /// Events in batches abandoned while their transaction ran (a second
    /// SIGINT): each batch committed or rolled back as a whole.
    pub unknown: u64,
    pub elapsed: Duration,
    pub compression: &'static str,
}

impl Report {
    /// Lines read but never sent (those in abandoned batches are `unknown`).
    pub fn unsettled(&self) -> u64 {
        self.tally
            .lines
            .saturating_sub(self.tally.blank + self.tally.settled() + self.unknown)
    }

    pub fn rate(&self) -> f64 {
        self.tally.settled() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn json(&self) -> Value {
        let t = &self.tally;
        let samples: BTreeMap<&str, Vec<Value>> = t
            .samples
            .iter()
            .map(|(k, v)| {
                let list = v
                    .iter()
                    .map(|s| json!({"line": s.line, "id": s.id, "reason": s.reason}))
                    .collect();
                (*k, list)
            })
            .collect();
        let mut out = json!({
            "status": self.end.name(),
            "compression": self.compression,
            "lines": t.lines,
            "blank": t.blank,
            "outcomes": t.counts,
            "skipped_stored": t.skipped_stored,
            "unsettled": self.unsettled(),
            "unknown": self.unknown,
            "seconds": (self.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            "events_per_second": self.rate().round(),
            "samples": samples,
        });
        if let (End::Failed(why), Some(obj)) = (&self.end, out.as_object_mut()) {
            obj.insert("error".into(), Value::String(why.clone()));
        }
        out
    }

    /// The summary for people: counts, then the sample lines.
    pub fn text(&self) -> String {
        let t = &self.tally;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "import {}: {} lines ({}) in {:.1} s, {:.0} events/s",
            self.end.name(),
            t.lines,
            self.compression,
            self.elapsed.as_secs_f64(),
            self.rate()
        );
        for (outcome, n) in &t.counts {
            let _ = write!(s, "  {outcome:<14} {n}");
            if *outcome == DUPLICATE && t.skipped_stored > 0 {
                let _ = write!(s, " ({} found stored before publishing)", t.skipped_stored);
            }
            s.push('\n');
        }
        if t.blank > 0 {
            let _ = writeln!(s, "  {:<14} {}", "blank", t.blank);
        }
        if self.unsettled() > 0 {
            let _ = writeln!(
                s,
                "  {:<14} {} (not sent: run the import again)",
                "unsettled",
                self.unsettled()
            );
        }
        if self.unknown > 0 {
            let _ = writeln!(
                s,
                "  {:<14} {} (in batches abandoned mid-transaction: run the import again)",
                "unknown", self.unknown
            );
        }
        for (outcome, samples) in &t.samples {
            let _ = writeln!(s, "first {outcome}:");
            for x in samples {
                let id = if x.id.is_empty() { "-" } else { x.id.as_str() };
                let _ = writeln!(s, "  line {}: {id}: {}", x.line, x.reason);
            }
        }
        if let End::Failed(why) = &self.end {
            let _ = writeln!(s, "error: {why}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_follow_the_prefix() {
        assert_eq!(outcome_of(true, ""), ACCEPTED);
        assert_eq!(outcome_of(true, "duplicate: have it"), DUPLICATE);
        assert_eq!(outcome_of(false, "blocked: deleted"), "blocked");
        assert_eq!(outcome_of(false, "invalid: bad signature"), "invalid");
        assert_eq!(outcome_of(false, "strange"), "error");
    }

    #[test]
    fn keeps_a_few_samples_and_reports_both_ways() {
        let mut t = Tally::new(2);
        t.lines = 7;
        t.blank = 1;
        for line in 1..=3 {
            t.record("invalid", line, "ab", "invalid: bad signature");
        }
        t.record(ACCEPTED, 5, "cd", "");
        t.record(DUPLICATE, 6, "cd", "duplicate: already stored");
        t.skipped_stored = 1;
        let r = Report {
            tally: t,
            end: End::Interrupted,
            unknown: 0,
            elapsed: Duration::from_secs(2),
            compression: "plain",
        };
        assert_eq!(r.unsettled(), 1);
        let j = r.json();
        assert_eq!(j["status"], "interrupted");
        assert_eq!(j["outcomes"]["invalid"], 3);
        assert_eq!(j["samples"]["invalid"].as_array().map(Vec::len), Some(2));
        assert_eq!(j["samples"]["invalid"][1]["line"], 2);
        assert!(j["samples"].get("accepted").is_none());
        let text = r.text();
        assert!(
            text.contains("duplicate      1 (1 found stored before publishing)"),
            "{text}"
        );
        assert!(text.contains("line 2: ab: invalid: bad signature"), "{text}");
        assert!(text.contains("unsettled      1"), "{text}");
    }
}
