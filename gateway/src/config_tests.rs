//! Tests of `config.rs`: sources and their precedence, validation.

use super::*;
use std::collections::HashMap;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    move |name| map.get(name).cloned()
}

fn write_file(text: &str) -> PathBuf {
    let dir = std::env::temp_dir();
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let path = dir.join(format!("gateway-config-test-{}-{n}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {path:?}: {e}"));
    path
}

#[test]
fn flags_beat_env_beat_file_beat_defaults() {
    let path = write_file(
        "listen = \"127.0.0.1:1000\"\ndatabase_url = \"postgres://file\"\nrelay_url = \"wss://file\"\n[limits]\nmax_filters = 3\n",
    );
    let cli = |listen: Option<&str>| Cli {
        listen: listen.map(str::to_owned),
        config: Some(path.clone()),
        ..Cli::default()
    };

    let c = Config::resolve(cli(None), env(&[])).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.listen, "127.0.0.1:1000");
    assert_eq!(c.database_url, "postgres://file");
    assert_eq!(c.limits.max_filters, 3);
    assert_eq!(c.limits.max_subscriptions, Limits::default().max_subscriptions);

    let e = env(&[
        ("NOSTR_PG_LISTEN", "127.0.0.1:2000"),
        ("DATABASE_URL", "postgres://env"),
    ]);
    let c = Config::resolve(cli(None), e).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.listen, "127.0.0.1:2000");
    assert_eq!(c.database_url, "postgres://env");

    let e = env(&[("NOSTR_PG_LISTEN", "127.0.0.1:2000")]);
    let c = Config::resolve(cli(Some("127.0.0.1:3000")), e).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.listen, "127.0.0.1:3000");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn defaults_need_a_database_url() {
    assert!(matches!(
        Config::resolve(Cli::default(), env(&[])),
        Err(ConfigError::NoDatabaseUrl)
    ));
    let c = Config::resolve(Cli::default(), env(&[("DATABASE_URL", "postgres://x")])).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.listen, "127.0.0.1:7777");
}

#[test]
fn rejects_typos_and_bad_values() {
    assert!(Config::from_toml("[limits]\nmax_filter = 3\n").is_err());
    let mut c = Config {
        database_url: "postgres://x".into(),
        ..Config::default()
    };
    c.limits.max_filters = 0;
    assert!(c.validate().is_err());
    c.limits.max_filters = 1;
    c.listen = "nowhere".into();
    assert!(matches!(c.validate(), Err(ConfigError::Listen(_))));
    c.listen = "127.0.0.1:1".into();
    c.info.software = "nostr_pg".into();
    assert!(
        matches!(c.validate(), Err(ConfigError::Invalid(_))),
        "a bare name is no URL"
    );
    c.info.software = "https://example.org/nostr_pg".into();
    assert!(c.validate().is_ok());
}

#[test]
fn proxy_settings() {
    let c = Config::from_toml("[proxy]\ntrusted = [\"127.0.0.1\", \"10.0.0.0/8\"]\nprotocol = true\n")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.proxy.trusted.len(), 2);
    assert!(c.proxy.protocol);
    assert!(Config::from_toml("[proxy]\ntrusted = [\"10.0.0.0/40\"]\n").is_err());
    let mut c = Config {
        database_url: "postgres://x".into(),
        ..Config::default()
    };
    c.proxy.protocol = true;
    assert!(matches!(c.validate(), Err(ConfigError::Invalid(_))), "whose headers?");
}

#[test]
fn read_urls_come_from_flags_env_or_file() {
    let path = write_file(
        "database_url = \"postgres://p\"\nread_database_urls = [\"postgres://f\"]\n[replicas]\nmax_lag_ms = 7\n",
    );
    let cli = |urls: &[&str]| Cli {
        config: Some(path.clone()),
        read_database_urls: urls.iter().map(|u| (*u).to_owned()).collect(),
        ..Cli::default()
    };
    let c = Config::resolve(cli(&[]), env(&[])).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.read_database_urls, vec!["postgres://f"]);
    assert_eq!(c.replicas.max_lag_ms, 7);
    let e = env(&[("NOSTR_PG_READ_DATABASE_URLS", "postgres://a, postgres://b")]);
    let c = Config::resolve(cli(&[]), e).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.read_database_urls, vec!["postgres://a", "postgres://b"]);
    let e = env(&[("NOSTR_PG_READ_DATABASE_URLS", "postgres://a")]);
    let c = Config::resolve(cli(&["postgres://x", "postgres://y"]), e).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.read_database_urls, vec!["postgres://x", "postgres://y"]);
    let _ = std::fs::remove_file(&path);
    let parsed = Cli::try_parse_from([
        "gateway",
        "--read-database-url",
        "postgres://r1",
        "--read-database-url",
        "postgres://r2",
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parsed.read_database_urls, vec!["postgres://r1", "postgres://r2"]);
}

#[test]
fn cli_parses_flags() {
    let cli = Cli::try_parse_from(["gateway", "--listen", "0.0.0.0:1", "--database-url", "postgres://a"])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cli.listen.as_deref(), Some("0.0.0.0:1"));
    assert_eq!(cli.database_url.as_deref(), Some("postgres://a"));
}

#[test]
fn nip86_admins_are_hex_pubkeys() {
    let key = "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";
    let c = Config::from_toml(&format!(
        "[nip86]\nadmin_pubkeys = [\"{key}\"]\nauth_window_seconds = 30\n"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(c.nip86.enabled());
    assert_eq!(c.nip86.auth_window_seconds, 30);
    assert_eq!(c.nip86.admins().ok().map(|a| a.len()), Some(1));
    assert!(!Config::default().nip86.enabled(), "off by default");
    assert_eq!(Config::default().nip86.auth_window_seconds, 60);
    let mut c = Config {
        database_url: "postgres://x".into(),
        ..c
    };
    assert!(c.validate().is_ok());
    for bad in [&key[..63], &key.to_uppercase(), "npub1abc"] {
        c.nip86.admin_pubkeys = vec![bad.to_owned()];
        assert!(matches!(c.validate(), Err(ConfigError::Invalid(_))), "{bad}");
    }
    c.nip86.admin_pubkeys = vec![key.to_owned()];
    c.nip86.auth_window_seconds = 0;
    assert!(c.validate().is_err());
    c.nip86.auth_window_seconds = 60;
    c.relay_url = "relay.example.com".into();
    assert!(c.validate().is_err(), "a URL, with its scheme");
    c.relay_url = "wss://relay.example.com".into();
    assert!(c.validate().is_ok());
    assert!(
        Config::from_toml("[nip86]\nadmins = []\n").is_err(),
        "a typo is refused"
    );
}
