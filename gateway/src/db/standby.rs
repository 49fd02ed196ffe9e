//! The SQL a hot standby answers: stored queries with the standby's
//! snapshot (the transit table is unlogged, so a standby has no incarnation
//! to report; see `read_route.rs` for how the snapshot is judged), and where
//! its replay stands against the primary's WAL.

use super::{events_at, proto, snapshot_at, CancelSlot, Db, DbError};
use crate::snapshot::Snapshot;

const REQ_REPLICA: &str = include_str!("sql/req_replica.sql");
const COUNT_REPLICA: &str = include_str!("sql/count_replica.sql");
const REPLAY_STATUS: &str = include_str!("sql/replay_status.sql");
const WAL_POSITION: &str = include_str!("sql/wal_position.sql");

/// A stored query's answer on a replica, with the snapshot it read in.
#[derive(Debug, Clone)]
pub struct ReplicaRead<T> {
    pub snapshot: Snapshot,
    pub answer: T,
}

/// What a replica says about its replay (see `sql/replay_status.sql`).
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayStatus {
    pub in_recovery: bool,
    pub replay_lsn: Option<u64>,
    /// Seconds since the last replayed transaction committed on the primary.
    pub replay_age: Option<f64>,
}

/// Parses a WAL position (`pg_lsn` text form, `16/B374D848`).
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.trim().split_once('/')?;
    let hi = u64::from_str_radix(hi, 16).ok()?;
    let lo = u64::from_str_radix(lo, 16).ok()?;
    (hi <= u64::from(u32::MAX) && lo <= u64::from(u32::MAX)).then_some((hi << 32) | lo)
}

impl Db {
    /// [`Db::req`] on a hot standby: the events and the standby's snapshot.
    pub async fn req_on_replica(
        &self,
        filters_json: &str,
        viewers: Option<&[String]>,
        slot: &CancelSlot,
    ) -> Result<ReplicaRead<Vec<String>>, DbError> {
        let rows = self.read_retrying(REQ_REPLICA, filters_json, viewers, slot).await?;
        let row = rows
            .first()
            .ok_or_else(|| DbError::Protocol("req returned no row".into()))?;
        Ok(ReplicaRead {
            snapshot: snapshot_at(row, 0)?,
            answer: events_at(&rows, 1)?,
        })
    }

    /// [`Db::count`] on a hot standby, with the standby's snapshot.
    pub async fn count_on_replica(
        &self,
        filters_json: &str,
        viewers: Option<&[String]>,
        slot: &CancelSlot,
    ) -> Result<ReplicaRead<i64>, DbError> {
        let rows = self.read_retrying(COUNT_REPLICA, filters_json, viewers, slot).await?;
        let row = rows
            .first()
            .ok_or_else(|| DbError::Protocol("count returned no row".into()))?;
        Ok(ReplicaRead {
            snapshot: snapshot_at(row, 0)?,
            answer: row.try_get::<_, Option<i64>>(1).map_err(proto)?.unwrap_or(0),
        })
    }

    /// Where a replica's replay stands.
    pub async fn replay_status(&self) -> Result<ReplayStatus, DbError> {
        let conn = self.get().await?;
        let rows = conn.query(REPLAY_STATUS, &[]).await?;
        let row = rows
            .first()
            .ok_or_else(|| DbError::Protocol("replay status returned no row".into()))?;
        Ok(ReplayStatus {
            in_recovery: row.try_get::<_, Option<bool>>(0).map_err(proto)?.unwrap_or(false),
            replay_lsn: row
                .try_get::<_, Option<String>>(1)
                .map_err(proto)?
                .and_then(|l| parse_lsn(&l)),
            replay_age: row.try_get::<_, Option<f64>>(2).map_err(proto)?,
        })
    }

    /// How far the primary has written its WAL.
    pub async fn wal_position(&self) -> Result<u64, DbError> {
        let conn = self.get().await?;
        let rows = conn.query(WAL_POSITION, &[]).await?;
        rows.first()
            .and_then(|r| r.try_get::<_, Option<String>>(0).ok().flatten())
            .and_then(|l| parse_lsn(&l))
            .ok_or_else(|| DbError::Protocol("no WAL position".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_positions_parse() {
        assert_eq!(parse_lsn("0/3015900"), Some(0x0301_5900));
        assert_eq!(parse_lsn("16/B374D848"), Some((0x16 << 32) | 0xB374_D848));
        assert_eq!(parse_lsn("x/1"), None);
        assert_eq!(parse_lsn("1"), None);
        assert_eq!(parse_lsn("1/100000000"), None);
    }
}
