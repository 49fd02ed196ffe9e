//! Housekeeping: removing, a batch at a time, what nobody needs any more.
//!
//! | task | removes |
//! |---|---|
//! | `expired` | NIP-40 events past their expiration (never served meanwhile) |
//! | `transit` | `nostr.transit` rows older than `nostr.transit_retention` |
//! | `retention` | events older than `nostr.retention` keeps their kind (off by default) |
//!
//! Each batch removes at most `nostr.housekeeping_batch` rows and is one
//! transaction, so it never holds locks for long. The deletes are SQL
//! functions in `sql/housekeeping.sql`; [`worker`] runs every task to the end
//! in every database that has the extension, each `nostr.housekeeping_interval`,
//! and `nostr.housekeep()` runs one batch of each by hand. Each run is counted
//! in `nostr.housekeeping`.

pub mod worker;

use pgrx::prelude::*;
use pgrx::spi::SpiError;

use crate::retention::{self, Kinds, RetentionError};
use crate::rules::now;
use crate::settings;

#[derive(thiserror::Error, Debug)]
pub enum HousekeepingError {
    #[error("SPI: {0}")]
    Spi(#[from] SpiError),
    #[error("nostr.retention: {0}")]
    Retention(#[from] RetentionError),
}

/// A kind of garbage, by its name in `nostr.housekeeping`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    Expired,
    Transit,
    Retention,
}

impl Task {
    pub const ALL: [Task; 3] = [Task::Expired, Task::Transit, Task::Retention];

    pub fn name(self) -> &'static str {
        match self {
            Task::Expired => "expired",
            Task::Transit => "transit",
            Task::Retention => "retention",
        }
    }
}

fn removed(sql: &str, args: &[pgrx::datum::DatumWithOid<'_>]) -> Result<i64, HousekeepingError> {
    Ok(Spi::get_one_with_args::<i64>(sql, args)?.unwrap_or(0))
}

/// One batch of `task` in the current transaction: removes at most
/// `max_rows` rows and says how many it removed. Fewer than `max_rows` means
/// the task is done for now.
pub fn batch(task: Task, max_rows: i32) -> Result<i64, HousekeepingError> {
    match task {
        Task::Expired => removed("SELECT nostr._purge_expired_batch($1)", &[max_rows.into()]),
        Task::Transit => {
            let retention = format!("{} seconds", settings::transit_retention_secs());
            removed(
                "SELECT nostr._purge_transit_batch($1::interval, $2)",
                &[retention.into(), max_rows.into()],
            )
        }
        Task::Retention => retention_batch(max_rows),
    }
}

/// Rule by rule, until `max_rows` are gone or every rule is done.
fn retention_batch(max_rows: i32) -> Result<i64, HousekeepingError> {
    let rules = settings::retention_rules()?;
    let named: (Vec<i32>, Vec<i32>) = retention::named_ranges(&rules)
        .into_iter()
        .map(|(a, b)| (i32::from(a), i32::from(b)))
        .unzip();
    let now = now();
    let mut total = 0i64;
    for rule in rules {
        let Some(keep) = rule.keep else { continue };
        let left = i64::from(max_rows) - total;
        if left <= 0 {
            break;
        }
        let left = i32::try_from(left).unwrap_or(max_rows);
        let cutoff = now.saturating_sub(i64::try_from(keep).unwrap_or(i64::MAX));
        total += match rule.kinds {
            Kinds::Range(first, last) => removed(
                "SELECT nostr._purge_kinds_batch($1, $2, $3, $4)",
                &[
                    i32::from(first).into(),
                    i32::from(last).into(),
                    cutoff.into(),
                    left.into(),
                ],
            )?,
            Kinds::Other => removed(
                "SELECT nostr._purge_other_kinds_batch($1, $2, $3, $4)",
                &[
                    named.0.clone().into(),
                    named.1.clone().into(),
                    cutoff.into(),
                    left.into(),
                ],
            )?,
        };
    }
    Ok(total)
}

/// Counts one run of `task` in `nostr.housekeeping`.
pub fn record(task: Task, removed: i64, batches: i64) -> Result<(), HousekeepingError> {
    Spi::run_with_args(
        "SELECT nostr._housekeeping_done($1, $2, $3)",
        &[task.name().into(), removed.into(), batches.into()],
    )?;
    Ok(())
}

/// One batch of each housekeeping task, in the caller's transaction: what the
/// worker does, for a database whose server does not run it (call it from
/// cron every minute or so), or to see at once what a setting removes. Each
/// task removes at most `max_rows` rows (default `nostr.housekeeping_batch`);
/// a task that removed that many has more to do.
#[pg_extern(volatile, parallel_unsafe)]
fn housekeep(
    max_rows: default!(Option<i32>, "NULL"),
) -> TableIterator<'static, (name!(task, String), name!(removed, i64))> {
    let max_rows = max_rows.unwrap_or_else(settings::housekeeping_batch).max(1);
    let mut rows = Vec::new();
    for task in Task::ALL {
        let result = batch(task, max_rows).and_then(|n| record(task, n, 1).map(|()| n));
        match result {
            Ok(n) => rows.push((task.name().to_owned(), n)),
            Err(e) => crate::reject::raise_invalid(e.to_string(), "nostr.housekeep"),
        }
    }
    TableIterator::new(rows)
}
