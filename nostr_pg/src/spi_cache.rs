//! Prepared SPI plans, kept for the life of the backend. Planning a statement
//! costs more than running these index probes, so every statement the publish
//! rules and queries run is prepared once per backend and reused. Plans live
//! in Postgres' plan cache, which revalidates them after schema changes.
//!
//! The query planner (`query::plan`) writes SQL whose text follows the shape
//! of each filter (which conditions, how many tag letters), so clients can
//! make a backend see any number of distinct statements: the cache keeps the
//! [`CAPACITY`] most recently used plans and frees the least recently used
//! one beyond that.

use std::cell::RefCell;
use std::collections::HashMap;

use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiResult, SpiTupleTable};
use pgrx::PgOid;

/// Most plans one backend keeps: a few dozen fixed statements and the shapes
/// of filters seen lately.
pub const CAPACITY: usize = 256;

/// Plans by SQL text, each with the tick of its last use.
#[derive(Default)]
struct Plans {
    by_sql: HashMap<String, (OwnedPreparedStatement, u64)>,
    tick: u64,
}

impl Plans {
    fn put(&mut self, key: String, plan: OwnedPreparedStatement) {
        self.tick += 1;
        self.by_sql.insert(key, (plan, self.tick));
        if self.by_sql.len() > CAPACITY {
            // A linear scan, only when a new statement was just planned,
            // which costs far more than looking at 256 ticks.
            let oldest = self
                .by_sql
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                // Dropping the plan frees it (SPI_freeplan).
                self.by_sql.remove(&k);
            }
        }
    }
}

thread_local! {
    // Backend-local: a Postgres backend is single-threaded.
    static PLANS: RefCell<Plans> = RefCell::new(Plans::default());
}

/// How many prepared plans this backend holds: at most [`CAPACITY`]. For the
/// tests of that bound.
#[pg_extern(volatile, parallel_unsafe)]
fn _plan_cache_size() -> i32 {
    let n = PLANS.with(|plans| plans.borrow().by_sql.len());
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Runs `sql` (with parameter types `types`) through a cached plan. Statements
/// run read-write, so each one takes a fresh snapshot under READ COMMITTED and
/// sees what committed while we waited on a lock.
pub fn run<'conn>(
    client: &mut SpiClient<'conn>,
    sql: &str,
    types: &[PgOid],
    args: &[DatumWithOid<'_>],
) -> SpiResult<SpiTupleTable<'conn>> {
    let plan = cached(format!("w:{sql}"), || client.prepare_mut(sql, types).map(|p| p.keep()))?;
    let result = client.update(&plan.1, None, args);
    plan.put_back();
    result
}

/// How a cached plan is chosen each time it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Planning {
    /// Postgres' default: planned for the values at hand until a generic
    /// plan proves as cheap. For statements whose best plan depends on the
    /// values (which indexes to intersect for two tags).
    ForValues,
    /// One generic plan, made once per backend. For statements whose text
    /// already fixes the plan (one ordered index range with a LIMIT, a capped
    /// probe, an index-only count): Postgres otherwise keeps re-planning
    /// them, because a generic `LIMIT $n` looks costlier than a known one,
    /// and that planning was about a third of a REQ's time in the database.
    Generic,
}

/// Runs a read-only `sql` through a cached plan: for the query functions, which
/// must also work on a hot standby (no transaction id is assigned).
pub fn read<'conn>(
    client: &SpiClient<'conn>,
    sql: &str,
    types: &[PgOid],
    args: &[DatumWithOid<'_>],
    planning: Planning,
) -> SpiResult<SpiTupleTable<'conn>> {
    let plan = cached(format!("r:{sql}"), || client.prepare(sql, types).map(|p| p.keep()))?;
    let result = match planning {
        Planning::ForValues => client.select(&plan.1, None, args),
        Planning::Generic => {
            let _generic = GenericPlans::set();
            client.select(&plan.1, None, args)
        }
    };
    plan.put_back();
    result
}

/// `plan_cache_mode = force_generic_plan` while it lives, which is when the
/// plan cache picks the plan. It is put back on drop, also when the statement
/// fails: pgrx turns the error into an unwind through this frame.
struct GenericPlans(i32);

impl GenericPlans {
    fn set() -> GenericPlans {
        // SAFETY: the backend is single-threaded; this is the variable behind
        // the GUC, of type int, holding one of the PlanCacheMode values.
        unsafe {
            let before = pg_sys::plan_cache_mode;
            pg_sys::plan_cache_mode = pg_sys::PlanCacheMode::PLAN_CACHE_MODE_FORCE_GENERIC_PLAN as i32;
            GenericPlans(before)
        }
    }
}

impl Drop for GenericPlans {
    fn drop(&mut self) {
        // SAFETY: as in `set`, restoring the value read there.
        unsafe { pg_sys::plan_cache_mode = self.0 };
    }
}

/// A plan taken out of the cache while it runs (a failed statement unwinds
/// past `put_back`, and the plan is simply prepared again next time).
struct Taken(String, OwnedPreparedStatement);

impl Taken {
    fn put_back(self) {
        PLANS.with(|plans| plans.borrow_mut().put(self.0, self.1));
    }
}

fn cached(key: String, prepare: impl FnOnce() -> SpiResult<OwnedPreparedStatement>) -> SpiResult<Taken> {
    match PLANS.with(|plans| plans.borrow_mut().by_sql.remove(&key)) {
        Some((plan, _)) => Ok(Taken(key, plan)),
        None => Ok(Taken(key, prepare()?)),
    }
}

/// The type oid of `T` as an SPI parameter type.
pub fn oid<T: IntoDatum>() -> PgOid {
    PgOid::from(T::type_oid())
}
