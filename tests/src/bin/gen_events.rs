//! Generates pre-signed Nostr events as JSONL, one canonical event per line,
//! for load tests and index measurements.
//!
//! `gen_events --count N --seed S --out FILE [--authors A] [--now UNIX_TIME]`
//!
//! The output depends only on the arguments (signatures use no auxiliary
//! randomness), so a seed and `--now` reproduce a file exactly. The data has
//! the skew of a real relay:
//! - authors post with Zipf-like activity (a few post a lot, most rarely);
//! - kinds: mostly notes (1) and reactions (7), some long-form articles
//!   (30023, each its own address), few profiles (0) and contact lists (3)
//!   from uniformly chosen authors, so most replaceable events survive;
//! - `t` tags: `nostr` on about 30% of events, ten medium tags with Zipf
//!   popularity, and a long tail of rare ones (about 10 events each);
//! - `p` tags: replies and reactions name the author they answer (so active
//!   authors are popular), mentions and contact lists pick Zipf-popular keys;
//! - `e` tags: replies and reactions reference earlier notes, reactions
//!   mostly a small set of hot notes by very active authors;
//! - `created_at` spread over one year ending at `--now`, roughly in order.
//!
//! Events are planned in chunks on one thread (so every random choice is
//! deterministic) and signed on every core.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::time::Instant;

use e2e::arg;
use e2e::rng::Rng;
use nostr_pg_core::sign::Keys;
use nostr_pg_core::Event;

const YEAR: i64 = 365 * 24 * 3600;
/// Events planned, then signed in parallel, at a time; references only reach
/// events of earlier chunks, whose ids are known.
const CHUNK: usize = 10_000;
const MEDIUM_TAGS: [&str; 10] = [
    "bitcoin",
    "zaps",
    "art",
    "photography",
    "music",
    "dev",
    "memes",
    "news",
    "food",
    "travel",
];
const TAIL_TAGS: u64 = 30_000;
/// Notes by the most active authors that collect most reactions.
const HOT_NOTES: usize = 1_000;
const HOT_AUTHOR_RANK: usize = 100;
/// Replies and ordinary reactions pick among this many most recent notes.
const RECENT_NOTES: usize = 50_000;
const WORDS: [&str; 24] = [
    "gm",
    "nostr",
    "relay",
    "zap",
    "sats",
    "keys",
    "freedom",
    "protocol",
    "note",
    "client",
    "signal",
    "pura",
    "vida",
    "hello",
    "world",
    "building",
    "shipping",
    "today",
    "coffee",
    "lightning",
    "postgres",
    "index",
    "latency",
    "café",
];

/// Ranks 0..n with weight 1 / (rank + 1)^s.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Zipf {
        let mut total = 0.0;
        let cdf = (1..=n)
            .map(|r| {
                total += 1.0 / (r as f64).powf(s);
                total
            })
            .collect::<Vec<_>>();
        Zipf {
            cdf: cdf.into_iter().map(|c| c / total).collect(),
        }
    }

    fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

/// An event before signing.
struct Plan {
    author: usize,
    created_at: i64,
    kind: u16,
    tags: Vec<Vec<String>>,
    content: String,
}

/// A stored note others can reply to or react to.
struct Note {
    id: String,
    author: usize,
}

struct Generator {
    rng: Rng,
    activity: Zipf,
    medium: Zipf,
    hot_rank: Zipf,
    pubkeys: Vec<String>,
    notes: Vec<Note>,
    hot: Vec<usize>,
    first: i64,
    step: f64,
}

fn tag(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| (*s).to_owned()).collect()
}

impl Generator {
    fn plan(&mut self, i: usize) -> Plan {
        let jitter = i64::try_from(self.rng.below(300)).unwrap_or(0);
        let created_at = self.first + (i as f64 * self.step) as i64 + jitter;
        let r = self.rng.unit();
        let (kind, author) = if r < 0.01 {
            (0, self.rng.index(self.pubkeys.len()))
        } else if r < 0.02 {
            (3, self.rng.index(self.pubkeys.len()))
        } else if r < 0.04 {
            (30023, self.activity.sample(&mut self.rng))
        } else if r < 0.42 && !self.notes.is_empty() {
            (7, self.activity.sample(&mut self.rng))
        } else {
            (1, self.activity.sample(&mut self.rng))
        };
        let (tags, content) = match kind {
            0 => (
                Vec::new(),
                format!(r#"{{"name":"user{author}","about":"{}"}}"#, self.words(3, 12)),
            ),
            3 => (self.follows(), String::new()),
            7 => self.reaction(),
            30023 => {
                let mut tags = vec![tag(&["d", &format!("article-{i}")]), tag(&["title", &self.words(2, 6)])];
                tags.extend(self.topics());
                (tags, self.words(100, 300))
            }
            _ => self.note(),
        };
        Plan {
            author,
            created_at,
            kind,
            tags,
            content,
        }
    }

    fn words(&mut self, min: u64, max: u64) -> String {
        let n = min + self.rng.below(max - min + 1);
        let words: Vec<&str> = (0..n).map(|_| WORDS[self.rng.index(WORDS.len())]).collect();
        words.join(" ")
    }

    fn topics(&mut self) -> Vec<Vec<String>> {
        let mut tags = Vec::new();
        if self.rng.chance(0.5) {
            tags.push(tag(&["t", "nostr"]));
        }
        if self.rng.chance(0.15) {
            tags.push(tag(&["t", MEDIUM_TAGS[self.medium.sample(&mut self.rng)]]));
        }
        if self.rng.chance(0.5) {
            tags.push(tag(&["t", &format!("tag{}", self.rng.below(TAIL_TAGS))]));
        }
        tags
    }

    fn recent_note(&mut self) -> Option<&Note> {
        let from = self.notes.len().saturating_sub(RECENT_NOTES);
        let span = self.notes.len() - from;
        if span == 0 {
            return None;
        }
        let k = from + self.rng.index(span);
        self.notes.get(k)
    }

    fn note(&mut self) -> (Vec<Vec<String>>, String) {
        let mut tags = Vec::new();
        if self.rng.chance(0.3) {
            if let Some(n) = self.recent_note() {
                let (id, author) = (n.id.clone(), n.author);
                tags.push(tag(&["e", &id, "", "reply"]));
                tags.push(tag(&["p", &self.pubkeys[author]]));
            }
        }
        if self.rng.chance(0.1) {
            let who = self.activity.sample(&mut self.rng);
            tags.push(tag(&["p", &self.pubkeys[who]]));
        }
        tags.extend(self.topics());
        (tags, self.words(5, 40))
    }

    fn reaction(&mut self) -> (Vec<Vec<String>>, String) {
        let hot = self.hot_rank.sample(&mut self.rng);
        let target = match self.hot.get(hot) {
            Some(&k) if self.rng.chance(0.6) => self.notes.get(k),
            _ => self.recent_note(),
        };
        let (id, author) = match target {
            Some(n) => (n.id.clone(), n.author),
            None => return (Vec::new(), "+".into()),
        };
        let content = match self.rng.below(10) {
            0 => "🤙",
            1 => "❤️",
            _ => "+",
        };
        (
            vec![tag(&["e", &id]), tag(&["p", &self.pubkeys[author]])],
            content.into(),
        )
    }

    fn follows(&mut self) -> Vec<Vec<String>> {
        let n = 10 + self.rng.below(290);
        let mut seen = HashSet::new();
        let mut tags = Vec::new();
        for _ in 0..n {
            let who = self.activity.sample(&mut self.rng);
            if seen.insert(who) {
                tags.push(tag(&["p", &self.pubkeys[who]]));
            }
        }
        tags
    }

    /// Remembers the signed notes of a chunk for later replies and reactions.
    fn remember(&mut self, plans: &[Plan], events: &[Event]) {
        for (p, e) in plans.iter().zip(events) {
            if p.kind != 1 {
                continue;
            }
            if p.author < HOT_AUTHOR_RANK && self.hot.len() < HOT_NOTES {
                self.hot.push(self.notes.len());
            }
            self.notes.push(Note {
                id: nostr_pg_core::hex::encode(&e.id),
                author: p.author,
            });
        }
    }
}

fn sign_all(keys: &[Keys], plans: &[Plan], threads: usize) -> Vec<Event> {
    let per = plans.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = plans
            .chunks(per)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|p| keys[p.author].sign(p.created_at, p.kind, p.tags.clone(), &p.content))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    })
}

fn author_keys(seed: u64, n: usize, threads: usize) -> Vec<Keys> {
    let per = n.div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .step_by(per)
            .map(|start| {
                s.spawn(move || {
                    (start..(start + per).min(n))
                        .map(|a| Keys::from_seed(&format!("nostr_pg bench {seed} author {a}")))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    })
}

fn num<T: std::str::FromStr>(name: &str, default: Option<T>) -> T {
    match arg(name).map(|v| v.parse::<T>()) {
        Some(Ok(v)) => v,
        Some(Err(_)) => die(&format!("{name}: not a number")),
        None => default.unwrap_or_else(|| die(&format!("{name} is required"))),
    }
}

fn die(msg: &str) -> ! {
    eprintln!("gen_events: {msg}\nusage: gen_events --count N --seed S --out FILE [--authors A] [--now UNIX_TIME]");
    std::process::exit(2)
}

fn main() -> std::io::Result<()> {
    let count: usize = num("--count", None);
    let seed: u64 = num("--seed", None);
    let out = arg("--out").unwrap_or_else(|| die("--out is required"));
    let authors: usize = num("--authors", Some(20_000));
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let now: i64 = num("--now", Some(wall));
    if authors == 0 {
        die("--authors must be positive");
    }
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    eprintln!("gen_events: {count} events, seed {seed}, {authors} authors, now {now}, {threads} threads");

    let started = Instant::now();
    let keys = author_keys(seed, authors, threads);
    let mut g = Generator {
        rng: Rng(seed),
        activity: Zipf::new(authors, 0.8),
        medium: Zipf::new(MEDIUM_TAGS.len(), 1.0),
        hot_rank: Zipf::new(HOT_NOTES, 1.0),
        pubkeys: keys.iter().map(|k| nostr_pg_core::hex::encode(&k.pubkey())).collect(),
        notes: Vec::new(),
        hot: Vec::new(),
        // The last event lands at most 300 s (the jitter) before `now`.
        first: now - YEAR,
        step: (YEAR - 300) as f64 / count.max(1) as f64,
    };
    eprintln!("gen_events: most active author {}", g.pubkeys[0]);

    let mut w = BufWriter::with_capacity(1 << 20, File::create(&out)?);
    let mut done = 0;
    while done < count {
        let n = CHUNK.min(count - done);
        let plans: Vec<Plan> = (done..done + n).map(|i| g.plan(i)).collect();
        let events = sign_all(&keys, &plans, threads);
        for e in &events {
            w.write_all(e.canonical_json().as_bytes())?;
            w.write_all(b"\n")?;
        }
        g.remember(&plans, &events);
        done += n;
        if done % 100_000 == 0 || done == count {
            let secs = started.elapsed().as_secs_f64();
            eprintln!("gen_events: {done} events, {:.0} events/s", done as f64 / secs);
        }
    }
    w.flush()?;
    Ok(())
}
