//! The background workers that run housekeeping with no outside cron.
//!
//! With `nostr_pg` in `shared_preload_libraries`, the postmaster starts one
//! *launcher*. Each `nostr.housekeeping_interval` it lists the databases that
//! accept connections (reading the shared catalog `pg_database`: it connects
//! to none, so it needs no database to exist) and, one at a time, starts a
//! short-lived *pass* in each and waits for it. A pass connects to its
//! database, does nothing if the extension is not there (not created yet,
//! dropped, or too old to have `nostr.housekeeping`), and otherwise runs
//! every task to the end, one transaction per batch, then counts the run in
//! `nostr.housekeeping` and logs what it removed.
//!
//! Passes are fresh processes, so they see `ALTER DATABASE ... SET` and a
//! reloaded postgresql.conf; a database being dropped is held up at most by
//! one batch (`DROP DATABASE ... WITH (FORCE)` ends it at once). Only two
//! worker slots (`max_worker_processes`) are ever in use. The launcher
//! starts after recovery, so a standby runs nothing until it is promoted.

use std::time::Duration;

use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags};
use pgrx::prelude::*;

use super::{batch, record, HousekeepingError, Task};
use crate::settings;

/// The shared library the workers' entry points are in: named for its
/// version (what `shared_preload_libraries` must list, e.g. nostr_pg-0.2.0).
const LIBRARY: &str = concat!("nostr_pg-", env!("CARGO_PKG_VERSION"));
const LAUNCHER: &str = "nostr_pg housekeeping launcher";
const PASS: &str = "nostr_pg housekeeping";

/// Registers the launcher; only possible while the postmaster loads
/// `shared_preload_libraries` (elsewhere, this does nothing).
pub fn register() {
    // SAFETY: a plain flag the postmaster sets while preloading libraries.
    if !unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        return;
    }
    BackgroundWorkerBuilder::new(LAUNCHER)
        .set_library(LIBRARY)
        .set_function("nostr_housekeeping_launcher")
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        // Should it fail, the postmaster starts it again after this long.
        .set_restart_time(Some(Duration::from_secs(10)))
        .load();
}

/// The launcher's entry point (named in its registration).
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn nostr_housekeeping_launcher(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    // No database: only shared catalogs, which is all the launcher reads.
    BackgroundWorker::connect_worker_to_spi(None, None);
    log!("{LAUNCHER} started");
    // The first pass right away, then one each interval.
    let mut wait = Some(Duration::ZERO);
    while BackgroundWorker::wait_latch(wait) {
        if BackgroundWorker::sighup_received() {
            // SAFETY: rereads postgresql.conf, as any backend does on SIGHUP.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        wait = settings::housekeeping_interval();
        if wait.is_none() {
            continue;
        }
        for db in databases() {
            if !run_pass(db) {
                break;
            }
        }
    }
}

/// Databases that accept connections, templates left out (a connection to
/// template1 would make CREATE DATABASE fail).
fn databases() -> Vec<pg_sys::Oid> {
    BackgroundWorker::transaction(|| {
        let mut out = Vec::new();
        // SAFETY: a catalog scan inside a transaction, as the autovacuum
        // launcher does; each tuple is read before the next is fetched.
        unsafe {
            let lock = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
            let rel = pg_sys::table_open(pg_sys::DatabaseRelationId, lock);
            let scan = pg_sys::table_beginscan_catalog(rel, 0, std::ptr::null_mut());
            loop {
                let tuple = pg_sys::heap_getnext(scan, pg_sys::ScanDirection::ForwardScanDirection);
                if tuple.is_null() {
                    break;
                }
                let db = pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_database>(tuple);
                if let Some(db) = db.as_ref() {
                    if db.datallowconn && !db.datistemplate {
                        out.push(db.oid);
                    }
                }
            }
            pg_sys::heap_endscan(scan);
            pg_sys::table_close(rel, lock);
        }
        out
    })
}

/// Starts a pass in `db` and waits for it to end. False when the launcher
/// should stop (the postmaster died).
fn run_pass(db: pg_sys::Oid) -> bool {
    let started = BackgroundWorkerBuilder::new(PASS)
        .set_library(LIBRARY)
        .set_function("nostr_housekeeping_pass")
        .enable_spi_access()
        .set_argument(db.into_datum())
        // SAFETY: this process's own pid, set at its start.
        .set_notify_pid(unsafe { pg_sys::MyProcPid })
        .load_dynamic();
    let Ok(pass) = started else {
        // No free worker slot (max_worker_processes): try next interval.
        warning!("{LAUNCHER}: no free background worker slot; housekeeping waits for the next interval");
        return true;
    };
    // A pass that failed has logged why; the next interval tries again.
    !matches!(
        pass.wait_for_shutdown(),
        Err(pgrx::bgworkers::BackgroundWorkerStatus::PostmasterDied)
    )
}

extern "C-unwind" {
    /// Postgres' SIGTERM handler for backends (pgrx binds it only as a
    /// guarded Rust function, which is no signal handler).
    #[link_name = "die"]
    fn postgres_die(signal: std::ffi::c_int);
}

/// A pass's entry point: `arg` is the oid of its database.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn nostr_housekeeping_pass(arg: pg_sys::Datum) {
    // SAFETY: Postgres' own handler, so a shutdown or
    // DROP DATABASE ... WITH (FORCE) ends a long delete at its next check.
    unsafe {
        pg_sys::pqsignal(pg_sys::SIGTERM as i32, Some(postgres_die));
        pg_sys::BackgroundWorkerUnblockSignals();
    }
    let Some(db) = (unsafe { pg_sys::Oid::from_datum(arg, false) }) else {
        return;
    };
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(db), None);
    let ready = BackgroundWorker::transaction(|| {
        // A lock held for long elsewhere (DROP EXTENSION, a TRUNCATE) makes
        // this pass give up rather than hold up every other database.
        Spi::run("SET lock_timeout = '30s'")?;
        Spi::get_one::<bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'nostr_pg') \
             AND to_regclass('nostr.housekeeping') IS NOT NULL",
        )
    });
    if !matches!(ready, Ok(Some(true))) {
        return;
    }
    let results: Vec<(Task, Result<Run, HousekeepingError>)> =
        Task::ALL.into_iter().map(|task| (task, run_task(task))).collect();
    let worth_a_line = results.iter().any(|(_, r)| !matches!(r, Ok(Run { removed: 0, .. })));
    if !worth_a_line {
        return;
    }
    let report: Vec<String> = results
        .iter()
        .map(|(task, r)| match r {
            Ok(Run { removed, batches }) => format!("{} {removed} in {batches} batches", task.name()),
            Err(e) => format!("{} failed: {e}", task.name()),
        })
        .collect();
    let name = BackgroundWorker::transaction(|| Spi::get_one::<String>("SELECT current_database()::text"));
    log!(
        "{PASS} in {}: removed {}",
        name.ok().flatten().unwrap_or_default(),
        report.join(", ")
    );
}

/// What one run of a task did.
struct Run {
    removed: i64,
    batches: i64,
}

/// Every batch of `task`, each in its own transaction, then the run's count.
fn run_task(task: Task) -> Result<Run, HousekeepingError> {
    let max_rows = settings::housekeeping_batch();
    let (mut removed, mut batches) = (0i64, 0i64);
    loop {
        let n = BackgroundWorker::transaction(|| batch(task, max_rows))?;
        removed += n;
        batches += 1;
        if n < i64::from(max_rows) {
            break;
        }
    }
    BackgroundWorker::transaction(|| record(task, removed, batches))?;
    Ok(Run { removed, batches })
}
