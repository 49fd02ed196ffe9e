//! The database side: the connection pool (deadpool-postgres), the
//! extension's SQL calls, and the mapping of database failures to NIP-01
//! replies.
//!
//! Pooled connections carry `statement_timeout` and an application name from
//! the start (connection options), cache their prepared statements, and are
//! closed when idle or old (`reap`). A connection that was sent a cancel
//! request is discarded instead of reused: the cancel travels on its own
//! connection and may arrive after the statement finished, and must never
//! hit the next client's statement (see [`CancelSlot`]). After a failed
//! connect the pool answers `Unavailable` at once for a backoff period
//! (100 ms doubling to 5 s), so an outage costs clients an immediate `error:`
//! instead of a hang, and the pool reconnects by itself when the database is
//! back. Every connection, pooled or not, and every cancel request is made
//! with the TLS settings of the URL ([`tls`]: libpq's `sslmode` and
//! `sslrootcert`).
//!
//! Read replicas: [`replicas`] holds their pools, health and rotation;
//! [`standby`] the SQL a hot standby answers.

mod cancel;
pub mod moderation;
mod neg_items;
pub mod replicas;
mod site;
pub mod standby;
pub mod tls;

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime};
use thiserror::Error;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

pub use cancel::CancelSlot;
pub use moderation::{Change, Listing, RelayNames};
pub use neg_items::{NegQuery, NegRead};
pub use site::{HomeData, Policy};
use tls::{Target, Tls};

use crate::config::DatabaseConfig;
use crate::limits::lock;
use crate::reply::Prefix;
use crate::snapshot::{parse_xid, ReadPoint, Snapshot, Xid};

const PUBLISH_BATCH: &str = include_str!("sql/publish_batch.sql");
const REQ: &str = include_str!("sql/req.sql");
const COUNT: &str = include_str!("sql/count.sql");
const STORED_SIGS: &str = include_str!("sql/stored_sigs.sql");
const STORED_EVENTS: &str = include_str!("sql/stored_events.sql");
pub(crate) const CHANGES: &str = include_str!("sql/changes.sql");
pub(crate) const LISTEN: &str = include_str!("sql/listen.sql");
pub(crate) const CHECKPOINT: &str = include_str!("sql/checkpoint.sql");
pub(crate) const COMMITTED_BETWEEN: &str = include_str!("sql/committed_between.sql");

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
const APPLICATION_NAME: &str = "nostr_pg_gateway";
/// TCP keepalive on database connections (with `tcp_user_timeout_ms`): an
/// idle connection whose peer vanished is found within seconds.
pub(crate) const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
pub(crate) const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
pub(crate) const KEEPALIVE_RETRIES: u32 = 3;

/// SQLSTATE the extension raises for invalid filter or event input.
pub const INVALID_PARAMETER: &str = "22023";
/// SQLSTATE for a cancelled statement (CLOSE, or `statement_timeout`).
pub const QUERY_CANCELED: &str = "57014";

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DbError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database busy: no connection free")]
    Busy,
    #[error("query canceled or timed out")]
    Canceled,
    #[error("{message}")]
    Sql { code: String, message: String },
    #[error("unexpected result from the database: {0}")]
    Protocol(String),
}

impl DbError {
    pub(crate) fn from_pg(e: &tokio_postgres::Error) -> DbError {
        if let Some(db) = e.as_db_error() {
            let code = db.code().code();
            if code == QUERY_CANCELED {
                return DbError::Canceled;
            }
            return DbError::Sql {
                code: code.to_owned(),
                message: db.message().to_owned(),
            };
        }
        DbError::Unavailable(with_causes(e))
    }

    /// Whether the connection, not the statement, failed (reads retry once).
    pub fn is_connection(&self) -> bool {
        matches!(self, DbError::Unavailable(_))
    }

    /// The prefixed text a client sees in `OK` or `CLOSED`.
    pub fn reply(&self) -> String {
        match self {
            DbError::Sql { code, message } if code == INVALID_PARAMETER => Prefix::Invalid.with(message),
            other => Prefix::Error.with(other),
        }
    }
}

/// One outcome row of `nostr.publish_batch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub id: String,
    pub accepted: bool,
    pub message: String,
}

impl Published {
    /// Whether this event is new to the relay: accepted, and not as a
    /// duplicate of one it already had (those are answered `OK true` too).
    /// A shadow-rejected event (see [`crate::reply::is_shadow`]) is not new.
    pub fn is_new(&self) -> bool {
        self.accepted
            && Prefix::of_message(&self.message) != Some(Prefix::Duplicate)
            && !crate::reply::is_shadow(&self.message)
    }
}

/// What a batch did: one row per event, and the transaction that wrote them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    pub rows: Vec<Published>,
    pub xid: Option<Xid>,
}

/// Stored events for a REQ and where they were read.
#[derive(Debug, Clone)]
pub struct Stored {
    pub read: ReadPoint,
    pub events: Vec<String>,
}

/// The pool's state, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    pub max_size: usize,
    pub size: usize,
    pub available: usize,
    pub waiting: usize,
}

/// The shared pool handle; cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    target: Target,
    settings: DatabaseConfig,
    backoff: std::sync::Arc<Mutex<Backoff>>,
}

#[derive(Default)]
struct Backoff {
    until: Option<Instant>,
    next: Option<Duration>,
    last_error: String,
}

/// A checked-out connection, discarded on drop when a cancel request may
/// still be on its way to it.
struct Pooled {
    conn: Option<Object>,
    discard: bool,
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let (true, Some(conn)) = (self.discard, self.conn.take()) {
            drop(Object::take(conn));
        }
    }
}

impl Pooled {
    fn client(&self) -> Result<&Object, DbError> {
        self.conn
            .as_ref()
            .ok_or_else(|| DbError::Unavailable("connection lost".into()))
    }

    /// Runs a statement through the connection's cache of prepared statements.
    async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, DbError> {
        let client = self.client()?;
        let stmt = client.prepare_cached(sql).await.map_err(|e| DbError::from_pg(&e))?;
        client.query(&stmt, params).await.map_err(|e| DbError::from_pg(&e))
    }
}

impl Db {
    pub fn new(url: &str, settings: DatabaseConfig) -> Result<Db, DbError> {
        Db::named(url, settings, APPLICATION_NAME)
    }

    /// [`Db::new`] with another `application_name` (what `pg_stat_activity`
    /// shows), for the operators' tool.
    pub fn named(url: &str, settings: DatabaseConfig, application_name: &str) -> Result<Db, DbError> {
        let mut target = Target::parse(url).map_err(|e| DbError::Unavailable(e.to_string()))?;
        let pg = &mut target.config;
        pg.application_name(application_name);
        pg.connect_timeout(Duration::from_millis(settings.connect_timeout_ms));
        if settings.tcp_user_timeout_ms > 0 {
            // A network cut sends no FIN or RST: without these, a request
            // on a half-open connection (an idle pooled one is reused
            // without a check) waits for TCP to give up, about 15 minutes,
            // and holds its client, or one of the publisher's few batch
            // slots, that long. With them the kernel fails it in seconds.
            pg.tcp_user_timeout(Duration::from_millis(settings.tcp_user_timeout_ms))
                .keepalives(true)
                .keepalives_idle(KEEPALIVE_IDLE)
                .keepalives_interval(KEEPALIVE_INTERVAL)
                .keepalives_retries(KEEPALIVE_RETRIES);
        }
        // Numbers from our own config, not client input: safe to format.
        pg.options(format!("-c statement_timeout={}", settings.statement_timeout_ms));
        let manager = Manager::from_config(
            pg.clone(),
            target.tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_millis(settings.acquire_timeout_ms)))
            .create_timeout(Some(Duration::from_millis(settings.connect_timeout_ms)))
            .build()
            .map_err(|e| DbError::Unavailable(format!("pool: {e}")))?;
        Ok(Db {
            pool,
            target,
            settings,
            backoff: Default::default(),
        })
    }

    /// The parsed connection settings, for dedicated connections (LISTEN).
    pub fn pg_config(&self) -> &tokio_postgres::Config {
        &self.target.config
    }

    /// The TLS connector every connection to this database uses.
    pub fn tls(&self) -> &Tls {
        &self.target.tls
    }

    pub fn settings(&self) -> &DatabaseConfig {
        &self.settings
    }

    /// `host:port` of the server (no user or password), for logs and metrics.
    pub fn label(&self) -> String {
        let c = &self.target.config;
        let host = match c.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(tokio_postgres::config::Host::Unix(p)) => p.to_string_lossy().into_owned(),
            None => "localhost".to_owned(),
        };
        format!("{host}:{}", c.get_ports().first().copied().unwrap_or(5432))
    }

    pub fn status(&self) -> PoolStatus {
        let s = self.pool.status();
        PoolStatus {
            max_size: s.max_size,
            size: s.size,
            available: s.available,
            waiting: s.waiting,
        }
    }

    /// Closes pooled connections that sat idle past `idle_timeout_ms` or have
    /// lived past `max_lifetime_ms`; returns how many.
    pub fn reap(&self) -> usize {
        let idle = Duration::from_millis(self.settings.idle_timeout_ms);
        let life = Duration::from_millis(self.settings.max_lifetime_ms);
        let keep = |m: deadpool_postgres::Metrics| {
            (idle.is_zero() || m.last_used() < idle) && (life.is_zero() || m.age() < life)
        };
        self.pool.retain(|_, m| keep(m)).removed.len()
    }

    async fn get(&self) -> Result<Pooled, DbError> {
        {
            let b = lock(&self.backoff);
            if b.until.is_some_and(|t| Instant::now() < t) && self.pool.status().available == 0 {
                return Err(DbError::Unavailable(format!("reconnecting ({})", b.last_error)));
            }
        }
        match self.pool.get().await {
            Ok(conn) => {
                *lock(&self.backoff) = Backoff::default();
                Ok(Pooled {
                    conn: Some(conn),
                    discard: false,
                })
            }
            Err(PoolError::Timeout(deadpool_postgres::TimeoutType::Wait)) => Err(DbError::Busy),
            Err(e) => {
                let e = match e {
                    PoolError::Backend(pg) => DbError::from_pg(&pg),
                    other => DbError::Unavailable(other.to_string()),
                };
                let mut b = lock(&self.backoff);
                let delay = b.next.unwrap_or(BACKOFF_MIN);
                b.until = Some(Instant::now() + delay);
                b.next = Some((delay * 2).min(BACKOFF_MAX));
                b.last_error = e.to_string();
                tracing::warn!("database connect failed (retry in {delay:?}): {e}");
                Err(e)
            }
        }
    }

    /// `nostr.publish_batch`: one round trip, one commit, one row per event.
    /// `addrs[i]`: the address of whoever sent `events[i]` (for blocked
    /// addresses and the write policy), when known.
    pub async fn publish_batch(
        &self,
        events: &[String],
        auth: &[Option<String>],
        addrs: &[Option<IpAddr>],
    ) -> Result<BatchOutcome, DbError> {
        let conn = self.get().await?;
        let rows = conn.query(PUBLISH_BATCH, &[&events, &auth, &addrs]).await?;
        let mut xid = None;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(Published {
                id: row.try_get::<_, Option<String>>(0).map_err(proto)?.unwrap_or_default(),
                accepted: row.try_get::<_, Option<bool>>(1).map_err(proto)?.unwrap_or(false),
                message: row.try_get::<_, Option<String>>(2).map_err(proto)?.unwrap_or_default(),
            });
            if let Some(x) = row.try_get::<_, Option<String>>(3).map_err(proto)? {
                xid = parse_xid(&x);
            }
        }
        Ok(BatchOutcome { rows: out, xid })
    }

    /// Which of `ids` are stored, each with its signature (hex).
    pub async fn stored_sigs(&self, ids: &[Vec<u8>]) -> Result<Vec<(Vec<u8>, String)>, DbError> {
        let conn = self.get().await?;
        let rows = conn.query(STORED_SIGS, &[&ids]).await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0).map_err(proto)?, row.try_get(1).map_err(proto)?)))
            .collect()
    }

    /// The stored canonical events among `ids` (32-byte ids), any order.
    pub async fn stored_events(&self, ids: &[Vec<u8>]) -> Result<Vec<String>, DbError> {
        let conn = self.get().await?;
        let rows = conn.query(STORED_EVENTS, &[&ids]).await?;
        rows.iter().map(|row| row.try_get(0).map_err(proto)).collect()
    }

    /// `nostr.req_json` with the snapshot it read in. `viewers`, when set,
    /// restricts the restricted kinds (hex pubkeys). The cancel token is
    /// published to `slot` before the statement starts.
    pub async fn req(
        &self,
        filters_json: &str,
        viewers: Option<&[String]>,
        slot: &CancelSlot,
    ) -> Result<Stored, DbError> {
        let rows = self.read_retrying(REQ, filters_json, viewers, slot).await?;
        let row = rows
            .first()
            .ok_or_else(|| DbError::Protocol("req returned no row".into()))?;
        let snapshot = snapshot_at(row, 0)?;
        let epoch = row.try_get::<_, Option<i64>>(1).map_err(proto)?;
        Ok(Stored {
            read: ReadPoint { snapshot, epoch },
            events: events_at(&rows, 2)?,
        })
    }

    /// `nostr.count` (NIP-45), with the same `viewers` restriction.
    pub async fn count(
        &self,
        filters_json: &str,
        viewers: Option<&[String]>,
        slot: &CancelSlot,
    ) -> Result<i64, DbError> {
        let rows = self.read_retrying(COUNT, filters_json, viewers, slot).await?;
        let row = rows
            .first()
            .ok_or_else(|| DbError::Protocol("count returned no row".into()))?;
        Ok(row.try_get::<_, Option<i64>>(0).map_err(proto)?.unwrap_or(0))
    }

    /// Reads are idempotent, so a dead pooled connection (the database
    /// restarted since it was last used) gets one retry on a fresh one.
    async fn read_retrying(
        &self,
        sql: &'static str,
        filters: &str,
        viewers: Option<&[String]>,
        slot: &CancelSlot,
    ) -> Result<Vec<Row>, DbError> {
        let viewers: Option<Vec<&str>> = viewers.map(|v| v.iter().map(String::as_str).collect());
        let mut attempt = 0;
        loop {
            let result = async {
                let mut conn = self.get().await?;
                let token = conn.client()?.cancel_token();
                if !slot.start(token, self.target.tls.clone()) {
                    return Err(DbError::Canceled);
                }
                let result = conn.query(sql, &[&filters, &viewers]).await;
                if slot.finish() {
                    conn.discard = true;
                }
                result
            }
            .await;
            match result {
                Err(e) if e.is_connection() && attempt == 0 => attempt += 1,
                other => return other,
            }
        }
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), DbError> {
        let conn = self.get().await?;
        conn.client()?
            .simple_query("SELECT 1")
            .await
            .map_err(|e| DbError::from_pg(&e))?;
        Ok(())
    }
}

/// An error and its causes, `outer: inner: ...`: tokio-postgres' own text
/// leaves the cause out (which certificate check failed, why the connect
/// was refused), and that is what an operator reading `/health` needs.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = cause.source();
    }
    text
}

/// The `pg_snapshot` text in column `i`.
fn snapshot_at(row: &Row, i: usize) -> Result<Snapshot, DbError> {
    row.try_get::<_, Option<String>>(i)
        .map_err(proto)?
        .and_then(|s| Snapshot::parse(&s))
        .ok_or_else(|| DbError::Protocol("no snapshot returned".into()))
}

/// The events of a REQ's rows, one per row in column `i` (NULL in the one
/// row that says nothing matched).
fn events_at(rows: &[Row], i: usize) -> Result<Vec<String>, DbError> {
    let mut events = Vec::with_capacity(rows.len());
    for row in rows {
        if let Some(e) = row.try_get::<_, Option<String>>(i).map_err(proto)? {
            events.push(e);
        }
    }
    Ok(events)
}

fn proto(e: tokio_postgres::Error) -> DbError {
    DbError::Protocol(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_prefixes() {
        let invalid = DbError::Sql {
            code: INVALID_PARAMETER.into(),
            message: "bad filter".into(),
        };
        assert_eq!(invalid.reply(), "invalid: bad filter");
        let other = DbError::Sql {
            code: "XX000".into(),
            message: "boom".into(),
        };
        assert_eq!(other.reply(), "error: boom");
        assert_eq!(DbError::Canceled.reply(), "error: query canceled or timed out");
        assert!(DbError::Unavailable("down".into())
            .reply()
            .starts_with("error: database unavailable"));
        assert!(DbError::Unavailable("x".into()).is_connection());
        assert!(!DbError::Busy.is_connection());
    }

    #[test]
    fn unavailable_says_why() {
        #[derive(Debug, Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other("invalid peer certificate: UnknownIssuer"));
        assert_eq!(with_causes(&e), "outer: invalid peer certificate: UnknownIssuer");
    }

    #[test]
    fn duplicates_are_accepted_but_not_new() {
        let row = |accepted: bool, message: &str| Published {
            id: String::new(),
            accepted,
            message: message.into(),
        };
        assert!(row(true, "").is_new());
        assert!(!row(true, "duplicate: already have this event").is_new());
        assert!(!row(false, "blocked: deleted").is_new());
    }

    #[test]
    fn bad_url_is_reported_not_panicked() {
        let r = Db::new("postgres://[", DatabaseConfig::default());
        assert!(matches!(r, Err(DbError::Unavailable(_))));
    }

    #[tokio::test]
    async fn unreachable_database_fails_fast_with_backoff() {
        // Port 1 on localhost refuses at once.
        let settings = DatabaseConfig {
            connect_timeout_ms: 500,
            ..DatabaseConfig::default()
        };
        let db = Db::new("postgres://nobody@127.0.0.1:1/x", settings).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(db.ping().await, Err(DbError::Unavailable(_))));
        // The second attempt is answered from the backoff state, without a
        // connect (which is what "reconnecting" says).
        let second = db.ping().await;
        assert!(
            matches!(&second, Err(DbError::Unavailable(m)) if m.starts_with("reconnecting")),
            "{second:?}"
        );
    }
}
