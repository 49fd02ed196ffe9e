//! [`Relay`]: everything one gateway owns (pool, publisher, fanout, metrics,
//! limits), shared by all its connections. No globals: several gateways can
//! run in one process.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use nostr_pg_core::Verifier;
use tokio::sync::Semaphore;

use crate::activity::{HomeCache, RateHistory};
use crate::config::Config;
use crate::db::replicas::Replicas;
use crate::db::Db;
use crate::fanout::Fanout;
use crate::info::InfoCache;
use crate::limits::{ConnectionCounter, KeyedLimiter};
use crate::metrics::{Gauges, Metrics};
use crate::nip98::ReplayGuard;
use crate::proxy::TrustedProxies;
use crate::publisher::Publisher;

/// State shared by every connection of one gateway.
pub struct Relay {
    pub config: Config,
    pub db: Db,
    /// Read replicas for stored queries (none configured: empty).
    pub replicas: Arc<Replicas>,
    pub metrics: Arc<Metrics>,
    pub fanout: Arc<Fanout>,
    pub publisher: Publisher,
    pub verifier: Verifier,
    pub ip_limiter: KeyedLimiter<IpAddr>,
    pub pubkey_limiter: KeyedLimiter<[u8; 32]>,
    pub req_limiter: KeyedLimiter<IpAddr>,
    pub connections: Arc<ConnectionCounter>,
    /// The NIP-11 document, with the database's policy.
    pub info: InfoCache,
    /// The home page's numbers from the database, and its events/s history.
    pub home: HomeCache,
    pub rates: RateHistory,
    /// Peers whose forwarding headers and PROXY headers name the client.
    pub proxies: TrustedProxies,
    /// The host NIP-42 `relay` tags must name, when `relay_url` is configured.
    pub relay_host: Option<String>,
    /// Who may call the relay management API (NIP-86); empty: it is off.
    pub admins: Vec<[u8; 32]>,
    /// NIP-98 authorizations already used.
    pub http_auth: ReplayGuard,
    /// NIP-77 records the gateway's open reconciliations may still hold.
    pub neg_records: Arc<Semaphore>,
    next_conn: AtomicU64,
}

impl Relay {
    pub fn new(
        config: Config,
        db: Db,
        replicas: Arc<Replicas>,
        metrics: Arc<Metrics>,
        fanout: Arc<Fanout>,
        publisher: Publisher,
    ) -> Relay {
        let l = &config.limits;
        Relay {
            ip_limiter: KeyedLimiter::new(l.events_per_second_per_ip, l.event_burst_per_ip),
            pubkey_limiter: KeyedLimiter::new(l.events_per_second_per_pubkey, l.event_burst_per_pubkey),
            req_limiter: KeyedLimiter::new(l.reqs_per_second_per_ip, l.req_burst_per_ip),
            connections: Arc::new(ConnectionCounter::new(l.max_connections, l.max_connections_per_ip)),
            info: InfoCache::default(),
            home: HomeCache::default(),
            rates: RateHistory::default(),
            relay_host: crate::auth::host_of(&config.relay_url),
            proxies: TrustedProxies::new(config.proxy.trusted.clone()),
            verifier: Verifier::new(),
            // Checked by `Config::validate`; an unchecked config gets no admins.
            admins: config.nip86.admins().unwrap_or_default(),
            http_auth: ReplayGuard::default(),
            neg_records: Arc::new(Semaphore::new(
                l.max_negentropy_records_total.min(Semaphore::MAX_PERMITS),
            )),
            next_conn: AtomicU64::new(1),
            config,
            db,
            replicas,
            metrics,
            fanout,
            publisher,
        }
    }

    pub fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Relaxed)
    }

    /// The gauges `/metrics` shows, read now.
    pub fn gauges(&self) -> Gauges {
        let pool = self.db.status();
        Gauges {
            pool_max: pool.max_size,
            pool_open: pool.size,
            pool_idle: pool.available,
            pool_waiting: pool.waiting,
            subscriptions: self.fanout.index.len(),
            replicas: self.replicas.statuses(),
        }
    }
}
