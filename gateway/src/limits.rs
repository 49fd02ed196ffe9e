//! Rate limits and connection caps.
//!
//! EVENTs are limited by token buckets keyed by client IP and by event author;
//! connections by a per-IP counter whose slots are released by a `Drop` guard,
//! so a panicking or aborted connection task cannot leak its slot.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// A classic token bucket: `burst` tokens at most, refilled at `rate` per second.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn full(burst: f64, now: Instant) -> TokenBucket {
        TokenBucket {
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, rate: f64, burst: f64, now: Instant) -> bool {
        self.refill(rate, burst, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn refill(&mut self, rate: f64, burst: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.last = now;
    }

    fn is_full(&mut self, rate: f64, burst: f64, now: Instant) -> bool {
        self.refill(rate, burst, now);
        self.tokens >= burst
    }
}

/// Paces the frames one connection may have read: past the burst, the
/// connection's next read waits until a token is due. Nothing is refused, so
/// no client sees an error; a client pipelining faster than the rate just
/// gets TCP back-pressure, and one connection can never occupy the gateway's
/// threads with parsing, whatever the per-verb limits are set to.
#[derive(Debug)]
pub struct Pacer {
    rate: f64,
    burst: f64,
    bucket: TokenBucket,
}

impl Pacer {
    pub fn new(rate: f64, burst: f64, now: Instant) -> Pacer {
        Pacer {
            rate,
            burst,
            bucket: TokenBucket::full(burst, now),
        }
    }

    /// Takes a token for a frame just read; returns when the next read may
    /// happen if the bucket is empty now.
    pub fn after_frame(&mut self, now: Instant) -> Option<Instant> {
        if self.bucket.try_take(self.rate, self.burst, now) {
            return None;
        }
        // This frame was read already: it goes on the bucket as a debt, paid
        // back at `rate` before the next read.
        self.bucket.tokens -= 1.0;
        let wait = -self.bucket.tokens / self.rate;
        Some(now + std::time::Duration::from_secs_f64(wait.clamp(0.0, 60.0)))
    }
}

/// Token buckets by key. Buckets that have refilled completely carry no
/// information and are pruned, so the map stays as small as the set of keys
/// that were recently busy.
#[derive(Debug)]
pub struct KeyedLimiter<K> {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<K, TokenBucket>>,
}

/// Prune when the map grows past this many keys.
const PRUNE_AT: usize = 4096;

impl<K: Eq + Hash + Clone> KeyedLimiter<K> {
    pub fn new(rate: f64, burst: f64) -> KeyedLimiter<K> {
        KeyedLimiter {
            rate,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn check(&self, key: &K) -> bool {
        self.check_at(key, Instant::now())
    }

    pub fn check_at(&self, key: &K, now: Instant) -> bool {
        let mut buckets = lock(&self.buckets);
        if buckets.len() >= PRUNE_AT && !buckets.contains_key(key) {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| !b.is_full(rate, burst, now));
        }
        buckets
            .entry(key.clone())
            .or_insert_with(|| TokenBucket::full(self.burst, now))
            .try_take(self.rate, self.burst, now)
    }

    pub fn len(&self) -> usize {
        lock(&self.buckets).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Counts open connections, in total and per IP.
#[derive(Debug)]
pub struct ConnectionCounter {
    max_total: usize,
    max_per_ip: usize,
    state: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionRefusal {
    TooManyTotal,
    TooManyFromIp,
}

/// One counted connection; dropping it gives the slot back.
#[derive(Debug)]
pub struct ConnectionSlot {
    counter: Arc<ConnectionCounter>,
    ip: IpAddr,
}

impl ConnectionCounter {
    pub fn new(max_total: usize, max_per_ip: usize) -> ConnectionCounter {
        ConnectionCounter {
            max_total,
            max_per_ip,
            state: Mutex::new(Counts::default()),
        }
    }

    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, ConnectionRefusal> {
        let mut state = lock(&self.state);
        if state.total >= self.max_total {
            return Err(ConnectionRefusal::TooManyTotal);
        }
        let n = state.per_ip.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            return Err(ConnectionRefusal::TooManyFromIp);
        }
        *n += 1;
        state.total += 1;
        Ok(ConnectionSlot {
            counter: Arc::clone(self),
            ip,
        })
    }

    pub fn total(&self) -> usize {
        lock(&self.state).total
    }

    pub fn from_ip(&self, ip: IpAddr) -> usize {
        lock(&self.state).per_ip.get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut state = lock(&self.counter.state);
        state.total = state.total.saturating_sub(1);
        if let Some(n) = state.per_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                state.per_ip.remove(&self.ip);
            }
        }
    }
}

/// Locks a mutex, ignoring poisoning: every critical section here leaves the
/// data consistent at each step, so a panic elsewhere cannot corrupt it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_allows_burst_then_refills_at_rate() {
        let t0 = Instant::now();
        let limiter = KeyedLimiter::new(2.0, 3.0);
        let k = "a".to_owned();
        assert!(limiter.check_at(&k, t0));
        assert!(limiter.check_at(&k, t0));
        assert!(limiter.check_at(&k, t0));
        assert!(!limiter.check_at(&k, t0), "burst exhausted");
        assert!(!limiter.check_at(&k, t0 + Duration::from_millis(400)));
        assert!(
            limiter.check_at(&k, t0 + Duration::from_millis(500)),
            "one token after 0.5 s at 2/s"
        );
        assert!(!limiter.check_at(&k, t0 + Duration::from_millis(500)));
        // Refill is capped at the burst size.
        let later = t0 + Duration::from_secs(100);
        for _ in 0..3 {
            assert!(limiter.check_at(&k, later));
        }
        assert!(!limiter.check_at(&k, later));
    }

    #[test]
    fn pacer_lets_the_burst_through_then_spaces_reads_at_the_rate() {
        let t0 = Instant::now();
        let mut p = Pacer::new(10.0, 2.0, t0);
        assert_eq!(p.after_frame(t0), None);
        assert_eq!(p.after_frame(t0), None);
        let next = p.after_frame(t0).map(|t| t.duration_since(t0).as_millis());
        assert_eq!(next, Some(100), "one frame owed: a token at 10/s");
        let t1 = t0 + Duration::from_millis(100);
        let next = p.after_frame(t1).map(|t| t.duration_since(t1).as_millis());
        assert_eq!(next, Some(100), "steady state: one frame per 1/rate");
        // After a quiet second, the burst is available again.
        let t2 = t1 + Duration::from_secs(1);
        assert_eq!(p.after_frame(t2), None);
        assert_eq!(p.after_frame(t2), None);
    }

    #[test]
    fn keys_are_independent_and_idle_keys_are_pruned() {
        let t0 = Instant::now();
        let limiter = KeyedLimiter::new(1.0, 1.0);
        assert!(limiter.check_at(&1u32, t0));
        assert!(!limiter.check_at(&1u32, t0));
        assert!(limiter.check_at(&2u32, t0));
        for k in 0..(PRUNE_AT as u32 + 10) {
            limiter.check_at(&k, t0);
        }
        assert!(limiter.len() >= PRUNE_AT);
        // Much later every bucket is full again; the next new key prunes them.
        limiter.check_at(&u32::MAX, t0 + Duration::from_secs(10));
        assert_eq!(limiter.len(), 1);
    }

    #[test]
    fn connection_slots_are_released_on_drop() {
        let counter = Arc::new(ConnectionCounter::new(3, 2));
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let s1 = counter.acquire(a);
        let s2 = counter.acquire(a);
        assert!(s1.is_ok() && s2.is_ok());
        assert_eq!(counter.acquire(a).err(), Some(ConnectionRefusal::TooManyFromIp));
        let s3 = counter.acquire(b);
        assert!(s3.is_ok());
        assert_eq!(counter.acquire(b).err(), Some(ConnectionRefusal::TooManyTotal));
        drop(s1);
        assert_eq!(counter.from_ip(a), 1);
        assert!(
            counter.acquire(b).is_ok(),
            "slot released, and the temporary is dropped again"
        );
        drop((s2, s3));
        assert_eq!(counter.total(), 0);
        assert_eq!(counter.from_ip(a), 0);
    }
}
