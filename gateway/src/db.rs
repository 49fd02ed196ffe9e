//! The database side: a small connection pool, the extension's SQL calls, and
//! the mapping of database failures to NIP-01 replies.
//!
//! The pool is deliberately simple: a semaphore caps connections, idle ones
//! wait in a stack, a connection that died (Postgres restarted) or that was
//! dropped in the middle of a query (a cancelled REQ) is discarded instead of
//! reused, and new ones are opened on demand. After a failed connect the pool
//! answers `Unavailable` at once for a backoff period (100 ms doubling to 5 s),
//! so an outage costs clients an immediate `error:` instead of a hang, and the
//! pool reconnects by itself when the database is back.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::{CancelToken, Client, NoTls, Statement};

use crate::config::DatabaseConfig;
use crate::limits::lock;
use crate::reply::Prefix;

const PUBLISH_BATCH: &str = include_str!("sql/publish_batch.sql");
const REQ: &str = include_str!("sql/req.sql");
const COUNT: &str = include_str!("sql/count.sql");
const CHANGES: &str = include_str!("sql/changes.sql");
pub(crate) const LISTEN: &str = include_str!("sql/listen.sql");

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

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
    fn from_pg(e: &tokio_postgres::Error) -> DbError {
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
        DbError::Unavailable(e.to_string())
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

/// Where a running query leaves its cancel token, so closing its
/// subscription can stop it.
///
/// Cancelling is not free: the cancel request travels on its own connection
/// and may arrive after the statement finished, so a connection that was sent
/// one is discarded rather than reused (a late cancel must never hit another
/// client's statement), and the next query pays for a new backend. A client
/// that replaces subscriptions as fast as it can would otherwise turn every
/// REQ into a reconnect. So an abandoned statement younger than its grace
/// period is left to finish (its results are dropped, its connection goes
/// back to the pool) and is only cancelled if it outlives the grace period.
#[derive(Default)]
pub struct CancelSlot(Mutex<SlotState>);

impl std::fmt::Debug for CancelSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = lock(&self.0);
        f.debug_struct("CancelSlot")
            .field("running", &s.running.is_some())
            .field("abandoned", &s.abandoned)
            .field("cancel_sent", &s.cancel_sent)
            .finish()
    }
}

#[derive(Default)]
struct SlotState {
    /// The running statement's cancel token and start time.
    running: Option<(CancelToken, Instant)>,
    /// Nobody wants the results any more.
    abandoned: bool,
    /// A cancel request went out: the connection must not be reused.
    cancel_sent: bool,
}

impl CancelSlot {
    /// Publishes the token of the connection about to run the statement;
    /// false if the query was abandoned already.
    fn start(&self, token: CancelToken) -> bool {
        let mut s = lock(&self.0);
        s.running = Some((token, Instant::now()));
        !s.abandoned
    }

    /// Withdraws the token; true if a cancel was sent meanwhile (the
    /// connection must then be discarded).
    fn finish(&self) -> bool {
        let mut s = lock(&self.0);
        s.running = None;
        s.cancel_sent
    }

    /// Whether the subscription that wanted these results is gone.
    pub fn is_abandoned(&self) -> bool {
        lock(&self.0).abandoned
    }

    /// Marks the results unwanted. Returns whether a statement is running: the
    /// caller may only drop the query task when none is, since dropping it
    /// mid-statement loses its pooled connection. A running statement that
    /// has already used up `grace` is cancelled now, a younger one when it
    /// does (if it is still running then).
    pub fn abandon(self: &Arc<Self>, grace: Duration) -> bool {
        let age = {
            let mut s = lock(&self.0);
            s.abandoned = true;
            match &s.running {
                Some((_, started)) => started.elapsed(),
                None => return false,
            }
        };
        match grace.checked_sub(age) {
            None | Some(Duration::ZERO) => self.cancel(),
            Some(left) => {
                let slot = Arc::clone(self);
                tokio::spawn(async move {
                    tokio::time::sleep(left).await;
                    slot.cancel();
                });
            }
        }
        true
    }

    /// Asks the server to cancel the running statement, if any, without
    /// waiting; the query then fails with [`DbError::Canceled`].
    pub fn cancel(&self) {
        let token = {
            let mut s = lock(&self.0);
            s.abandoned = true;
            match s.running.take() {
                Some((token, _)) => {
                    s.cancel_sent = true;
                    token
                }
                None => return,
            }
        };
        tokio::spawn(async move {
            if let Err(e) = token.cancel_query(NoTls).await {
                tracing::debug!("cancel request failed: {e}");
            }
        });
    }
}

/// The shared pool handle; cheap to clone.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    pg: tokio_postgres::Config,
    settings: DatabaseConfig,
    idle: Mutex<Vec<Conn>>,
    permits: Arc<Semaphore>,
    backoff: Mutex<Backoff>,
}

#[derive(Default)]
struct Backoff {
    until: Option<Instant>,
    next: Option<Duration>,
    last_error: String,
}

struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

/// A checked-out connection. Returned to the pool on drop unless it died or
/// was dropped mid-statement (its state is then unknown).
struct Pooled {
    conn: Option<Conn>,
    inner: Arc<Inner>,
    busy: bool,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if !self.busy && !conn.client.is_closed() {
                lock(&self.inner.idle).push(conn);
            }
        }
    }
}

impl Pooled {
    fn conn(&mut self) -> Result<&mut Conn, DbError> {
        self.conn
            .as_mut()
            .ok_or_else(|| DbError::Unavailable("connection lost".into()))
    }

    /// Runs a prepared (and per-connection cached) query, marking the
    /// connection busy so a drop in the middle discards it.
    async fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, DbError> {
        self.busy = true;
        let conn = self.conn()?;
        let stmt = match conn.statements.get(sql) {
            Some(s) => s.clone(),
            None => {
                let s = conn.client.prepare(sql).await.map_err(|e| DbError::from_pg(&e))?;
                conn.statements.insert(sql, s.clone());
                s
            }
        };
        let rows = conn
            .client
            .query(&stmt, params)
            .await
            .map_err(|e| DbError::from_pg(&e))?;
        self.busy = false;
        Ok(rows)
    }

    fn cancel_token(&mut self) -> Option<CancelToken> {
        self.conn.as_ref().map(|c| c.client.cancel_token())
    }
}

impl Db {
    pub fn new(url: &str, settings: DatabaseConfig) -> Result<Db, DbError> {
        let pg = tokio_postgres::Config::from_str(url)
            .map_err(|e| DbError::Unavailable(format!("bad database URL: {e}")))?;
        Ok(Db {
            inner: Arc::new(Inner {
                pg,
                permits: Arc::new(Semaphore::new(settings.pool_size)),
                settings,
                idle: Mutex::new(Vec::new()),
                backoff: Mutex::new(Backoff::default()),
            }),
        })
    }

    /// The parsed connection settings, for the LISTEN connection.
    pub fn pg_config(&self) -> &tokio_postgres::Config {
        &self.inner.pg
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.inner.settings.connect_timeout_ms)
    }

    async fn get(&self) -> Result<Pooled, DbError> {
        let wait = Duration::from_millis(self.inner.settings.acquire_timeout_ms);
        let permit = match tokio::time::timeout(wait, Arc::clone(&self.inner.permits).acquire_owned()).await {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => return Err(DbError::Unavailable("pool closed".into())),
            Err(_) => return Err(DbError::Busy),
        };
        loop {
            let candidate = lock(&self.inner.idle).pop();
            match candidate {
                Some(conn) if conn.client.is_closed() => continue,
                Some(conn) => {
                    return Ok(Pooled {
                        conn: Some(conn),
                        inner: Arc::clone(&self.inner),
                        busy: false,
                        _permit: permit,
                    })
                }
                None => break,
            }
        }
        let conn = self.connect().await?;
        Ok(Pooled {
            conn: Some(conn),
            inner: Arc::clone(&self.inner),
            busy: false,
            _permit: permit,
        })
    }

    async fn connect(&self) -> Result<Conn, DbError> {
        {
            let b = lock(&self.inner.backoff);
            if b.until.is_some_and(|t| Instant::now() < t) {
                return Err(DbError::Unavailable(format!("reconnecting ({})", b.last_error)));
            }
        }
        match self.open().await {
            Ok(client) => {
                *lock(&self.inner.backoff) = Backoff::default();
                Ok(Conn {
                    client,
                    statements: HashMap::new(),
                })
            }
            Err(e) => {
                let mut b = lock(&self.inner.backoff);
                let delay = b.next.unwrap_or(BACKOFF_MIN);
                b.until = Some(Instant::now() + delay);
                b.next = Some((delay * 2).min(BACKOFF_MAX));
                b.last_error = e.to_string();
                tracing::warn!("database connect failed (retry in {delay:?}): {e}");
                Err(e)
            }
        }
    }

    /// Opens one configured session (statement timeout, application name).
    async fn open(&self) -> Result<Client, DbError> {
        let (client, connection) =
            match tokio::time::timeout(self.connect_timeout(), self.inner.pg.connect(NoTls)).await {
                Ok(Ok(pair)) => pair,
                Ok(Err(e)) => return Err(DbError::from_pg(&e)),
                Err(_) => return Err(DbError::Unavailable("connect timed out".into())),
            };
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("database connection ended: {e}");
            }
        });
        // Numbers from our own config, not client input: safe to format.
        let setup = format!(
            "SET statement_timeout = {}; SET application_name = 'nostr_pg_gateway'",
            self.inner.settings.statement_timeout_ms
        );
        client.batch_execute(&setup).await.map_err(|e| DbError::from_pg(&e))?;
        Ok(client)
    }

    /// `nostr.publish_batch`: one round trip, one commit, one row per event.
    pub async fn publish_batch(&self, events: &[String], auth: &[Option<String>]) -> Result<Vec<Published>, DbError> {
        let mut conn = self.get().await?;
        let rows = conn.query(PUBLISH_BATCH, &[&events, &auth]).await?;
        rows.iter()
            .map(|row| {
                Ok(Published {
                    id: row.try_get::<_, Option<String>>(0).map_err(proto)?.unwrap_or_default(),
                    accepted: row.try_get::<_, Option<bool>>(1).map_err(proto)?.unwrap_or(false),
                    message: row.try_get::<_, Option<String>>(2).map_err(proto)?.unwrap_or_default(),
                })
            })
            .collect()
    }

    /// `nostr.req_json`: stored events in REQ order. The cancel token is
    /// published to `slot` before the statement starts.
    pub async fn req(&self, filters_json: &str, slot: &CancelSlot) -> Result<Vec<String>, DbError> {
        self.read_retrying(REQ, filters_json, slot)
            .await?
            .iter()
            .map(text0)
            .collect()
    }

    /// `nostr.count` (NIP-45).
    pub async fn count(&self, filters_json: &str, slot: &CancelSlot) -> Result<i64, DbError> {
        let rows = self.read_retrying(COUNT, filters_json, slot).await?;
        let row = rows
            .first()
            .ok_or_else(|| DbError::Protocol("count returned no row".into()))?;
        Ok(row.try_get::<_, Option<i64>>(0).map_err(proto)?.unwrap_or(0))
    }

    /// `nostr.changes(lo, hi)`: events a notification names.
    pub async fn changes(&self, lo: i64, hi: i64) -> Result<Vec<String>, DbError> {
        let mut attempt = 0;
        loop {
            let result = async {
                let mut conn = self.get().await?;
                conn.query(CHANGES, &[&lo, &hi]).await
            }
            .await;
            match result {
                Err(e) if e.is_connection() && attempt == 0 => attempt += 1,
                other => return other?.iter().map(text0).collect(),
            }
        }
    }

    /// Reads are idempotent, so a dead pooled connection (the database
    /// restarted since it was last used) gets one retry on a fresh one.
    async fn read_retrying(
        &self,
        sql: &'static str,
        arg: &str,
        slot: &CancelSlot,
    ) -> Result<Vec<tokio_postgres::Row>, DbError> {
        let mut attempt = 0;
        loop {
            let result = async {
                let mut conn = self.get().await?;
                if let Some(token) = conn.cancel_token() {
                    if !slot.start(token) {
                        return Err(DbError::Canceled);
                    }
                }
                let result = conn.query(sql, &[&arg]).await;
                if slot.finish() {
                    conn.busy = true;
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
        let mut conn = self.get().await?;
        conn.busy = true;
        let client = &conn.conn()?.client;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(|e| DbError::from_pg(&e))?;
        conn.busy = false;
        Ok(())
    }
}

fn proto(e: tokio_postgres::Error) -> DbError {
    DbError::Protocol(e.to_string())
}

fn text0(row: &tokio_postgres::Row) -> Result<String, DbError> {
    row.try_get::<_, Option<String>>(0)
        .map_err(proto)?
        .ok_or_else(|| DbError::Protocol("NULL event".into()))
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
        let t = Instant::now();
        let second = db.ping().await;
        assert!(
            matches!(&second, Err(DbError::Unavailable(m)) if m.starts_with("reconnecting")),
            "{second:?}"
        );
        assert!(t.elapsed() < Duration::from_millis(50));
    }
}
