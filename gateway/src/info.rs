//! The NIP-11 relay information document, and what it is built from: the
//! gateway's configuration and the relay policy the database holds (the
//! extension's `nostr.*` settings, which only a superuser changes).
//!
//! `supported_nips` names what this relay does as configured, not what the
//! code could do: NIP-13 appears only when `nostr.min_pow` asks for work,
//! NIP-22 when the database's time window is known, NIP-86 only when
//! admin pubkeys are configured.
//!
//! The name, description and icon set through NIP-86 (or in SQL) are kept
//! in the database and shown over the configured ones. They are read again
//! at most every [`NAMES_FOR`]: they decide nothing but what a page says,
//! so a change reaching the other gateways a second later is harmless, and
//! no rate of NIP-11 requests adds more than one read a second. The gateway
//! that made the change forgets its copy at once ([`InfoCache::forget_names`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::config::{Config, RelayInfo};
use crate::db::{Db, Policy, RelayNames};

/// How long a NIP-11 document is served before the policy is read again.
const CACHE_FOR: Duration = Duration::from_secs(10);
/// How long the name, description and icon from the database are used
/// before they are read again.
pub const NAMES_FOR: Duration = Duration::from_secs(1);
/// How long a NIP-11 request waits for the database before answering
/// without the policy.
const POLICY_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a document made without the database's answer is served.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// NIPs the gateway and the extension implement whatever the settings:
/// NIP-01 and deletion (09), expiration (40), vanish (62) and protected
/// events (70) in the extension's publish rules; NIP-11; NIP-42 (every
/// connection is offered a challenge; NIP-70 and the DM read restriction
/// rely on it); COUNT (45); search (50).
const ALWAYS: [u16; 10] = [1, 9, 11, 40, 42, 45, 50, 62, 70, 77];

/// The NIPs that are on, ascending. `policy` is `None` when the database
/// could not be asked; then only what needs no database setting is listed.
pub fn supported_nips(config: &Config, policy: Option<&Policy>) -> Vec<u16> {
    let mut nips = ALWAYS.to_vec();
    if policy.is_some_and(|p| p.min_pow > 0) {
        nips.push(13);
    }
    // NIP-22 as NIP-11's `created_at_*_limit` fields mean it: the publish
    // rules always refuse events dated further ahead than
    // `nostr.max_future_seconds` (0 included), so the window is on whenever
    // the database's policy is known. (Its newer meaning, kind 1111
    // comments, needs nothing but NIP-01's tag filters, uppercase letters
    // included, which every relay build serves.)
    if policy.is_some() {
        nips.push(22);
    }
    if config.nip86.enabled() {
        nips.push(86);
    }
    nips.sort_unstable();
    nips
}

/// The URL NIP-11's `software` names: the configured one, else the
/// `repository` of the gateway's Cargo manifest at build time, if any.
pub fn software_url(config: &Config) -> Option<String> {
    let configured = config.info.software.trim();
    let url = if configured.is_empty() {
        env!("CARGO_PKG_REPOSITORY")
    } else {
        configured
    };
    (!url.is_empty()).then(|| url.to_owned())
}

/// Filters per query and events per filter: the smaller of the gateway's
/// limit and the database's, since both apply.
pub fn query_caps(config: &Config, policy: Option<&Policy>) -> (usize, u64) {
    let l = &config.limits;
    match policy {
        Some(p) => (l.max_filters.min(p.max_filters), l.max_limit.min(p.max_limit)),
        None => (l.max_filters, l.max_limit),
    }
}

/// The relay's descriptive fields: the configured ones, with the name,
/// description and icon set in the database over them.
pub fn shown(config: &Config, names: &RelayNames) -> RelayInfo {
    let mut info = config.info.clone();
    for (field, set) in [
        (&mut info.name, &names.name),
        (&mut info.description, &names.description),
        (&mut info.icon, &names.icon),
    ] {
        if let Some(value) = set {
            value.clone_into(field);
        }
    }
    info
}

/// The NIP-11 document for `config`, the database's `policy` and the names
/// set in the database.
pub fn relay_info(config: &Config, policy: Option<&Policy>, names: &RelayNames) -> Value {
    let info = &shown(config, names);
    let l = &config.limits;
    let (max_filters, max_limit) = query_caps(config, policy);
    let mut limitation = json!({
        "max_message_length": l.max_message_length,
        "max_event_size": l.max_event_size,
        "max_subscriptions": l.max_subscriptions,
        "max_filters": max_filters,
        "max_limit": max_limit,
        "max_subid_length": l.max_subid_length,
        "max_event_tags": l.max_event_tags,
        "max_content_length": l.max_content_length,
        "auth_required": config.auth.required,
        "restricted_writes": config.auth.required,
        "payment_required": false,
    });
    if let (Some(p), Some(obj)) = (policy, limitation.as_object_mut()) {
        if p.min_pow > 0 {
            obj.insert("min_pow_difficulty".into(), json!(p.min_pow));
        }
        // Always a limit: 0 means nothing dated ahead of now.
        obj.insert("created_at_upper_limit".into(), json!(p.max_future_seconds));
        if p.max_past_seconds > 0 {
            obj.insert("created_at_lower_limit".into(), json!(p.max_past_seconds));
        }
    }
    let mut doc = json!({
        "name": info.name,
        "description": info.description,
        "version": env!("CARGO_PKG_VERSION"),
        "supported_nips": supported_nips(config, policy),
        "limitation": limitation,
    });
    if let Some(obj) = doc.as_object_mut() {
        if let Some(url) = software_url(config) {
            obj.insert("software".into(), Value::String(url));
        }
        for (key, value) in [
            ("pubkey", &info.pubkey),
            ("contact", &info.contact),
            ("icon", &info.icon),
        ] {
            if !value.is_empty() {
                obj.insert(key.to_owned(), Value::String(value.clone()));
            }
        }
    }
    doc
}

/// The serialised NIP-11 document. The policy is read from the database at
/// most once per [`CACHE_FOR`], the names at most once per [`NAMES_FOR`]
/// (one read at a time: concurrent requests wait for the same read).
/// Without the database's answer, what it would have said is left out for
/// [`RETRY_AFTER`], so requests do not each wait in turn.
#[derive(Debug, Default)]
pub struct InfoCache {
    cached: tokio::sync::Mutex<Option<Cached>>,
    /// The policy last read, for pages that show it without waiting.
    policy: std::sync::Mutex<Option<Policy>>,
    /// The names last read, likewise.
    names: std::sync::Mutex<RelayNames>,
}

#[derive(Debug)]
struct Cached {
    doc: Arc<str>,
    policy: Option<Policy>,
    policy_until: Instant,
    names: RelayNames,
    names_until: Instant,
}

impl InfoCache {
    /// The database's policy as last read by [`InfoCache::get`].
    pub fn policy(&self) -> Option<Policy> {
        *crate::limits::lock(&self.policy)
    }

    /// The name, description and icon set in the database, as last read.
    pub fn names(&self) -> RelayNames {
        crate::limits::lock(&self.names).clone()
    }

    /// Makes the next [`InfoCache::get`] read the names again (this gateway
    /// just changed them).
    pub async fn forget_names(&self) {
        if let Some(c) = self.cached.lock().await.as_mut() {
            c.names_until = Instant::now();
        }
    }

    pub async fn get(&self, config: &Config, db: &Db) -> Arc<str> {
        let mut cached = self.cached.lock().await;
        let now = Instant::now();
        if let Some(c) = cached.as_ref() {
            if now < c.policy_until && now < c.names_until {
                return Arc::clone(&c.doc);
            }
        }
        let (policy, policy_until) = match cached.as_ref() {
            Some(c) if now < c.policy_until => (c.policy, c.policy_until),
            _ => match tokio::time::timeout(POLICY_TIMEOUT, db.policy()).await {
                Ok(Ok(policy)) => (Some(policy), now + CACHE_FOR),
                Ok(Err(e)) => {
                    tracing::debug!("NIP-11 without the database's policy: {e}");
                    (None, now + RETRY_AFTER)
                }
                Err(_) => (None, now + RETRY_AFTER),
            },
        };
        let (names, names_until) = match cached.as_ref() {
            Some(c) if now < c.names_until => (c.names.clone(), c.names_until),
            _ => match tokio::time::timeout(POLICY_TIMEOUT, db.relay_names()).await {
                Ok(Ok(names)) => (names, now + NAMES_FOR),
                Ok(Err(e)) => {
                    // An extension older than 0.3.0 has no names to give.
                    tracing::debug!("NIP-11 without the database's relay names: {e}");
                    (RelayNames::default(), now + RETRY_AFTER)
                }
                Err(_) => (RelayNames::default(), now + RETRY_AFTER),
            },
        };
        if let Some(p) = policy {
            *crate::limits::lock(&self.policy) = Some(p);
        }
        names.clone_into(&mut crate::limits::lock(&self.names));
        let doc: Arc<str> = relay_info(config, policy.as_ref(), &names).to_string().into();
        *cached = Some(Cached {
            doc: Arc::clone(&doc),
            policy,
            policy_until,
            names,
            names_until,
        });
        doc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nip11_lists_real_limits() {
        let mut config = Config::default();
        config.limits.max_filters = 7;
        config.info.contact = "admin@example.com".into();
        let doc = relay_info(&config, None, &RelayNames::default());
        assert_eq!(doc["limitation"]["max_filters"], 7);
        assert_eq!(doc["limitation"]["auth_required"], false);
        assert_eq!(doc["contact"], "admin@example.com");
        assert!(doc.get("pubkey").is_none(), "empty fields are omitted");
        assert!(doc["limitation"].get("min_pow_difficulty").is_none());
    }

    #[test]
    fn nips_follow_the_database_policy() {
        let config = Config::default();
        assert_eq!(
            supported_nips(&config, None),
            vec![1, 9, 11, 40, 42, 45, 50, 62, 70, 77]
        );
        let pow = Policy {
            min_pow: 16,
            max_limit: 100,
            ..Policy::default()
        };
        assert_eq!(
            supported_nips(&config, Some(&pow)),
            vec![1, 9, 11, 13, 22, 40, 42, 45, 50, 62, 70, 77]
        );
        let doc = relay_info(&config, Some(&pow), &RelayNames::default());
        assert_eq!(doc["limitation"]["min_pow_difficulty"], 16);
        assert_eq!(doc["limitation"]["created_at_upper_limit"], 900);
        assert!(
            doc["limitation"].get("created_at_lower_limit").is_none(),
            "0 is no limit"
        );
        assert_eq!(doc["limitation"]["max_limit"], 100, "the database's cap is the smaller");
        assert_eq!(doc["limitation"]["max_filters"], 16, "the gateway's is");
        let none = Policy::default();
        assert!(!supported_nips(&config, Some(&none)).contains(&13));
        assert!(
            supported_nips(&config, Some(&none)).contains(&22),
            "900 s ahead by default"
        );
        let nothing_ahead = Policy {
            max_future_seconds: 0,
            ..Policy::default()
        };
        assert!(
            supported_nips(&config, Some(&nothing_ahead)).contains(&22),
            "0 s ahead is a window too"
        );
        let doc = relay_info(&config, Some(&nothing_ahead), &RelayNames::default());
        assert_eq!(
            doc["limitation"]["created_at_upper_limit"], 0,
            "0 is shown, not left out"
        );
        let mut admins = Config::default();
        admins.nip86.admin_pubkeys = vec!["ab".repeat(32)];
        assert_eq!(
            supported_nips(&admins, None),
            vec![1, 9, 11, 40, 42, 45, 50, 62, 70, 77, 86],
            "NIP-86 when someone may use it"
        );
    }

    #[tokio::test]
    async fn without_the_database_the_document_still_answers() {
        let settings = crate::config::DatabaseConfig {
            connect_timeout_ms: 500,
            ..Default::default()
        };
        let db = Db::new("postgres://nobody@127.0.0.1:1/x", settings).unwrap_or_else(|e| panic!("{e}"));
        let cache = InfoCache::default();
        let config = Config::default();
        let doc: Value = serde_json::from_str(&cache.get(&config, &db).await).unwrap_or_default();
        assert_eq!(doc["supported_nips"], json!(supported_nips(&config, None)));
        assert!(cache.policy().is_none());
        // Kept for a moment: the next request does not wait for the database again.
        let again = cache.get(&config, &db).await;
        assert_eq!(serde_json::from_str::<Value>(&again).unwrap_or_default(), doc);
    }

    #[test]
    fn software_is_the_configured_url() {
        let mut config = Config::default();
        config.info.software = "https://example.org/nostr_pg".into();
        let doc = relay_info(&config, None, &RelayNames::default());
        assert_eq!(doc["software"], "https://example.org/nostr_pg");
        // Without one, the build's repository URL, or nothing at all: never
        // a bare name, which NIP-11 clients would take for a URL.
        config.info.software.clear();
        let doc = relay_info(&config, None, &RelayNames::default());
        let software = doc.get("software").and_then(Value::as_str);
        assert_eq!(software, Some(env!("CARGO_PKG_REPOSITORY")).filter(|s| !s.is_empty()));
    }

    #[test]
    fn names_set_in_the_database_show_over_the_configured_ones() {
        let mut config = Config::default();
        config.info.name = "Configured".into();
        config.info.icon = "https://example.org/configured.png".into();
        let names = RelayNames {
            name: Some("Renamed".into()),
            description: None,
            icon: Some("https://example.org/new.png".into()),
        };
        let doc = relay_info(&config, None, &names);
        assert_eq!(doc["name"], "Renamed");
        assert_eq!(
            doc["description"],
            config.info.description.as_str(),
            "unset: configured"
        );
        assert_eq!(doc["icon"], "https://example.org/new.png");
        let doc = relay_info(&config, None, &RelayNames::default());
        assert_eq!(doc["name"], "Configured");
        assert_eq!(doc["icon"], "https://example.org/configured.png");
    }
}
