//! What the home page shows that changes: events per second over the last
//! minutes (the gateway's accepted-events counter, sampled at a fixed period
//! by a task beside the connections; per gateway, in memory, a few hundred
//! bytes), and the database's numbers, cached so that page views cost at
//! most one query per [`HOME_CACHE_FOR`].

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::db::{Db, DbError, HomeData};
use crate::limits::lock;

/// How long the database's numbers are shown before they are read again.
pub const HOME_CACHE_FOR: Duration = Duration::from_secs(2);
/// How long a page view waits for the database.
const HOME_TIMEOUT: Duration = Duration::from_secs(3);
/// The public kinds the home page lists: notes, comments (NIP-22) and
/// long-form articles (NIP-23). Never DMs, gift wraps or anything another
/// restriction applies to.
const RECENT_FILTER: &str = r#"[{"kinds":[1,1111,30023],"limit":20}]"#;

/// How often the counter is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// Samples kept: five minutes at [`SAMPLE_EVERY`].
const KEEP: usize = 31;

/// Samples of a monotonic counter, oldest first.
#[derive(Debug, Default)]
pub struct RateHistory {
    samples: Mutex<VecDeque<(Instant, u64)>>,
}

impl RateHistory {
    pub fn record(&self, at: Instant, total: u64) {
        let mut samples = lock(&self.samples);
        if samples.len() >= KEEP {
            samples.pop_front();
        }
        samples.push_back((at, total));
    }

    /// Per-second rates between consecutive samples, oldest first, and a
    /// last one from the newest sample to `(now, total)`.
    pub fn rates(&self, now: Instant, total: u64) -> Vec<f64> {
        let samples = lock(&self.samples);
        let points: Vec<(Instant, u64)> = samples.iter().copied().chain([(now, total)]).collect();
        points
            .windows(2)
            .filter_map(|w| match w {
                [(t0, c0), (t1, c1)] => {
                    // At least a second: the newest sample may be a moment old,
                    // and a few events over a millisecond are no rate.
                    let secs = t1.saturating_duration_since(*t0).as_secs_f64().max(1.0);
                    Some(c1.saturating_sub(*c0) as f64 / secs)
                }
                _ => None,
            })
            .collect()
    }
}

/// The database's part of the home page, read at most once per
/// [`HOME_CACHE_FOR`] (concurrent views wait for the same read).
#[derive(Debug, Default)]
pub struct HomeCache {
    /// A failure is kept for the same period: views queue on the lock, and
    /// with a database that hangs each would otherwise wait in turn.
    cached: tokio::sync::Mutex<Option<(Instant, HomeRead)>>,
}

/// One read of the home page's numbers, shared by the views that use it.
pub type HomeRead = Result<Arc<HomeData>, DbError>;

impl HomeCache {
    pub async fn get(&self, db: &Db) -> HomeRead {
        let mut cached = self.cached.lock().await;
        if let Some((at, data)) = cached.as_ref() {
            if at.elapsed() < HOME_CACHE_FOR {
                return data.clone();
            }
        }
        let data = match tokio::time::timeout(HOME_TIMEOUT, db.home(RECENT_FILTER)).await {
            Ok(read) => read.map(Arc::new),
            Err(_) => Err(DbError::Unavailable("the database did not answer in time".into())),
        };
        *cached = Some((Instant::now(), data.clone()));
        data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_between_samples_and_now() {
        let h = RateHistory::default();
        let t0 = Instant::now();
        assert!(h.rates(t0, 5).is_empty(), "nothing to compare yet");
        h.record(t0, 0);
        assert_eq!(h.rates(t0, 3), vec![3.0], "a moment after a sample: over one second");
        h.record(t0 + Duration::from_secs(10), 50);
        let rates = h.rates(t0 + Duration::from_secs(15), 60);
        assert_eq!(rates, vec![5.0, 2.0]);
        for i in 0..100 {
            h.record(t0 + Duration::from_secs(20 + i), 60);
        }
        assert_eq!(h.rates(t0 + Duration::from_secs(200), 60).len(), KEEP);
    }
}
