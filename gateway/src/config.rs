//! Configuration: defaults, overridden by an optional TOML file (`--config`),
//! overridden by the environment (`NOSTR_PG_LISTEN`, `DATABASE_URL`,
//! `NOSTR_PG_READ_DATABASE_URLS`), overridden by command-line flags. The result is one plain [`Config`] value that `run`
//! takes, so tests build it directly and never touch the process environment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;
use thiserror::Error;

use crate::proxy::Cidr;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {source}")]
    Toml {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid listen address `{0}` (expected host:port, e.g. 127.0.0.1:7777)")]
    Listen(String),
    #[error("no database URL: pass --database-url, set DATABASE_URL or `database_url` in the config file")]
    NoDatabaseUrl,
    #[error("invalid setting: {0}")]
    Invalid(String),
}

/// Command-line flags. Every one is optional so that the file and the
/// environment can supply it instead.
#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "gateway",
    about = "nostr_pg relay gateway: NIP-01 WebSocket endpoint in front of PostgreSQL"
)]
pub struct Cli {
    /// Address to listen on (env NOSTR_PG_LISTEN), e.g. 127.0.0.1:7777; port 0 picks a free port.
    #[arg(long)]
    pub listen: Option<String>,
    /// PostgreSQL connection URL (env DATABASE_URL), e.g. postgres://user@localhost/nostr.
    #[arg(long)]
    pub database_url: Option<String>,
    /// A streaming replica for REQ and COUNT; repeat for several (env
    /// NOSTR_PG_READ_DATABASE_URLS, separated by spaces or commas).
    #[arg(long = "read-database-url")]
    pub read_database_urls: Vec<String>,
    /// TOML configuration file; flags and environment override its values.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Public relay URL (wss://host), used for the NIP-42 `relay` tag check and
    /// the NIP-98 `u` tag of NIP-86 requests.
    #[arg(long)]
    pub relay_url: Option<String>,
    /// Log level: error, warn, info, debug or trace.
    #[arg(long)]
    pub log_level: Option<String>,
}

/// Everything the gateway needs to run.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: String,
    pub database_url: String,
    /// Streaming replicas (hot standbys of `database_url`) that serve stored
    /// queries; empty: every read goes to the primary.
    pub read_database_urls: Vec<String>,
    /// Public URL clients connect to; when empty, the NIP-42 relay tag is checked
    /// against the `Host` header of the upgrade request instead, and a NIP-86
    /// request's NIP-98 `u` tag against the request's own URL.
    pub relay_url: String,
    pub log_level: String,
    pub info: RelayInfo,
    pub limits: Limits,
    pub auth: AuthConfig,
    pub publish: PublishConfig,
    pub database: DatabaseConfig,
    pub proxy: ProxyConfig,
    pub replicas: ReplicaConfig,
    pub nip86: Nip86Config,
}

/// The relay management API (NIP-86): HTTP JSON-RPC on the relay's URL,
/// authorized with NIP-98 by one of these keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Nip86Config {
    /// Hex pubkeys of the relay's admins (64 lowercase hex characters each);
    /// empty: the API is off.
    pub admin_pubkeys: Vec<String>,
    /// How far a NIP-98 event's `created_at` may be from now, either way.
    pub auth_window_seconds: u64,
}

/// When a replica serves reads (see `read_database_urls`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplicaConfig {
    /// How often each replica's health and lag are checked.
    pub check_every_ms: u64,
    /// A replica whose replay is more than this many bytes of WAL behind the
    /// primary is taken out of rotation until it catches up.
    pub max_lag_bytes: u64,
    /// ...or more than this many milliseconds behind (the age of the last
    /// transaction it replayed, while it has WAL left to replay).
    pub max_lag_ms: u64,
}

/// NIP-11 descriptive fields.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayInfo {
    pub name: String,
    pub description: String,
    /// Operator's hex pubkey.
    pub pubkey: String,
    pub contact: String,
    pub icon: String,
    /// NIP-11 `software`: the URL of the relay software's project. Empty:
    /// the `repository` of the gateway's Cargo manifest, if it names one.
    pub software: String,
}

/// Limits enforced by the gateway and advertised in NIP-11.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest WebSocket message (and frame) accepted, in bytes.
    pub max_message_length: usize,
    /// Largest event JSON accepted, in bytes.
    pub max_event_size: usize,
    pub max_subscriptions: usize,
    pub max_filters: usize,
    /// Largest `limit` served per filter; the extension applies its own cap too.
    pub max_limit: u64,
    pub max_subid_length: usize,
    pub max_event_tags: usize,
    /// Largest `content`, in characters.
    pub max_content_length: usize,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Token buckets for EVENT: sustained rate per second and burst size.
    pub events_per_second_per_ip: f64,
    pub event_burst_per_ip: f64,
    pub events_per_second_per_pubkey: f64,
    pub event_burst_per_pubkey: f64,
    /// Token bucket for REQ and COUNT that run a query, per IP: a flood of
    /// stored queries is the cheapest way to load the database, so past it a
    /// REQ is answered `CLOSED rate-limited:` without one.
    pub reqs_per_second_per_ip: f64,
    pub req_burst_per_ip: f64,
    /// Frames of any kind one connection may send per second, after a burst;
    /// past it the gateway reads that socket more slowly (nothing is refused).
    pub frames_per_second_per_connection: f64,
    pub frame_burst_per_connection: f64,
    /// EVENTs of one connection waiting for their OK; past it the gateway stops
    /// reading that socket until OKs drain (TCP back-pressure, bounded memory).
    pub max_inflight_events: usize,
    /// Capacity of each connection's live-event queue; a client that lets it
    /// fill is disconnected.
    pub live_queue: usize,
    /// NIP-77: most stored events one reconciliation may cover (each held in
    /// memory, 40 bytes, while it is open); past it NEG-OPEN is answered
    /// `NEG-ERR blocked:`.
    pub max_negentropy_records: usize,
    /// NIP-77: records all open reconciliations of the gateway may hold
    /// together (each NEG-OPEN reserves `max_negentropy_records` while it
    /// reads, then keeps what it read); past it NEG-OPEN is answered
    /// `NEG-ERR blocked:` until others close.
    pub max_negentropy_records_total: usize,
    /// NIP-77: a reconciliation with no NEG-MSG for this long is closed
    /// (`NEG-ERR closed:`), giving its records back.
    pub negentropy_idle_seconds: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Every EVENT, REQ and COUNT needs a NIP-42 authenticated connection.
    pub required: bool,
    /// Kinds 4, 1059 and 1060 are served only to an authenticated author or
    /// p-tagged recipient.
    pub restrict_dm_reads: bool,
}

/// Behind a reverse proxy or a TCP load balancer (see [`crate::proxy`]).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyConfig {
    /// Addresses and networks (`10.0.0.0/8`) of the proxies whose
    /// `Forwarded` / `X-Forwarded-For` headers and PROXY protocol headers
    /// name the client. Anyone else's are ignored.
    pub trusted: Vec<Cidr>,
    /// Every connection to the listener starts with a PROXY protocol header
    /// (v1 or v2), as a TCP load balancer sends it; one without is closed.
    pub protocol: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PublishConfig {
    /// A batch is sent when it holds this many events...
    pub batch_max_events: usize,
    /// ...or this long after its first event arrived, whichever comes first.
    pub batch_window_us: u64,
    /// Batches in flight at once (each is one round trip and one commit).
    pub max_concurrent_batches: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Pooled connections for queries and publishes (the LISTEN connection is extra).
    pub pool_size: usize,
    /// `statement_timeout` set on every pooled connection.
    pub statement_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    /// Longest wait for a free pooled connection before answering `error:`.
    pub acquire_timeout_ms: u64,
    /// Pooled connections unused this long are closed (0: never).
    pub idle_timeout_ms: u64,
    /// Pooled connections older than this are closed once idle (0: never),
    /// so server-side memory and settings changes do not live forever.
    pub max_lifetime_ms: u64,
    /// How often the LISTEN connection checks in: it asks for a snapshot,
    /// delivers anything committed that no notification named, and proves
    /// the connection is alive.
    pub listen_checkpoint_ms: u64,
    /// A check-in that takes longer than this means the LISTEN connection is
    /// dead (for example half-open): it is dropped and re-established.
    pub listen_timeout_ms: u64,
    /// Every database connection (pooled, LISTEN, replicas) is closed by the
    /// kernel when data it sent stays unacknowledged this long (TCP user
    /// timeout), and idle ones are probed (TCP keepalive after 10 s, then
    /// every 2 s): a connection left half-open by a network cut fails within
    /// seconds, and its client gets `error:`, instead of waiting for TCP to
    /// give up (about 15 minutes). 0: the system's defaults.
    pub tcp_user_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:7777".to_owned(),
            database_url: String::new(),
            relay_url: String::new(),
            log_level: "info".to_owned(),
            info: RelayInfo::default(),
            limits: Limits::default(),
            auth: AuthConfig::default(),
            publish: PublishConfig::default(),
            database: DatabaseConfig::default(),
            proxy: ProxyConfig::default(),
            replicas: ReplicaConfig::default(),
            read_database_urls: Vec::new(),
            nip86: Nip86Config::default(),
        }
    }
}

impl Default for Nip86Config {
    fn default() -> Self {
        Nip86Config {
            admin_pubkeys: Vec::new(),
            auth_window_seconds: 60,
        }
    }
}

impl Nip86Config {
    /// The admins' keys as bytes; an entry that is not 64 lowercase hex
    /// characters is an error.
    pub fn admins(&self) -> Result<Vec<[u8; 32]>, ConfigError> {
        self.admin_pubkeys
            .iter()
            .map(|k| {
                nostr_pg_core::hex::decode_fixed::<32>(k.trim()).ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "nip86.admin_pubkeys: `{k}` is not a hex pubkey (64 lowercase hex characters; \
                         convert an npub first)"
                    ))
                })
            })
            .collect()
    }

    pub fn enabled(&self) -> bool {
        !self.admin_pubkeys.is_empty()
    }
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        ReplicaConfig {
            check_every_ms: 1_000,
            max_lag_bytes: 16 * 1024 * 1024,
            max_lag_ms: 5_000,
        }
    }
}

impl Default for RelayInfo {
    fn default() -> Self {
        RelayInfo {
            name: "nostr_pg".to_owned(),
            description: "A Nostr relay whose events live in PostgreSQL".to_owned(),
            pubkey: String::new(),
            contact: String::new(),
            icon: String::new(),
            software: String::new(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_length: 256 * 1024,
            max_event_size: 128 * 1024,
            max_subscriptions: 32,
            max_filters: 16,
            max_limit: 500,
            max_subid_length: 64,
            max_event_tags: 2500,
            max_content_length: 100_000,
            max_connections: 10_000,
            max_connections_per_ip: 100,
            events_per_second_per_ip: 50.0,
            event_burst_per_ip: 200.0,
            events_per_second_per_pubkey: 20.0,
            event_burst_per_pubkey: 100.0,
            reqs_per_second_per_ip: 20.0,
            req_burst_per_ip: 100.0,
            frames_per_second_per_connection: 1000.0,
            frame_burst_per_connection: 2000.0,
            max_inflight_events: 256,
            live_queue: 1024,
            max_negentropy_records: 1_000_000,
            max_negentropy_records_total: 4_000_000,
            negentropy_idle_seconds: 60,
        }
    }
}

impl Default for PublishConfig {
    fn default() -> Self {
        PublishConfig {
            batch_max_events: 200,
            batch_window_us: 1000,
            max_concurrent_batches: 2,
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            pool_size: 8,
            statement_timeout_ms: 10_000,
            connect_timeout_ms: 5_000,
            acquire_timeout_ms: 5_000,
            idle_timeout_ms: 300_000,
            max_lifetime_ms: 3_600_000,
            listen_checkpoint_ms: 1_000,
            listen_timeout_ms: 5_000,
            tcp_user_timeout_ms: 5_000,
        }
    }
}

impl Config {
    /// Reads flags from the process arguments and the environment.
    pub fn from_process() -> Result<Config, ConfigError> {
        Config::resolve(Cli::parse(), |name| std::env::var(name).ok())
    }

    /// Applies the precedence flags > environment > file > defaults. `env` is
    /// injected so tests never mutate the process environment.
    pub fn resolve(cli: Cli, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut config = match &cli.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(v) = env("NOSTR_PG_LISTEN").filter(|v| !v.is_empty()) {
            config.listen = v;
        }
        if let Some(v) = env("DATABASE_URL").filter(|v| !v.is_empty()) {
            config.database_url = v;
        }
        if let Some(v) = env("NOSTR_PG_READ_DATABASE_URLS").filter(|v| !v.trim().is_empty()) {
            config.read_database_urls = v
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|u| !u.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if !cli.read_database_urls.is_empty() {
            config.read_database_urls = cli.read_database_urls;
        }
        if let Some(v) = cli.listen {
            config.listen = v;
        }
        if let Some(v) = cli.database_url {
            config.database_url = v;
        }
        if let Some(v) = cli.relay_url {
            config.relay_url = v;
        }
        if let Some(v) = cli.log_level {
            config.log_level = v;
        }
        config.validate()?;
        Ok(config)
    }

    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml(&text).map_err(|source| ConfigError::Toml {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    pub fn from_toml(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }

    /// The listen address as a socket address.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen
            .parse()
            .map_err(|_| ConfigError::Listen(self.listen.clone()))
    }

    /// Checks what would otherwise fail later, deep inside a task.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        if self.database_url.is_empty() {
            return Err(ConfigError::NoDatabaseUrl);
        }
        if self.read_database_urls.iter().any(|u| u.trim().is_empty()) {
            return Err(ConfigError::Invalid("an empty read database URL".into()));
        }
        let l = &self.limits;
        let positive = [
            ("limits.max_message_length", l.max_message_length),
            ("limits.max_event_size", l.max_event_size),
            ("limits.max_subscriptions", l.max_subscriptions),
            ("limits.max_filters", l.max_filters),
            ("limits.max_subid_length", l.max_subid_length),
            ("limits.max_connections", l.max_connections),
            ("limits.max_connections_per_ip", l.max_connections_per_ip),
            ("limits.max_inflight_events", l.max_inflight_events),
            ("limits.live_queue", l.live_queue),
            ("limits.max_negentropy_records", l.max_negentropy_records),
            (
                "limits.negentropy_idle_seconds",
                usize::try_from(l.negentropy_idle_seconds).unwrap_or(1),
            ),
            ("publish.batch_max_events", self.publish.batch_max_events),
            ("publish.max_concurrent_batches", self.publish.max_concurrent_batches),
            ("database.pool_size", self.database.pool_size),
            (
                "database.listen_checkpoint_ms",
                usize::try_from(self.database.listen_checkpoint_ms).unwrap_or(1),
            ),
            (
                "database.listen_timeout_ms",
                usize::try_from(self.database.listen_timeout_ms).unwrap_or(1),
            ),
            (
                "replicas.check_every_ms",
                usize::try_from(self.replicas.check_every_ms).unwrap_or(1),
            ),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(ConfigError::Invalid(format!("{name} must be at least 1")));
            }
        }
        if l.max_negentropy_records_total < l.max_negentropy_records {
            return Err(ConfigError::Invalid(
                "limits.max_negentropy_records_total must be at least limits.max_negentropy_records".into(),
            ));
        }
        let rates = [
            ("limits.events_per_second_per_ip", l.events_per_second_per_ip),
            ("limits.event_burst_per_ip", l.event_burst_per_ip),
            ("limits.events_per_second_per_pubkey", l.events_per_second_per_pubkey),
            ("limits.event_burst_per_pubkey", l.event_burst_per_pubkey),
            ("limits.reqs_per_second_per_ip", l.reqs_per_second_per_ip),
            ("limits.req_burst_per_ip", l.req_burst_per_ip),
            (
                "limits.frames_per_second_per_connection",
                l.frames_per_second_per_connection,
            ),
            ("limits.frame_burst_per_connection", l.frame_burst_per_connection),
        ];
        for (name, value) in rates {
            if !(value.is_finite() && value > 0.0) {
                return Err(ConfigError::Invalid(format!("{name} must be a positive number")));
            }
        }
        if self.proxy.protocol && self.proxy.trusted.is_empty() {
            return Err(ConfigError::Invalid(
                "proxy.protocol needs proxy.trusted: the load balancers' addresses".into(),
            ));
        }
        self.nip86.admins()?;
        if !(1..=3600).contains(&self.nip86.auth_window_seconds) {
            return Err(ConfigError::Invalid(
                "nip86.auth_window_seconds must be from 1 to 3600".into(),
            ));
        }
        // NIP-98 `u` tags are compared with it, so it must be a whole URL.
        let url = self.relay_url.trim().to_ascii_lowercase();
        let schemes = ["ws://", "wss://", "http://", "https://"];
        if self.nip86.enabled() && !(url.is_empty() || schemes.iter().any(|s| url.starts_with(s))) {
            return Err(ConfigError::Invalid(format!(
                "relay_url must be a ws(s):// URL when nip86.admin_pubkeys is set, not `{}`",
                self.relay_url
            )));
        }
        let software = self.info.software.trim();
        if !(software.is_empty() || software.starts_with("https://") || software.starts_with("http://")) {
            return Err(ConfigError::Invalid(format!(
                "info.software must be an http(s) URL, not `{software}`"
            )));
        }
        Ok(())
    }

    pub fn batch_window(&self) -> Duration {
        Duration::from_micros(self.publish.batch_window_us)
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
