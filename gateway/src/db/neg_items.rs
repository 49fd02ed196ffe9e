//! NIP-77 items from the database, streamed: the rows of
//! `sql/neg_items.sql` come in one at a time (tokio-postgres hands them
//! over as they arrive, with backpressure) and only their 40-byte items are
//! kept ([`ItemsBuilder`]); the cap is checked before each row is taken, and
//! the records are reserved from the gateway-wide budget a chunk at a time
//! as they are read, so a reconciliation that will not fit stops reading
//! at once.

use std::sync::Arc;

use futures_util::{pin_mut, TryStreamExt};
use nostr_pg_core::Filter;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::types::ToSql;

use super::{proto, snapshot_at, Db, DbError};
use crate::neg::{ItemsBuilder, SortedItems};
use crate::snapshot::Snapshot;

const NEG_ITEMS: &str = include_str!("sql/neg_items.sql");
const SNAPSHOT: &str = "SELECT pg_current_snapshot()::text";
/// Records reserved from the budget at a time.
const RESERVE_CHUNK: u32 = 4096;

/// What one NEG-OPEN (or a sync) reconciles over.
#[derive(Debug, Clone, Copy)]
pub struct NegQuery<'a> {
    /// One filter object, as sent.
    pub filter_json: &'a str,
    pub filter: &'a Filter,
    /// Kinds left out (restricted DMs).
    pub hidden: &'a [u16],
    /// At most this many items; more is [`NegRead::TooMany`].
    pub cap: usize,
}

/// The outcome of reading a query's items.
#[derive(Debug)]
pub enum NegRead {
    Items {
        items: SortedItems,
        /// The records they hold, out of the budget (none without one).
        held: Option<OwnedSemaphorePermit>,
    },
    /// More than the cap match.
    TooMany,
    /// The budget ran out while reading.
    NoBudget,
}

/// Records taken from a budget so far.
struct Reserve<'a> {
    budget: Option<&'a Arc<Semaphore>>,
    held: Option<OwnedSemaphorePermit>,
    count: usize,
}

impl Reserve<'_> {
    /// Whether `n` records are covered, reserving more if needed.
    fn cover(&mut self, n: usize) -> bool {
        let Some(budget) = self.budget else { return true };
        if self.count >= n {
            return true;
        }
        // A chunk at a time; near the end of the budget, exactly what is
        // missing (the surplus of a chunk goes back at the end anyway).
        let missing = u32::try_from(n - self.count).unwrap_or(u32::MAX);
        let more = Arc::clone(budget)
            .try_acquire_many_owned(RESERVE_CHUNK.max(missing))
            .or_else(|_| Arc::clone(budget).try_acquire_many_owned(missing));
        let Ok(more) = more else { return false };
        self.count += more.num_permits();
        match &mut self.held {
            Some(held) => held.merge(more),
            None => self.held = Some(more),
        }
        true
    }

    /// Gives back what `n` records do not need.
    fn keep(mut self, n: usize) -> Option<OwnedSemaphorePermit> {
        let surplus = self.count.saturating_sub(n);
        if let (Some(held), Ok(surplus)) = (&mut self.held, u32::try_from(surplus)) {
            drop(held.split(surplus as usize));
        }
        self.held
    }
}

impl Db {
    /// The items of `q`, reserving their records from `budget` (when given)
    /// while they are read. With `snapshot`, the read runs in a repeatable
    /// read transaction and reports the snapshot it saw (for a replica).
    pub async fn neg_items(
        &self,
        q: &NegQuery<'_>,
        budget: Option<&Arc<Semaphore>>,
        snapshot: bool,
    ) -> Result<(NegRead, Option<Snapshot>), DbError> {
        let mut conn = self.get().await?;
        // Left in a transaction if anything below fails or stops early: not
        // reused.
        conn.discard = snapshot;
        let client = conn.client()?;
        let mut seen = None;
        if snapshot {
            client
                .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .await
                .map_err(|e| DbError::from_pg(&e))?;
            let row = client
                .query_one(SNAPSHOT, &[])
                .await
                .map_err(|e| DbError::from_pg(&e))?;
            seen = Some(snapshot_at(&row, 0)?);
        }
        let hidden: Vec<i32> = q.hidden.iter().map(|&k| i32::from(k)).collect();
        let f = q.filter;
        let kinds: Option<Vec<i32>> = f.kinds.as_ref().map(|k| k.iter().map(|&k| i32::from(k)).collect());
        let authors: Option<Vec<&[u8]>> = f.authors.as_ref().map(|a| a.iter().map(|k| &k[..]).collect());
        // Kinds, authors, since and until are the SQL's own conditions.
        let exact = f.ids.is_none() && f.tags.is_empty() && f.search.is_none();
        let max = i64::try_from(q.cap).unwrap_or(i64::MAX - 1) + 1;
        let params: [&(dyn ToSql + Sync); 8] = [
            &q.filter_json,
            &hidden,
            &max,
            &kinds,
            &authors,
            &f.since,
            &f.until,
            &exact,
        ];
        let stmt = client
            .prepare_cached(NEG_ITEMS)
            .await
            .map_err(|e| DbError::from_pg(&e))?;
        let rows = client
            .query_raw(&stmt, params.iter().map(|p| *p as &dyn ToSql))
            .await
            .map_err(|e| DbError::from_pg(&e))?;
        pin_mut!(rows);
        let mut builder = ItemsBuilder::new();
        let mut reserve = Reserve {
            budget,
            held: None,
            count: 0,
        };
        while let Some(row) = rows.try_next().await.map_err(|e| DbError::from_pg(&e))? {
            if builder.len() >= q.cap {
                return Ok((NegRead::TooMany, seen));
            }
            if !reserve.cover(builder.len() + 1) {
                return Ok((NegRead::NoBudget, seen));
            }
            let created_at: i64 = row.try_get(0).map_err(proto)?;
            let id: &[u8] = row.try_get(1).map_err(proto)?;
            let id: [u8; 32] = id
                .try_into()
                .map_err(|_| DbError::Protocol("an event id is not 32 bytes".into()))?;
            builder.push(u64::try_from(created_at).unwrap_or(0), id);
        }
        if snapshot {
            client.batch_execute("COMMIT").await.map_err(|e| DbError::from_pg(&e))?;
        }
        conn.discard = false;
        let n = builder.len();
        let held = reserve.keep(n);
        Ok((
            NegRead::Items {
                items: builder.finish(),
                held,
            },
            seen,
        ))
    }
}
