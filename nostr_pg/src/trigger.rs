//! The insert trigger on `nostr.events`: the single gate every row passes.
//!
//! Before insert, the row's `event` value (already verified by its type) is run
//! through [`crate::rules::admit`], and every derived column (binary id and
//! pubkey, kind, timestamps, tag index keys, replaceable address, expiry) is
//! recomputed from it, so whatever a caller wrote there is ignored. Every
//! accepted event is numbered (`seq`) and written to `nostr.transit` for live
//! delivery (see [`crate::notify`]); ephemeral events go only there. A refused
//! event raises an error with the SQLSTATE in [`crate::reject`], unless
//! `nostr.publish` is collecting verdicts (see [`crate::publish`]).
//!
//! A row that brings its own `seq` is a restored one (see [`crate::restore`]):
//! stored as it is, without the rules, when its role may do that.

use nostr_pg_core::Event;
use pgrx::datum::DatumWithOid;
use pgrx::heap_tuple::PgHeapTupleError;
use pgrx::prelude::*;
use pgrx::spi::SpiError;
use pgrx::{AllocatedByRust, WhoAllocated};

use crate::event_type::NostrEvent;
use crate::notify;
use crate::publish;
use crate::reject::Reject;
use crate::restore;
use crate::rules::{self, Admission};
use crate::settings;
use crate::spi_cache::{oid, run};

#[derive(thiserror::Error, Debug)]
pub enum TriggerError {
    #[error("nostr.events trigger fired without a row")]
    NoRow,
    #[error("row access: {0}")]
    Tuple(#[from] PgHeapTupleError),
    #[error("reading the row: {0}")]
    Datum(#[from] pgrx::datum::TryFromDatumError),
    #[error("SPI: {0}")]
    Spi(#[from] SpiError),
}

// The SQL is spelled out because pgrx 0.18 writes `MODULE_PATHNAME` for
// triggers even when the library is named for its version (there is no
// module_pathname in the control file for Postgres to fill in).
#[pg_trigger(sql = r#"
CREATE FUNCTION "events_before_insert"() RETURNS TRIGGER
    LANGUAGE c AS '@MODULE_PATHNAME@', 'events_before_insert_wrapper';
"#)]
fn events_before_insert<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, impl WhoAllocated>>, TriggerError> {
    let mut row = trigger.new().ok_or(TriggerError::NoRow)?.into_owned();
    let Some(stored) = row.get_by_name::<NostrEvent>("event")? else {
        // Let the NOT NULL constraint refuse it, with its own SQLSTATE (23502).
        return Ok(Some(row));
    };
    let event = stored.event();
    if row.get_by_name::<i64>("seq")?.is_some() {
        if !restore::may_restore(trigger) {
            return refuse(restore::refusal()).map(|()| None);
        }
        fill_derived_columns(&mut row, &event)?;
        index_tags(&event)?;
        return Ok(Some(row));
    }
    let auth = publish::context_auth();
    let addr = publish::context_addr();
    let verdict = Spi::connect_mut(|client| rules::admit(client, &event, auth.as_ref(), addr.as_deref()))?;
    match verdict {
        Ok(Admission::Store) => {
            fill_derived_columns(&mut row, &event)?;
            index_tags(&event)?;
            let seq = in_transit(stored)?;
            row.set_by_name("seq", seq)?;
            publish::report(Ok(()));
            Ok(Some(row))
        }
        Ok(Admission::Ephemeral) => {
            in_transit(stored)?;
            publish::report(Ok(()));
            Ok(None)
        }
        // Not stored, not delivered, and not an error: an INSERT inserts
        // no row; publish_batch answers it as accepted (`shadow:`).
        Ok(Admission::Shadow(note)) => {
            publish::report(Err(Reject::Shadow(note)));
            Ok(None)
        }
        Err(reject) => refuse(reject).map(|()| None),
    }
}

/// Inside `nostr.publish` the verdict is handed back; anywhere else it is an error.
fn refuse(reject: Reject) -> Result<(), TriggerError> {
    if publish::collecting() {
        publish::report(Err(reject));
        Ok(())
    } else {
        reject.raise("nostr.events insert")
    }
}

fn fill_derived_columns(row: &mut PgHeapTuple<'_, AllocatedByRust>, event: &Event) -> Result<(), TriggerError> {
    row.set_by_name("id", event.id.to_vec())?;
    row.set_by_name("pubkey", event.pubkey.to_vec())?;
    row.set_by_name("created_at", event.created_at)?;
    row.set_by_name("kind", i32::from(event.kind))?;
    row.set_by_name("tags", event.index_keys())?;
    row.set_by_name("d_key", rules::d_key(event))?;
    row.set_by_name("expires_at", event.expiration())?;
    Ok(())
}

/// How often (in accepted events, by sequence number) the insert path purges
/// old transit rows (older than `nostr.transit_retention`, as housekeeping
/// does), so a database stays bounded without the housekeeping worker too.
const PURGE_EVERY: i64 = 4096;

/// Numbers an accepted event (the transit row's default takes the next
/// `seq`, which a stored row shares), writes it to `nostr.transit` and makes
/// the commit notify. Returns its `seq`.
fn in_transit(event: NostrEvent) -> Result<Option<i64>, SpiError> {
    let seq = Spi::connect_mut(|client| {
        run(
            client,
            "INSERT INTO nostr.transit (event) VALUES ($1) RETURNING seq",
            &[oid::<NostrEvent>()],
            &[event.into()],
        )?
        .first()
        .get_one::<i64>()
    })?;
    notify::record();
    if seq.is_some_and(|s| s % PURGE_EVERY == 0) {
        let retention = format!("{} seconds", settings::transit_retention_secs());
        Spi::connect_mut(|client| {
            run(
                client,
                "SELECT nostr.purge_transit($1::interval)",
                &[oid::<String>()],
                &[retention.into()],
            )
            .map(|_| ())
        })?;
    }
    Ok(seq)
}

/// Maintains `nostr.event_tags`, the ordered (tag, created_at) index that makes
/// "latest N with tag X" an index range scan however popular X is.
fn index_tags(event: &Event) -> Result<(), SpiError> {
    let keys = event.index_keys();
    if keys.is_empty() {
        return Ok(());
    }
    Spi::connect_mut(|client| {
        run(
            client,
            "INSERT INTO nostr.event_tags (tag, kind, created_at, id) SELECT unnest($1::text[]), $2, $3, $4",
            &[oid::<Vec<String>>(), oid::<i32>(), oid::<i64>(), oid::<Vec<u8>>()],
            &[
                DatumWithOid::from(keys),
                i32::from(event.kind).into(),
                event.created_at.into(),
                event.id.to_vec().into(),
            ],
        )
        .map(|_| ())
    })
}
