//! Reads for the relay's own pages: the policy NIP-11 advertises, and what
//! the home page shows. Each is one short statement; callers cache them, so
//! no number of page views adds load beyond one read per cache period.

use super::{proto, Db, DbError};

const POLICY: &str = include_str!("sql/policy.sql");
const HOME: &str = include_str!("sql/home.sql");

/// The relay policy held in the database (the extension's `nostr.*`
/// settings, which only a superuser changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub min_pow: u32,
    /// Seconds ahead of now an event may be dated (always a limit: 0 means
    /// nothing dated in the future).
    pub max_future_seconds: i64,
    /// Seconds before now an event may be dated (0: no limit).
    pub max_past_seconds: i64,
    /// The database's cap on each filter's `limit`, and on filters per query.
    pub max_limit: u64,
    pub max_filters: usize,
}

/// The extension's defaults (README, settings table).
impl Default for Policy {
    fn default() -> Policy {
        Policy {
            min_pow: 0,
            max_future_seconds: 900,
            max_past_seconds: 0,
            max_limit: 5000,
            max_filters: 50,
        }
    }
}

/// What the home page shows from the database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HomeData {
    /// Stored events: counted on small tables, the planner's estimate on
    /// large ones (`estimated`).
    pub events_stored: i64,
    pub estimated: bool,
    /// Canonical JSON of the newest public events, newest first.
    pub recent: Vec<String>,
}

impl Db {
    /// `nostr.min_pow` and the time window, as the gateway's role sees them.
    pub async fn policy(&self) -> Result<Policy, DbError> {
        let conn = self.get().await?;
        let rows = conn.query(POLICY, &[]).await?;
        let row = rows
            .first()
            .ok_or_else(|| DbError::Protocol("policy returned no row".into()))?;
        let setting = |i: usize| -> Result<Option<i64>, DbError> {
            let text = row.try_get::<_, Option<String>>(i).map_err(proto)?;
            Ok(text.and_then(|t| t.trim().parse().ok()))
        };
        // A setting the session cannot see yet has the extension's default.
        let d = Policy::default();
        Ok(Policy {
            min_pow: setting(0)?.and_then(|v| u32::try_from(v).ok()).unwrap_or(d.min_pow),
            max_future_seconds: setting(1)?.unwrap_or(d.max_future_seconds),
            max_past_seconds: setting(2)?.unwrap_or(d.max_past_seconds),
            max_limit: setting(3)?.and_then(|v| u64::try_from(v).ok()).unwrap_or(d.max_limit),
            max_filters: setting(4)?
                .and_then(|v| usize::try_from(v).ok())
                .unwrap_or(d.max_filters),
        })
    }

    /// Stored events and the newest events matching `filters_json`.
    pub async fn home(&self, filters_json: &str) -> Result<HomeData, DbError> {
        let conn = self.get().await?;
        let rows = conn.query(HOME, &[&filters_json]).await?;
        let row = rows
            .first()
            .ok_or_else(|| DbError::Protocol("home returned no row".into()))?;
        Ok(HomeData {
            events_stored: row.try_get::<_, Option<i64>>(0).map_err(proto)?.unwrap_or(0),
            estimated: row.try_get::<_, Option<bool>>(1).map_err(proto)?.unwrap_or(false),
            recent: row
                .try_get::<_, Option<Vec<String>>>(2)
                .map_err(proto)?
                .unwrap_or_default(),
        })
    }
}
