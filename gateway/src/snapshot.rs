//! PostgreSQL snapshots (`pg_snapshot`) and transaction ids (`xid8`), as the
//! gateway sees them: which transactions a snapshot counts as finished.
//!
//! They are how live delivery stays exact without timers. A stored query
//! reports the snapshot it read with; a live event carries the id of the
//! transaction that accepted it. If that transaction is visible in the
//! query's snapshot, the query already covered the event (or the event is
//! older than the subscription), so it is not sent live; otherwise it
//! committed after the query looked, and it is sent.

use std::fmt;

/// A full (64-bit, never wrapping) transaction id, `xid8` in SQL.
pub type Xid = u64;

/// `pg_snapshot`: transactions below `xmin` are finished, those at or above
/// `xmax` had not started, and `xip` lists those in between still running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    xmin: Xid,
    xmax: Xid,
    /// Sorted, for binary search.
    xip: Vec<Xid>,
}

impl Snapshot {
    /// Parses the text form `xmin:xmax:xip,xip,...` (the xip list may be empty).
    pub fn parse(text: &str) -> Option<Snapshot> {
        let mut parts = text.trim().splitn(3, ':');
        let xmin = parts.next()?.parse().ok()?;
        let xmax = parts.next()?.parse().ok()?;
        let mut xip = Vec::new();
        for x in parts.next()?.split(',').filter(|x| !x.is_empty()) {
            xip.push(x.parse().ok()?);
        }
        xip.sort_unstable();
        (xmin <= xmax).then_some(Snapshot { xmin, xmax, xip })
    }

    /// Whether `xid` had finished when the snapshot was taken (what
    /// `pg_visible_in_snapshot` answers). For a transaction that wrote rows a
    /// reader can see, finished means committed.
    pub fn visible(&self, xid: Xid) -> bool {
        if xid < self.xmin {
            return true;
        }
        if xid >= self.xmax {
            return false;
        }
        self.xip.binary_search(&xid).is_err()
    }

    pub fn xmin(&self) -> Xid {
        self.xmin
    }

    /// Whether no transaction was running when it was taken (`xmin ==
    /// xmax`): it then sees exactly the transactions below `xmax`. That is the
    /// only form in which a hot standby's snapshot can be trusted, since
    /// `pg_current_snapshot()` on a standby leaves its running transactions
    /// out of the list (PostgreSQL keeps them as subtransactions there).
    pub fn is_settled(&self) -> bool {
        self.xmin == self.xmax
    }

    /// The smallest `b` such that every transaction this snapshot sees as
    /// finished is below `b`.
    pub fn finished_below(&self) -> Xid {
        let mut b = self.xmax;
        while b > self.xmin && self.xip.binary_search(&(b - 1)).is_ok() {
            b -= 1;
        }
        b
    }
}

impl fmt::Display for Snapshot {
    /// The text form PostgreSQL reads back as `pg_snapshot`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:", self.xmin, self.xmax)?;
        for (i, x) in self.xip.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{x}")?;
        }
        Ok(())
    }
}

/// Where a stored query read: its snapshot, and the incarnation (epoch) of
/// the transit table it saw (`None` when a crash had just emptied it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadPoint {
    pub snapshot: Snapshot,
    pub epoch: Option<i64>,
}

/// Parses an `xid8` in its text form.
pub fn parse_xid(text: &str) -> Option<Xid> {
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visibility_follows_postgres() {
        let s = Snapshot::parse("10:20:12,15").unwrap_or_else(|| panic!("parses"));
        assert!(s.visible(9));
        assert!(s.visible(10));
        assert!(s.visible(11));
        assert!(!s.visible(12));
        assert!(s.visible(13));
        assert!(!s.visible(15));
        assert!(s.visible(19));
        assert!(!s.visible(20));
        assert!(!s.visible(25));
        assert_eq!(s.to_string(), "10:20:12,15");
        assert_eq!(s.xmin(), 10);
    }

    #[test]
    fn settled_snapshots_and_the_finished_bound() {
        let p = |t: &str| Snapshot::parse(t).unwrap_or_else(|| panic!("{t}"));
        assert!(p("7:7:").is_settled() && !p("7:9:").is_settled());
        assert_eq!(p("7:7:").finished_below(), 7);
        assert_eq!(p("10:20:").finished_below(), 20);
        assert_eq!(p("10:20:18,19").finished_below(), 18);
        assert_eq!(p("10:13:10,11,12").finished_below(), 10);
        assert_eq!(p("10:20:12,19").finished_below(), 19);
    }

    #[test]
    fn text_forms() {
        let empty = Snapshot::parse("7:7:").unwrap_or_else(|| panic!("parses"));
        assert!(empty.visible(6) && !empty.visible(7));
        assert_eq!(empty.to_string(), "7:7:");
        assert_eq!(Snapshot::parse("9:3:"), None);
        assert_eq!(Snapshot::parse("1:2"), None);
        assert_eq!(Snapshot::parse("a:2:"), None);
        assert_eq!(Snapshot::parse("1:5:x"), None);
        assert_eq!(parse_xid(" 42 "), Some(42));
        assert_eq!(parse_xid("-1"), None);
    }
}
