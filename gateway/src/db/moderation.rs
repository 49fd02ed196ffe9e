//! The moderation state the extension keeps (bans, allow lists, blocked
//! addresses, the relay's name, description and icon), as the relay
//! management API (NIP-86) and the connection check use it. Every rule is
//! the extension's: this file only calls its functions, with parameters.

use std::net::IpAddr;

use tokio_postgres::types::ToSql;

use super::{proto, Db, DbError};

const IP_BLOCKED: &str = include_str!("sql/moderation/ip_blocked.sql");
const RELAY_INFO: &str = include_str!("sql/moderation/relay_info.sql");

/// SQLSTATE of a call to a function the database does not have: the
/// extension is older than the moderation functions (0.3.0).
pub const UNDEFINED_FUNCTION: &str = "42883";

/// A change to the moderation state. Hex ids and pubkeys are lowercase,
/// addresses in `inet`'s text form, all checked by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<'a> {
    BanPubkey(&'a str, Option<&'a str>),
    UnbanPubkey(&'a str),
    AllowPubkey(&'a str, Option<&'a str>),
    UnallowPubkey(&'a str),
    BanEvent(&'a str, Option<&'a str>),
    UnbanEvent(&'a str),
    AllowEvent(&'a str, Option<&'a str>),
    UnallowEvent(&'a str),
    AllowKind(i32),
    DisallowKind(i32),
    BlockIp(&'a str, Option<&'a str>),
    UnblockIp(&'a str),
    /// `name`, `description` or `icon`; `None` clears it.
    SetRelayInfo(&'static str, Option<&'a str>),
}

/// The lists of (key, reason) pairs the extension keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    BannedPubkeys,
    AllowedPubkeys,
    BannedEvents,
    AllowedEvents,
    EventsNeedingModeration,
    BlockedIps,
}

/// The relay's name, description and icon as set through the database
/// (NIP-86 or SQL); `None` where unset, and then the configured one shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayNames {
    pub name: Option<String>,
    pub description: Option<String>,
    pub icon: Option<String>,
}

/// A query parameter, as tokio-postgres takes them.
fn param<T: ToSql + Sync>(value: &T) -> &(dyn ToSql + Sync) {
    value
}

impl Db {
    /// Applies one change, in its own transaction.
    pub async fn moderate(&self, change: Change<'_>) -> Result<(), DbError> {
        use Change::*;
        let (sql, params): (&str, Vec<&(dyn ToSql + Sync)>) = match &change {
            BanPubkey(key, why) => (
                include_str!("sql/moderation/ban_pubkey.sql"),
                vec![param(key), param(why)],
            ),
            UnbanPubkey(key) => (include_str!("sql/moderation/unban_pubkey.sql"), vec![param(key)]),
            AllowPubkey(key, why) => (
                include_str!("sql/moderation/allow_pubkey.sql"),
                vec![param(key), param(why)],
            ),
            UnallowPubkey(key) => (include_str!("sql/moderation/unallow_pubkey.sql"), vec![param(key)]),
            BanEvent(id, why) => (
                include_str!("sql/moderation/ban_event.sql"),
                vec![param(id), param(why)],
            ),
            UnbanEvent(id) => (include_str!("sql/moderation/unban_event.sql"), vec![param(id)]),
            UnallowEvent(id) => (include_str!("sql/moderation/unallow_event.sql"), vec![param(id)]),
            AllowEvent(id, why) => (
                include_str!("sql/moderation/allow_event.sql"),
                vec![param(id), param(why)],
            ),
            AllowKind(kind) => (include_str!("sql/moderation/allow_kind.sql"), vec![param(kind)]),
            DisallowKind(kind) => (include_str!("sql/moderation/disallow_kind.sql"), vec![param(kind)]),
            BlockIp(ip, why) => (include_str!("sql/moderation/block_ip.sql"), vec![param(ip), param(why)]),
            UnblockIp(ip) => (include_str!("sql/moderation/unblock_ip.sql"), vec![param(ip)]),
            SetRelayInfo(field, value) => (
                include_str!("sql/moderation/set_relay_info.sql"),
                vec![param(field), param(value)],
            ),
        };
        let conn = self.get().await?;
        conn.query(sql, &params).await?;
        Ok(())
    }

    /// One of the (key, reason) lists, in the extension's order.
    pub async fn listing(&self, listing: Listing) -> Result<Vec<(String, Option<String>)>, DbError> {
        let sql = match listing {
            Listing::BannedPubkeys => include_str!("sql/moderation/list_banned_pubkeys.sql"),
            Listing::AllowedPubkeys => include_str!("sql/moderation/list_allowed_pubkeys.sql"),
            Listing::BannedEvents => include_str!("sql/moderation/list_banned_events.sql"),
            Listing::AllowedEvents => include_str!("sql/moderation/list_allowed_events.sql"),
            Listing::EventsNeedingModeration => include_str!("sql/moderation/list_events_needing_moderation.sql"),
            Listing::BlockedIps => include_str!("sql/moderation/list_blocked_ips.sql"),
        };
        let conn = self.get().await?;
        let rows = conn.query(sql, &[]).await?;
        rows.iter()
            .map(|row| {
                let key: Option<String> = row.try_get(0).map_err(proto)?;
                Ok((key.unwrap_or_default(), row.try_get(1).map_err(proto)?))
            })
            .collect()
    }

    /// The kinds on the allow list (`allowed`) or always refused, ascending.
    pub async fn kinds(&self, allowed: bool) -> Result<Vec<i32>, DbError> {
        let sql = if allowed {
            include_str!("sql/moderation/list_allowed_kinds.sql")
        } else {
            include_str!("sql/moderation/list_disallowed_kinds.sql")
        };
        let conn = self.get().await?;
        let rows = conn.query(sql, &[]).await?;
        rows.iter()
            .filter_map(|row| row.try_get::<_, Option<i32>>(0).map_err(proto).transpose())
            .collect()
    }

    /// Whether connections from `ip` are refused (`nostr.ip_blocked`).
    pub async fn ip_blocked(&self, ip: IpAddr) -> Result<bool, DbError> {
        let conn = self.get().await?;
        let ip = ip.to_string();
        let rows = conn.query(IP_BLOCKED, &[&ip]).await?;
        let row = rows
            .first()
            .ok_or_else(|| DbError::Protocol("ip_blocked returned no row".into()))?;
        Ok(row.try_get::<_, Option<bool>>(0).map_err(proto)?.unwrap_or(false))
    }

    /// The name, description and icon set in the database.
    pub async fn relay_names(&self) -> Result<RelayNames, DbError> {
        let conn = self.get().await?;
        let rows = conn.query(RELAY_INFO, &[]).await?;
        let Some(row) = rows.first() else {
            return Ok(RelayNames::default());
        };
        let text = |i: usize| -> Result<Option<String>, DbError> {
            let v: Option<String> = row.try_get(i).map_err(proto)?;
            Ok(v.filter(|s| !s.trim().is_empty()))
        };
        Ok(RelayNames {
            name: text(0)?,
            description: text(1)?,
            icon: text(2)?,
        })
    }
}
