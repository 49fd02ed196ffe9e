//! Prepared SPI plans, kept for the life of the backend. Planning a statement
//! costs more than running these index probes, so every statement the publish
//! rules and queries run is prepared once per backend and reused. Plans live
//! in Postgres' plan cache, which revalidates them after schema changes.

use std::cell::RefCell;
use std::collections::HashMap;

use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiResult, SpiTupleTable};
use pgrx::PgOid;

thread_local! {
    // Backend-local: a Postgres backend is single-threaded.
    static PLANS: RefCell<HashMap<String, OwnedPreparedStatement>> = RefCell::new(HashMap::new());
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

/// Runs a read-only `sql` through a cached plan: for the query functions, which
/// must also work on a hot standby (no transaction id is assigned).
pub fn read<'conn>(
    client: &SpiClient<'conn>,
    sql: &str,
    types: &[PgOid],
    args: &[DatumWithOid<'_>],
) -> SpiResult<SpiTupleTable<'conn>> {
    let plan = cached(format!("r:{sql}"), || client.prepare(sql, types).map(|p| p.keep()))?;
    let result = client.select(&plan.1, None, args);
    plan.put_back();
    result
}

/// A plan taken out of the cache while it runs (a failed statement unwinds
/// past `put_back`, and the plan is simply prepared again next time).
struct Taken(String, OwnedPreparedStatement);

impl Taken {
    fn put_back(self) {
        PLANS.with(|plans| plans.borrow_mut().insert(self.0, self.1));
    }
}

fn cached(key: String, prepare: impl FnOnce() -> SpiResult<OwnedPreparedStatement>) -> SpiResult<Taken> {
    match PLANS.with(|plans| plans.borrow_mut().remove(&key)) {
        Some(plan) => Ok(Taken(key, plan)),
        None => Ok(Taken(key, prepare()?)),
    }
}

/// The type oid of `T` as an SPI parameter type.
pub fn oid<T: IntoDatum>() -> PgOid {
    PgOid::from(T::type_oid())
}
