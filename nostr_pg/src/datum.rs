//! How a `nostr_event` crosses the Rust/Postgres boundary.
//!
//! The value is a plain varlena of the packed bytes (no serde envelope), and its
//! type oid is looked up by its schema-qualified name, `nostr.nostr_event`, so
//! it is found whatever the caller's `search_path`. The oid is cached per
//! backend and forgotten whenever the type catalog changes (for example after
//! `DROP EXTENSION` and `CREATE EXTENSION` in the same session).

use std::cell::Cell;

use pgrx::callconv::{Arg, ArgAbi, BoxRet, FcInfo};
use pgrx::datum::{Datum, FromDatum, IntoDatum, UnboxDatum};
use pgrx::pg_sys;

use crate::event_type::NostrEvent;

thread_local! {
    static TYPE_OID: Cell<Option<pg_sys::Oid>> = const { Cell::new(None) };
}

/// Registers the catalog invalidation that clears the cached oid.
pub fn register_invalidation() {
    #[pgrx::pg_guard]
    unsafe extern "C-unwind" fn forget(_arg: pg_sys::Datum, _cache: i32, _hash: u32) {
        TYPE_OID.with(|c| c.set(None));
    }
    // SAFETY: called once from _PG_init; `forget` only touches a thread-local.
    unsafe {
        pg_sys::CacheRegisterSyscacheCallback(
            pg_sys::SysCacheIdentifier::TYPEOID as i32,
            Some(forget),
            pg_sys::Datum::from(0),
        );
    }
}

pub fn type_oid() -> pg_sys::Oid {
    TYPE_OID.with(|c| match c.get() {
        Some(oid) => oid,
        None => {
            let oid = pgrx::wrappers::regtypein("nostr.nostr_event");
            c.set(Some(oid));
            oid
        }
    })
}

impl IntoDatum for NostrEvent {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        self.packed.into_datum()
    }

    fn type_oid() -> pg_sys::Oid {
        type_oid()
    }
}

impl FromDatum for NostrEvent {
    unsafe fn from_polymorphic_datum(datum: pg_sys::Datum, is_null: bool, typoid: pg_sys::Oid) -> Option<Self> {
        // SAFETY: the caller guarantees `datum` is a (possibly toasted) varlena
        // of this type, which has the same layout as bytea.
        unsafe { Vec::<u8>::from_polymorphic_datum(datum, is_null, typoid) }.map(|packed| NostrEvent { packed })
    }
}

unsafe impl BoxRet for NostrEvent {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> Datum<'fcx> {
        match self.into_datum() {
            None => fcinfo.return_null(),
            // SAFETY: a freshly palloc'd varlena in the current memory context.
            Some(datum) => unsafe { fcinfo.return_raw_datum(datum) },
        }
    }
}

unsafe impl UnboxDatum for NostrEvent {
    type As<'dat>
        = NostrEvent
    where
        Self: 'dat;
    unsafe fn unbox<'dat>(datum: Datum<'dat>) -> Self::As<'dat>
    where
        Self: 'dat,
    {
        // SAFETY: the caller guarantees a non-null datum of this type.
        let raw: pg_sys::Datum = unsafe { std::mem::transmute(datum) };
        unsafe { NostrEvent::from_datum(raw, false) }.unwrap_or(NostrEvent { packed: Vec::new() })
    }
}

unsafe impl<'fcx> ArgAbi<'fcx> for NostrEvent {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        // SAFETY: pgrx calls this only for arguments of this type.
        unsafe { arg.unbox_arg_using_from_datum() }.unwrap_or_else(|| pgrx::error!("argument {index} must not be null"))
    }
}
