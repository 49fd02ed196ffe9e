//! Least privilege: the gateway runs as an ordinary role granted with
//! `nostr.grant_relay` (publish through the rules, read, listen) and serves
//! everything as a superuser's gateway would; a role granted with
//! `nostr.grant_reader` reads with SQL and can change nothing; neither can
//! write around the rules nor change the relay's policy settings. Refusals
//! are SQLSTATE 42501 (insufficient_privilege).
// Test helpers expect freely: a failed expectation is a failed test (the
// workspace's expect_used lint is for code clients and the database reach).
#![allow(clippy::expect_used)]

mod support;

use e2e::relay::{ids, Client, Gateway};
use e2e::{connect, now, publish, TestDb, TestRole};
use nostr_pg_core::hex;
use nostr_pg_core::sign::{tags, Keys};
use nostr_pg_core::Event;
use serde_json::json;
use support::*;

/// Every policy setting of the extension (nostr_pg/src/settings.rs).
const SETTINGS: [(&str, &str); 9] = [
    ("nostr.min_pow", "0"),
    ("nostr.max_future_seconds", "2000000000"),
    ("nostr.max_past_seconds", "0"),
    ("nostr.max_limit", "1000000"),
    ("nostr.max_filters", "10000"),
    ("nostr.max_event_bytes", "1073741824"),
    ("nostr.max_batch", "100000"),
    ("nostr.relay_url", "'wss://elsewhere.example'"),
    ("nostr.write_policy", "'public.anything_goes'"),
];

async fn gateway(url: &str) -> (Gateway, ConfigFile) {
    let file = ConfigFile::new(UNLIMITED);
    let gw = Gateway::start(url, &["--config", &file.arg()]).await;
    (gw, file)
}

async fn grant(db: &TestDb, function: &str, role: &TestRole) {
    db.client()
        .await
        .execute(&format!("SELECT nostr.{function}($1)"), &[&role.name])
        .await
        .unwrap_or_else(|e| panic!("{function}: {e}"));
}

/// Runs `sql` as `c` and expects it refused for lack of privilege.
async fn refused(c: &tokio_postgres::Client, who: &str, sql: &str) {
    match c.batch_execute(sql).await {
        Ok(()) => panic!("{who} ran `{sql}`"),
        Err(e) => assert_eq!(
            e.code().map(|c| c.code()),
            Some("42501"),
            "{who}: `{sql}` failed otherwise: {e}"
        ),
    }
}

fn ok(frame: &serde_json::Value) -> (bool, String) {
    assert_eq!(frame[0], "OK", "{frame}");
    (
        frame[2].as_bool().unwrap_or(false),
        frame[3].as_str().unwrap_or_default().to_owned(),
    )
}

/// Reads `sub`'s live events until `marker` arrives; the ids before it.
async fn until_marker(c: &mut Client, sub: &str, marker: &Event) -> Vec<String> {
    let marker = hex::encode(&marker.id);
    let mut seen = Vec::new();
    loop {
        let id = c.next_event(sub).await["id"].as_str().unwrap_or_default().to_owned();
        if id == marker {
            return seen;
        }
        seen.push(id);
    }
}

/// Two gateways as the relay role: publish (regular, replaceable, deletion,
/// ephemeral), REQ, COUNT and live delivery from one gateway to the other,
/// with every rule still enforced.
#[tokio::test]
async fn gateways_serve_everything_as_an_ordinary_role() {
    let role = TestRole::new("relay").await;
    let db = TestDb::new("priv_relay").await;
    grant(&db, "grant_relay", &role).await;
    let admin = db.client().await;
    let superuser: bool = admin
        .query_one("SELECT rolsuper FROM pg_roles WHERE rolname = $1", &[&role.name])
        .await
        .expect("pg_roles")
        .get(0);
    assert!(!superuser);

    let (publishing, _f1) = gateway(&role.url(&db.url)).await;
    let (serving, _f2) = gateway(&role.url(&db.url)).await;
    let keys = Keys::from_seed("priv_relay");
    let t = now();
    let mut sub = Client::connect(&serving.url).await;
    assert!(sub
        .req("live", &[json!({"authors": [hex::encode(&keys.pubkey())]})])
        .await
        .expect("req")
        .is_empty());

    let note = keys.sign(t - 5, 1, vec![], "kept");
    let doomed = keys.sign(t - 4, 1, vec![], "to be deleted");
    let old_profile = keys.sign(t - 3, 0, vec![], "{\"name\":\"old\"}");
    let profile = keys.sign(t - 2, 0, vec![], "{\"name\":\"new\"}");
    let ephemeral = keys.sign(t - 1, 20001, vec![], "passing by");
    let id = |e: &Event| hex::encode(&e.id);
    let deletion = keys.sign(t, 5, tags(&[&["e", &id(&doomed)]]), "");
    let marker = keys.sign(t, 1, vec![], "marker");
    let mut p = Client::connect(&publishing.url).await;
    for e in [&note, &doomed, &old_profile, &profile, &ephemeral, &deletion, &marker] {
        assert_eq!(
            ok(&p.publish(&e.canonical_json()).await),
            (true, String::new()),
            "{}",
            e.content
        );
    }
    let live = until_marker(&mut sub, "live", &marker).await;
    let want: Vec<String> = [&note, &doomed, &old_profile, &profile, &ephemeral, &deletion]
        .into_iter()
        .map(id)
        .collect();
    assert_eq!(
        live, want,
        "live delivery through the other gateway's LISTEN connection"
    );

    // The rules ran: the old profile was replaced, the deleted note is gone
    // and stays gone, the ephemeral event was never stored.
    let stored = p
        .req("stored", &[json!({"authors": [hex::encode(&keys.pubkey())]})])
        .await
        .expect("req");
    let mut want = vec![&deletion, &marker, &profile, &note];
    want.sort_by_key(|e| (std::cmp::Reverse(e.created_at), e.id));
    assert_eq!(ids(&stored), want.into_iter().map(id).collect::<Vec<_>>());
    let (accepted, message) = ok(&p.publish(&doomed.canonical_json()).await);
    assert!(!accepted && message.starts_with("blocked:"), "{message}");
    let (accepted, message) = ok(&p.publish(&old_profile.canonical_json()).await);
    assert!(!accepted && message.starts_with("blocked:"), "{message}");
    assert_eq!(p.count("n", &[json!({"kinds": [1]})]).await, Ok(2));

    // Both gateways really ran as the role.
    let users: Vec<String> = admin
        .query(
            "SELECT DISTINCT usename::text FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE 'nostr_pg_gateway%'",
            &[&db.name],
        )
        .await
        .expect("pg_stat_activity")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(users, vec![role.name.clone()]);
}

/// What the relay and reader roles may not do: write around the rules,
/// purge live events, grant themselves more, or change policy.
#[tokio::test]
async fn neither_role_can_write_around_the_rules() {
    let relay = TestRole::new("relay_w").await;
    let reader = TestRole::new("reader_w").await;
    let db = TestDb::new("priv_write").await;
    grant(&db, "grant_relay", &relay).await;
    grant(&db, "grant_reader", &reader).await;
    let admin = db.client().await;
    let keys = Keys::from_seed("priv_write");
    let stored = keys.sign(now(), 1, vec![], "stored");
    assert_eq!(publish(&admin, &stored.canonical_json()).await, (true, String::new()));
    let other = keys.sign(now(), 1, vec![], "another").canonical_json();
    let before = row_counts(&admin).await;

    let id_hex = hex::encode(&stored.id);
    let writes = [
        format!("INSERT INTO nostr.events (event) VALUES ('{other}')"),
        "COPY nostr.events (event) FROM STDIN".to_owned(),
        format!("DELETE FROM nostr.events WHERE id = decode('{id_hex}', 'hex')"),
        "UPDATE nostr.events SET kind = 2".to_owned(),
        "TRUNCATE nostr.events".to_owned(),
        "DELETE FROM nostr.event_tags".to_owned(),
        format!("INSERT INTO nostr.deleted_ids VALUES (decode('{id_hex}', 'hex'), '\\x00', '\\x00')"),
        "INSERT INTO nostr.deleted_addresses VALUES ('\\x00', 0, '', 0)".to_owned(),
        "INSERT INTO nostr.vanished VALUES ('\\x00', 0)".to_owned(),
        format!("INSERT INTO nostr.transit (event) VALUES ('{other}')"),
        "DELETE FROM nostr.transit".to_owned(),
        "UPDATE nostr.transit_state SET epoch = 0".to_owned(),
        "SELECT nextval('nostr.event_seq')".to_owned(),
        "SELECT nostr.purge_transit('0 seconds')".to_owned(),
        "SELECT nostr.purge_expired()".to_owned(),
        "SELECT nostr.grant_relay(current_user)".to_owned(),
        "SELECT nostr.grant_reader(current_user)".to_owned(),
        // Moderation state: only through the moderation functions.
        "INSERT INTO nostr.banned_pubkeys (pubkey) VALUES ('\\x00')".to_owned(),
        "DELETE FROM nostr.banned_pubkeys".to_owned(),
        "INSERT INTO nostr.allowed_pubkeys (pubkey) VALUES ('\\x00')".to_owned(),
        "TRUNCATE nostr.banned_events".to_owned(),
        "INSERT INTO nostr.allowed_events (id) VALUES ('\\x00')".to_owned(),
        "INSERT INTO nostr.allowed_kinds VALUES (1)".to_owned(),
        "DELETE FROM nostr.disallowed_kinds".to_owned(),
        "INSERT INTO nostr.blocked_ips (ip) VALUES ('10.0.0.0/8')".to_owned(),
        "UPDATE nostr.relay_details SET name = 'x'".to_owned(),
        "SELECT * FROM nostr.banned_pubkeys".to_owned(),
        // The internals behind them and behind publish_batch.
        format!("SELECT nostr._lock_author(decode('{id_hex}', 'hex'))"),
        format!("SELECT nostr._lock_id(decode('{id_hex}', 'hex'))"),
        "SELECT nostr._invalidate_moderation('nostr.events'::regclass)".to_owned(),
        format!("SELECT * FROM nostr._publish_batch(ARRAY['{other}'], NULL, NULL)"),
    ];
    for role in [&relay, &reader] {
        let c = connect(&role.url(&db.url)).await;
        for sql in &writes {
            refused(&c, &role.name, sql).await;
        }
    }
    // The reader may not publish either (the relay may: that is its job).
    let c = connect(&reader.url(&db.url)).await;
    refused(&c, "reader", &format!("SELECT nostr.publish('{other}')")).await;
    refused(&c, "reader", &format!("SELECT nostr.publish_batch(ARRAY['{other}'])")).await;
    refused(&c, "reader", "SELECT nostr.live_state()").await;
    refused(&c, "reader", "SELECT * FROM nostr.transit").await;
    // Nor moderate: every moderation function but nostr.relay_info().
    for sql in MODERATION {
        refused(&c, "reader", sql).await;
    }
    let info: Option<String> = c
        .query_one("SELECT name FROM nostr.relay_info()", &[])
        .await
        .expect("relay_info as a reader")
        .get(0);
    assert_eq!(info, None);
    assert_eq!(row_counts(&admin).await, before, "a refused statement changed a table");
}

/// A call of every moderation function (sql/moderation.sql) but
/// `nostr.relay_info()`.
const MODERATION: [&str; 22] = [
    "SELECT nostr.ban_pubkey(repeat('ab', 32), 'x')",
    "SELECT nostr.unban_pubkey(repeat('ab', 32))",
    "SELECT nostr.allow_pubkey(repeat('ab', 32))",
    "SELECT nostr.unallow_pubkey(repeat('ab', 32))",
    "SELECT * FROM nostr.list_banned_pubkeys()",
    "SELECT * FROM nostr.list_allowed_pubkeys()",
    "SELECT nostr.ban_event(repeat('cd', 32))",
    "SELECT nostr.unban_event(repeat('cd', 32))",
    "SELECT nostr.allow_event(repeat('cd', 32))",
    "SELECT nostr.unallow_event(repeat('cd', 32))",
    "SELECT * FROM nostr.list_banned_events()",
    "SELECT * FROM nostr.list_allowed_events()",
    "SELECT * FROM nostr.list_events_needing_moderation()",
    "SELECT nostr.allow_kind(1)",
    "SELECT nostr.disallow_kind(1)",
    "SELECT * FROM nostr.list_allowed_kinds()",
    "SELECT * FROM nostr.list_disallowed_kinds()",
    "SELECT nostr.block_ip('192.0.2.1')",
    "SELECT nostr.unblock_ip('192.0.2.1')",
    "SELECT * FROM nostr.list_blocked_ips()",
    "SELECT nostr.ip_blocked('192.0.2.1')",
    "SELECT nostr.set_relay_info('name', 'x')",
];

/// The relay's role (the NIP-86 endpoint) may call every moderation
/// function; a role granted nothing may call none.
#[tokio::test]
async fn the_relay_role_moderates_and_nobody_else() {
    let relay = TestRole::new("relay_m").await;
    let nobody = TestRole::new("nobody_m").await;
    let db = TestDb::new("priv_moderation").await;
    grant(&db, "grant_relay", &relay).await;
    let c = connect(&nobody.url(&db.url)).await;
    for sql in MODERATION {
        refused(&c, &nobody.name, sql).await;
    }
    refused(&c, &nobody.name, "SELECT * FROM nostr.relay_info()").await;
    let c = connect(&relay.url(&db.url)).await;
    for sql in MODERATION {
        c.batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("the relay role ran `{sql}`: {e}"));
    }
    let name: Option<String> = c
        .query_one("SELECT name FROM nostr.relay_info()", &[])
        .await
        .expect("relay_info")
        .get(0);
    assert_eq!(name.as_deref(), Some("x"));
}

/// The reader queries with SQL: nostr.req, nostr.count, nostr.matches and
/// plain SELECTs.
#[tokio::test]
async fn a_reader_reads_with_sql() {
    let reader = TestRole::new("reader").await;
    let db = TestDb::new("priv_read").await;
    grant(&db, "grant_reader", &reader).await;
    let admin = db.client().await;
    let keys = Keys::from_seed("priv_read");
    let events: Vec<Event> = (0..3)
        .map(|i| keys.sign(now() - i, 1, tags(&[&["t", "read"]]), &format!("note {i}")))
        .collect();
    for e in &events {
        assert_eq!(publish(&admin, &e.canonical_json()).await, (true, String::new()));
    }
    let c = connect(&reader.url(&db.url)).await;
    let n: i64 = c
        .query_one("SELECT count(*) FROM nostr.events WHERE kind = 1", &[])
        .await
        .expect("select")
        .get(0);
    assert_eq!(n, 3);
    let served: Vec<String> = c
        .query(
            "SELECT e::text FROM nostr.req('[{\"#t\":[\"read\"],\"limit\":2}]'::text) AS e",
            &[],
        )
        .await
        .expect("nostr.req")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let newest: Vec<String> = events.iter().take(2).map(Event::canonical_json).collect();
    assert_eq!(served, newest);
    let counted: i64 = c
        .query_one("SELECT nostr.count('[{\"#t\":[\"read\"]}]'::jsonb)", &[])
        .await
        .expect("nostr.count")
        .get(0);
    assert_eq!(counted, 3);
    let matching: i64 = c
        .query_one(
            "SELECT count(*) FROM nostr.events WHERE nostr.matches(event, '{\"kinds\":[1],\"#t\":[\"read\"]}'::jsonb)",
            &[],
        )
        .await
        .expect("nostr.matches")
        .get(0);
    assert_eq!(matching, 3);
}

/// Policy is the superuser's: an ordinary role cannot change any `nostr.*`
/// setting by any means, while `ALTER DATABASE ... SET` by a superuser
/// applies to its sessions (the extension's library is loaded there after
/// the setting, as a placeholder, was read).
#[tokio::test]
async fn policy_settings_are_superuser_only() {
    let relay = TestRole::new("relay_s").await;
    let db = TestDb::new("priv_settings").await;
    grant(&db, "grant_relay", &relay).await;
    let admin = db.client().await;
    admin
        .batch_execute(&format!("ALTER DATABASE {} SET nostr.min_pow = 12", db.name))
        .await
        .expect("alter database");
    let keys = Keys::from_seed("priv_settings");
    let weak = keys.sign(now(), 1, vec![], "weak");
    assert!(weak.pow_difficulty() < 12, "the test needs an event below the minimum");

    let c = connect(&relay.url(&db.url)).await;
    // Before anything loaded the extension's library in this session, a SET
    // may create a placeholder; loading the library then drops it (with a
    // warning), so it never weakens the policy.
    let _placeholder_or_refused = c.batch_execute("SET nostr.min_pow = 0").await;
    let (accepted, message) = publish(&c, &weak.canonical_json()).await;
    assert!(!accepted && message.starts_with("pow:"), "{message}");
    let shown: String = c.query_one("SHOW nostr.min_pow", &[]).await.expect("show").get(0);
    assert_eq!(shown, "12");
    for (name, value) in SETTINGS {
        refused(&c, &relay.name, &format!("SET {name} = {value}")).await;
        refused(&c, &relay.name, &format!("BEGIN; SET LOCAL {name} = {value}")).await;
        c.batch_execute("ROLLBACK").await.expect("rollback");
        let unquoted = value.trim_matches('\'');
        refused(
            &c,
            &relay.name,
            &format!("SELECT set_config('{name}', '{unquoted}', false)"),
        )
        .await;
        refused(
            &c,
            &relay.name,
            &format!("ALTER ROLE CURRENT_USER SET {name} = {value}"),
        )
        .await;
    }
    let (accepted, message) = publish(&c, &weak.canonical_json()).await;
    assert!(!accepted && message.starts_with("pow:"), "{message}");

    // A superuser still may, for itself.
    admin
        .batch_execute("SET nostr.min_pow = 0")
        .await
        .expect("superuser SET");
    assert_eq!(publish(&admin, &weak.canonical_json()).await, (true, String::new()));
}
