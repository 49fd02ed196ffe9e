//! `nostr.retention`: how long events of each kind are kept, read by
//! housekeeping (and checked when the setting is set). Plain Rust.
//!
//! A comma-separated list of `KINDS:AGE` entries, for example
//! `1:90d, 7:30d, 0:forever, 3:forever, 30000-39999:1y, *:2y`:
//!
//! - `KINDS` is a kind (`7`), an inclusive range (`30000-39999`), or `*`:
//!   every kind no other entry names.
//! - `AGE` is a whole number with a unit, `s`, `min`, `h`, `d`, `w` or `y`
//!   (365 days), or `forever`.
//!
//! Events whose `created_at` is older than their kind's age are removed.
//! Kinds no entry covers, when there is no `*`, are kept forever; an empty
//! setting (the default) keeps everything. No kind may be named twice and
//! `*` at most once, so every kind has one age and the list reads the same in
//! any order.

use thiserror::Error;

/// Which kinds a rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kinds {
    /// `first..=last`.
    Range(u16, u16),
    /// Every kind no other rule covers (`*`).
    Other,
}

/// One entry: its kinds, and how long they are kept (seconds; `None`:
/// forever).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub kinds: Kinds,
    pub keep: Option<u64>,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RetentionError {
    #[error("entry `{0}` is not KINDS:AGE (for example `1:90d` or `*:1y`)")]
    Entry(String),
    #[error("`{0}` is not a kind, a range like 30000-39999, or *")]
    Kinds(String),
    #[error("`{0}` is not an age: a whole number of s, min, h, d, w or y (365 days), or forever")]
    Age(String),
    #[error("kind {0} is named by more than one entry")]
    Overlap(u16),
    #[error("* is named more than once")]
    TwoDefaults,
}

/// Parses the setting (see the module documentation).
pub fn parse(text: &str) -> Result<Vec<Rule>, RetentionError> {
    let mut rules: Vec<Rule> = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (kinds, age) = entry
            .split_once(':')
            .ok_or_else(|| RetentionError::Entry(entry.to_owned()))?;
        let rule = Rule {
            kinds: kinds_of(kinds.trim())?,
            keep: age_of(age.trim())?,
        };
        for other in &rules {
            match (other.kinds, rule.kinds) {
                (Kinds::Other, Kinds::Other) => return Err(RetentionError::TwoDefaults),
                (Kinds::Range(a, b), Kinds::Range(c, d)) if a <= d && c <= b => {
                    return Err(RetentionError::Overlap(a.max(c)))
                }
                _ => {}
            }
        }
        rules.push(rule);
    }
    Ok(rules)
}

fn kinds_of(text: &str) -> Result<Kinds, RetentionError> {
    if text == "*" {
        return Ok(Kinds::Other);
    }
    let bad = || RetentionError::Kinds(text.to_owned());
    let kind = |s: &str| s.trim().parse::<u16>().map_err(|_| bad());
    match text.split_once('-') {
        Some((first, last)) => {
            let (first, last) = (kind(first)?, kind(last)?);
            if first > last {
                return Err(bad());
            }
            Ok(Kinds::Range(first, last))
        }
        None => kind(text).map(|k| Kinds::Range(k, k)),
    }
}

fn age_of(text: &str) -> Result<Option<u64>, RetentionError> {
    if text == "forever" {
        return Ok(None);
    }
    let bad = || RetentionError::Age(text.to_owned());
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let unit: u64 = match unit.trim() {
        "s" => 1,
        "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "y" => 365 * 86_400,
        _ => return Err(bad()),
    };
    // Zero would remove every event of those kinds as soon as it is stored.
    match number.checked_mul(unit) {
        Some(secs) if secs > 0 => Ok(Some(secs)),
        _ => Err(bad()),
    }
}

/// The kind ranges the rules name (what `*` leaves out).
pub fn named_ranges(rules: &[Rule]) -> Vec<(u16, u16)> {
    rules
        .iter()
        .filter_map(|r| match r.kinds {
            Kinds::Range(a, b) => Some((a, b)),
            Kinds::Other => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    #[test]
    fn empty_keeps_everything() {
        assert_eq!(parse(""), Ok(vec![]));
        assert_eq!(parse("  , "), Ok(vec![]));
    }

    #[test]
    fn kinds_ranges_default_and_units() {
        let rules = parse("1:90d, 7:30d ,0:forever,30000-39999:1y,*:2w,5:12h,6:30min,8:45s").unwrap_or_default();
        assert_eq!(
            rules,
            vec![
                Rule {
                    kinds: Kinds::Range(1, 1),
                    keep: Some(90 * DAY)
                },
                Rule {
                    kinds: Kinds::Range(7, 7),
                    keep: Some(30 * DAY)
                },
                Rule {
                    kinds: Kinds::Range(0, 0),
                    keep: None
                },
                Rule {
                    kinds: Kinds::Range(30000, 39999),
                    keep: Some(365 * DAY)
                },
                Rule {
                    kinds: Kinds::Other,
                    keep: Some(14 * DAY)
                },
                Rule {
                    kinds: Kinds::Range(5, 5),
                    keep: Some(12 * 3600)
                },
                Rule {
                    kinds: Kinds::Range(6, 6),
                    keep: Some(30 * 60)
                },
                Rule {
                    kinds: Kinds::Range(8, 8),
                    keep: Some(45)
                },
            ]
        );
        assert_eq!(named_ranges(&rules).len(), 7);
    }

    #[test]
    fn mistakes_are_named() {
        let err = |s: &str| parse(s).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err("1=90d").contains("`1=90d` is not KINDS:AGE"));
        assert!(err("x:90d").contains("`x` is not a kind"));
        assert!(err("70000:1d").contains("`70000` is not a kind"));
        assert!(err("9-3:1d").contains("`9-3` is not a kind"));
        assert!(err("1:90").contains("`90` is not an age"));
        assert!(err("1:3m").contains("`3m` is not an age"));
        assert!(err("1:0d").contains("`0d` is not an age"));
        assert!(err("1:-1d").contains("is not an age"));
        assert!(err("1:99999999999999999999y").contains("is not an age"));
        assert_eq!(err("1:1d,0-5:2d"), "kind 1 is named by more than one entry");
        assert_eq!(err("*:1d,*:2d"), "* is named more than once");
    }
}
