//! Read replicas: one pool per streaming standby, whether each is in
//! rotation, and which one serves the next stored query.
//!
//! A replica is in rotation while it answers, is still a standby (a promoted
//! one follows no primary any more) and has replayed the primary's WAL to
//! within `replicas.max_lag_bytes` and `replicas.max_lag_ms`. [`watch`]
//! checks every replica each `replicas.check_every_ms`; a query that fails on
//! a replica takes it out at once ([`Replicas::take_out`]), and the next
//! check that finds it healthy puts it back. Whether a replica's answer may
//! be used at all is decided per query, from its snapshot (`read_route.rs`):
//! the rotation only keeps queries away from replicas that are down or far
//! behind, where they would be wasted.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::standby::ReplayStatus;
use super::{Db, DbError};
use crate::config::{DatabaseConfig, ReplicaConfig};
use crate::limits::lock;
use crate::metrics::ReplicaStatus;
use crate::shutdown::stopped;

/// One read replica.
pub struct Replica {
    pub db: Db,
    pub label: String,
    health: Mutex<Health>,
    /// Stored queries whose answer came from here.
    answered: AtomicU64,
}

#[derive(Debug, Clone, Default)]
struct Health {
    up: bool,
    lag_bytes: u64,
    lag_seconds: f64,
    /// Why it is out of rotation (empty while up), for the log.
    why: String,
}

impl Replica {
    pub fn is_up(&self) -> bool {
        lock(&self.health).up
    }

    /// Counts a stored query this replica answered.
    pub fn answered(&self) {
        self.answered.fetch_add(1, Relaxed);
    }

    fn set(&self, next: Health) {
        let mut h = lock(&self.health);
        if h.up != next.up || h.why == "not checked yet" {
            if next.up {
                tracing::info!("read replica {} is in rotation", self.label);
            } else {
                tracing::warn!("read replica {} out of rotation: {}", self.label, next.why);
            }
        }
        *h = next;
    }
}

/// Every configured read replica; empty when none is.
pub struct Replicas {
    list: Vec<Replica>,
    next: AtomicUsize,
    settings: ReplicaConfig,
}

impl Replicas {
    /// Pools for `urls` (nothing connects yet); each starts out of rotation
    /// until its first check.
    pub fn new(urls: &[String], database: &DatabaseConfig, settings: ReplicaConfig) -> Result<Replicas, DbError> {
        let mut list = Vec::with_capacity(urls.len());
        for url in urls {
            let db = Db::new(url, database.clone())?;
            list.push(Replica {
                label: db.label(),
                db,
                health: Mutex::new(Health {
                    why: "not checked yet".into(),
                    ..Health::default()
                }),
                answered: AtomicU64::new(0),
            });
        }
        Ok(Replicas {
            list,
            next: AtomicUsize::new(0),
            settings,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The replicas in rotation, the next in turn first (round robin), the
    /// others after it as fallbacks.
    pub fn in_rotation(&self) -> Vec<&Replica> {
        let n = self.list.len();
        if n == 0 {
            return Vec::new();
        }
        let start = self.next.fetch_add(1, Relaxed) % n;
        (0..n)
            .filter_map(|i| self.list.get((start + i) % n))
            .filter(|r| r.is_up())
            .collect()
    }

    /// Takes a replica out of rotation after a failed query; the next check
    /// puts it back if it is healthy.
    pub fn take_out(&self, replica: &Replica, why: &DbError) {
        let mut h = lock(&replica.health).clone();
        h.up = false;
        h.why = format!("query failed: {why}");
        replica.set(h);
    }

    /// Closes idle and old pooled connections of every replica; how many.
    pub fn reap(&self) -> usize {
        self.list.iter().map(|r| r.db.reap()).sum()
    }

    /// What `/metrics` shows.
    pub fn statuses(&self) -> Vec<ReplicaStatus> {
        self.list
            .iter()
            .map(|r| {
                let h = lock(&r.health).clone();
                ReplicaStatus {
                    label: r.label.clone(),
                    up: h.up,
                    lag_bytes: h.lag_bytes,
                    lag_seconds: h.lag_seconds,
                    queries: r.answered.load(Relaxed),
                }
            })
            .collect()
    }

    /// One round of checks: the primary's WAL position, then each replica's
    /// replay against it.
    pub async fn check(&self, primary: &Db) {
        let bound = self.timeout();
        let primary_lsn = match tokio::time::timeout(bound, primary.wal_position()).await {
            Ok(Ok(lsn)) => Some(lsn),
            Ok(Err(e)) => {
                tracing::debug!("replica check: no WAL position from the primary: {e}");
                None
            }
            Err(_) => None,
        };
        for replica in &self.list {
            let status = match tokio::time::timeout(bound, replica.db.replay_status()).await {
                Ok(Ok(status)) => Ok(status),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {bound:?}")),
            };
            replica.set(judge(&self.settings, primary_lsn, status));
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.settings.check_every_ms.max(1_000))
    }
}

/// Health from one check: `primary_lsn` is the primary's WAL position read
/// just before (None when the primary did not answer: only the age of the
/// last replayed transaction can tell lag then).
fn judge(settings: &ReplicaConfig, primary_lsn: Option<u64>, status: Result<ReplayStatus, String>) -> Health {
    let status = match status {
        Ok(s) => s,
        Err(why) => {
            return Health {
                why: format!("unreachable: {why}"),
                ..Health::default()
            }
        }
    };
    if !status.in_recovery {
        return Health {
            why: "not a standby (promoted?)".into(),
            ..Health::default()
        };
    }
    let lag_bytes = match (primary_lsn, status.replay_lsn) {
        (Some(p), Some(r)) => p.saturating_sub(r),
        _ => 0,
    };
    // The age of the last replayed transaction is lag only while WAL is left
    // to replay: a caught-up replica of an idle primary replayed long ago.
    let behind = lag_bytes > 0 || primary_lsn.is_none();
    let lag_seconds = if behind {
        status.replay_age.unwrap_or(0.0).max(0.0)
    } else {
        0.0
    };
    let max_seconds = settings.max_lag_ms as f64 / 1000.0;
    let why = if status.replay_lsn.is_none() {
        "has replayed nothing yet".to_owned()
    } else if lag_bytes > settings.max_lag_bytes {
        format!("{lag_bytes} bytes behind (limit {})", settings.max_lag_bytes)
    } else if lag_seconds > max_seconds {
        format!("{lag_seconds:.1} s behind (limit {max_seconds} s)")
    } else {
        String::new()
    };
    Health {
        up: why.is_empty(),
        lag_bytes,
        lag_seconds,
        why,
    }
}

/// Checks the replicas every `replicas.check_every_ms` until shutdown.
pub async fn watch(replicas: Arc<Replicas>, primary: Db, mut stop: watch::Receiver<bool>) {
    if replicas.is_empty() {
        return;
    }
    let every = Duration::from_millis(replicas.settings.check_every_ms);
    loop {
        replicas.check(&primary).await;
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopped(&mut stop) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(lsn: u64, age: f64) -> Result<ReplayStatus, String> {
        Ok(ReplayStatus {
            in_recovery: true,
            replay_lsn: Some(lsn),
            replay_age: Some(age),
        })
    }

    #[test]
    fn judged_by_reachability_role_and_lag() {
        let s = ReplicaConfig {
            max_lag_bytes: 100,
            max_lag_ms: 2_000,
            ..ReplicaConfig::default()
        };
        let caught_up = judge(&s, Some(1_000), status(1_000, 3600.0));
        assert!(caught_up.up, "an idle primary's replica is not lagging: {caught_up:?}");
        assert_eq!(caught_up.lag_seconds, 0.0);
        assert!(judge(&s, Some(1_050), status(1_000, 1.0)).up);
        let bytes = judge(&s, Some(1_200), status(1_000, 1.0));
        assert!(!bytes.up && bytes.lag_bytes == 200, "{bytes:?}");
        let seconds = judge(&s, Some(1_010), status(1_000, 3.0));
        assert!(!seconds.up && seconds.lag_seconds == 3.0, "{seconds:?}");
        assert!(!judge(&s, None, status(1_000, 3.0)).up, "no primary: the age decides");
        assert!(judge(&s, None, status(1_000, 0.5)).up);
        assert!(!judge(&s, Some(1), Err("refused".into())).up);
        let promoted = Ok(ReplayStatus {
            in_recovery: false,
            replay_lsn: None,
            replay_age: None,
        });
        assert!(!judge(&s, Some(1), promoted).up);
    }

    #[test]
    fn rotation_starts_with_the_next_replica_and_skips_those_out() {
        let urls: Vec<String> = (1..=3).map(|p| format!("postgres://u@127.0.0.1:{p}/x")).collect();
        let set = Replicas::new(&urls, &DatabaseConfig::default(), ReplicaConfig::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(set.in_rotation().is_empty(), "none checked yet");
        for r in &set.list {
            r.set(Health {
                up: true,
                ..Health::default()
            });
        }
        let firsts: Vec<String> = (0..3).map(|_| set.in_rotation()[0].label.clone()).collect();
        // The check above took the first turn.
        assert_eq!(firsts, ["127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:1"]);
        set.take_out(&set.list[1], &DbError::Unavailable("gone".into()));
        let labels: Vec<String> = set.in_rotation().iter().map(|r| r.label.clone()).collect();
        assert_eq!(labels, ["127.0.0.1:3", "127.0.0.1:1"]);
        assert_eq!(set.statuses().iter().filter(|s| s.up).count(), 2);
    }
}
