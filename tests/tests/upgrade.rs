//! Upgrades without losing data: a database created with an earlier release
//! (its real library, built from history by pg_config/install-old.sh), filled
//! with events, then `ALTER EXTENSION nostr_pg UPDATE`: every row is still
//! there and served, the new behaviour works, and the schema equals a fresh
//! install of the current version, object by object (pg_dump
//! --binary-upgrade --schema-only, which lists the extension's members).
#![allow(clippy::expect_used)]

mod support;

use e2e::cluster::OwnCluster;
use e2e::relay::{Client, Gateway};
use e2e::{now, TestDb};
use nostr_pg_core::hex;
use nostr_pg_core::sign::{tags, Keys};
use nostr_pg_core::Event;
use serde_json::json;
use support::*;

/// Every release an upgrade may start from (nostr_pg/sql/old-versions).
fn old_versions() -> Vec<String> {
    include_str!("../../nostr_pg/sql/old-versions")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// The current version (the workspace's), which `UPDATE` moves to.
const CURRENT: &str = env!("CARGO_PKG_VERSION");

/// A mix of every kind class and rule the old version already had.
fn events(keys: &Keys, other: &Keys) -> Vec<Event> {
    let t = now() - 1000;
    let mut out = Vec::new();
    for i in 0..200 {
        out.push(keys.sign(
            t + i,
            1,
            tags(&[&["t", &format!("tag{}", i % 7)]]),
            &format!("note {i}"),
        ));
    }
    let doomed = keys.sign(t, 1, vec![], "to be deleted");
    out.push(doomed.clone());
    out.push(keys.sign(t + 1, 5, tags(&[&["e", &hex::encode(&doomed.id)]]), ""));
    out.push(keys.sign(t, 0, vec![], "{\"name\":\"old\"}"));
    out.push(keys.sign(t + 5, 0, vec![], "{\"name\":\"new\"}"));
    out.push(keys.sign(t, 30023, tags(&[&["d", "post"]]), "article"));
    out.push(keys.sign(
        t,
        1,
        tags(&[&["r", "a\u{0}b"], &["t", &"x".repeat(400)]]),
        "nul \u{0} and a long tag",
    ));
    out.push(other.sign(t, 7, tags(&[&["e", &hex::encode(&doomed.id)]]), "+"));
    out.push(keys.sign(
        t,
        1,
        tags(&[&["expiration", &(now() + 86_400).to_string()]]),
        "expires tomorrow",
    ));
    out
}

/// What must survive: counts of every data table, the sequence, and a
/// checksum of the canonical events with their seq.
async fn state(c: &tokio_postgres::Client) -> Vec<String> {
    let mut out = Vec::new();
    for table in ["events", "event_tags", "deleted_ids", "deleted_addresses", "vanished"] {
        let n: i64 = c
            .query_one(&format!("SELECT count(*) FROM nostr.{table}"), &[])
            .await
            .expect("count")
            .get(0);
        out.push(format!("{table} {n}"));
    }
    let row = c
        .query_one(
            "SELECT md5(string_agg(seq || ' ' || event::text, E'\\n' ORDER BY seq)), \
             (SELECT last_value FROM nostr.event_seq) FROM nostr.events",
            &[],
        )
        .await
        .expect("checksum");
    out.push(format!("events md5 {}", row.get::<_, String>(0)));
    out.push(format!("event_seq {}", row.get::<_, i64>(1)));
    out
}

/// The extension's objects as pg_dump writes them for a binary upgrade,
/// without what differs between any two databases (object ids, the dump's
/// restrict key).
fn schema(db: &TestDb) -> String {
    let pg_bin = std::env::var("PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into());
    let mut cmd = std::process::Command::new(format!("{pg_bin}/pg_dump"));
    cmd.args(["--schema-only", "--binary-upgrade", "--no-owner", "--dbname", &db.url]);
    let out = cmd.output().expect("pg_dump");
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            !(l.starts_with("--")
                || l.starts_with("\\restrict")
                || l.starts_with("\\unrestrict")
                || l.contains("binary_upgrade_set_next_")
                || l.contains("binary_upgrade_set_record_init_privs")
                // The transaction horizon of each table, and sequence state:
                // data, not schema.
                || l.starts_with("UPDATE pg_catalog.pg_class")
                || l.starts_with("SET relfrozenxid")
                || l.starts_with("WHERE oid = ")
                || l.starts_with("SELECT pg_catalog.setval(")
                || l.trim().is_empty())
        })
        .map(|l| {
            // The tables whose rows pg_dump includes are named by object id
            // here; `config_tables` compares them by name.
            if l.contains("binary_upgrade_create_empty_extension") {
                let ids = without_object_ids(l);
                format!("{ids}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect()
}

/// A line with every `'{1,2,3}'` list of numbers replaced by `'{…}'`.
fn without_object_ids(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find("'{") {
        let (head, tail) = rest.split_at(start);
        out.push_str(head);
        match tail[2..].find("}'") {
            Some(end) if tail[2..2 + end].chars().all(|c| c.is_ascii_digit() || c == ',') => {
                out.push_str("'{…}'");
                rest = &tail[2 + end + 2..];
            }
            _ => {
                out.push_str("'{");
                rest = &tail[2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The extension's configuration tables (what pg_dump dumps the rows of),
/// by name, with their filters.
async fn config_tables(c: &tokio_postgres::Client) -> Vec<String> {
    c.query_one(
        "SELECT coalesce(extconfig::regclass[]::text[], '{}'), coalesce(extcondition, '{}') \
         FROM pg_extension WHERE extname = 'nostr_pg'",
        &[],
    )
    .await
    .map(|r| {
        let tables: Vec<String> = r.get(0);
        let conditions: Vec<String> = r.get(1);
        tables
            .into_iter()
            .zip(conditions)
            .map(|(t, c)| format!("{t} {c:?}"))
            .collect()
    })
    .expect("extconfig")
}

#[tokio::test]
async fn every_release_updates_to_the_current_one_without_losing_data() {
    let versions = old_versions();
    assert!(!versions.is_empty(), "nostr_pg/sql/old-versions lists no release");
    // A server as one running an old release is: not preloading the new
    // library (an old library defines the same settings, and two
    // definitions are an error).
    let own = OwnCluster::start_preloading("upgrade", false);
    let fresh = TestDb::on_cluster(&own.url, "upgrade_fresh", Some("CREATE EXTENSION nostr_pg")).await;
    let fresh_schema = schema(&fresh);
    for old in versions {
        let create = format!("CREATE EXTENSION nostr_pg VERSION '{old}'");
        let db = TestDb::on_cluster(&own.url, "upgrade", Some(&create)).await;
        let c = db.client().await;
        let version: String = c
            .query_one("SELECT extversion FROM pg_extension WHERE extname = 'nostr_pg'", &[])
            .await
            .expect("version")
            .get(0);
        assert_eq!(version, old);
        let keys = Keys::from_seed("upgrade");
        let other = Keys::from_seed("upgrade-other");
        let batch: Vec<String> = events(&keys, &other).iter().map(Event::canonical_json).collect();
        let accepted: i64 = c
            .query_one(
                "SELECT count(*) FILTER (WHERE accepted) FROM nostr.publish_batch($1)",
                &[&batch],
            )
            .await
            .expect("publish on the old version")
            .get(0);
        assert_eq!(accepted, batch.len() as i64, "{old} accepted everything");
        let before = state(&c).await;
        let served_before: Vec<String> = c
            .query("SELECT e::text FROM nostr.req('[{\"limit\":500}]'::text) e", &[])
            .await
            .expect("req")
            .iter()
            .map(|r| r.get(0))
            .collect();

        c.batch_execute("ALTER EXTENSION nostr_pg UPDATE")
            .await
            .expect("update");
        let c = db.client().await; // a new backend loads the new library
        let version: String = c
            .query_one("SELECT extversion FROM pg_extension WHERE extname = 'nostr_pg'", &[])
            .await
            .expect("version")
            .get(0);
        assert_eq!(version, CURRENT, "updated from {old}");
        assert_eq!(state(&c).await, before, "data kept across {old} -> {CURRENT}");
        let served_after: Vec<String> = c
            .query("SELECT e::text FROM nostr.req('[{\"limit\":500}]'::text) e", &[])
            .await
            .expect("req")
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(served_after, served_before, "served the same events, in the same order");
        assert_eq!(
            config_tables(&c).await,
            config_tables(&fresh.client().await).await,
            "the tables pg_dump includes"
        );
        let updated = schema(&db);
        assert!(
            updated == fresh_schema,
            "{old} + UPDATE differs from a fresh {CURRENT}:\n{}",
            differences(&updated, &fresh_schema)
        );

        // The relay works on it: the rules of the new version, and live
        // delivery through the new transit table.
        let gw = Gateway::start(&db.url, &["--config", &ConfigFile::new(UNLIMITED).arg()]).await;
        let mut sub = Client::connect(&gw.url).await;
        sub.req("s", &[json!({"kinds": [1], "limit": 1})]).await.expect("req");
        let mut publisher = Client::connect(&gw.url).await;
        let again = publisher.publish(&batch[0]).await;
        assert!(
            again[2] == true && again[3].as_str().unwrap_or_default().starts_with("duplicate:"),
            "{again}"
        );
        let deleted = publisher.publish(&batch[200]).await;
        assert!(
            deleted[2] == false && deleted[3].as_str().unwrap_or_default().starts_with("blocked:"),
            "{deleted}"
        );
        let new = keys.sign(now(), 1, vec![], "after the update");
        assert_eq!(publisher.publish(&new.canonical_json()).await[2], true);
        assert_eq!(sub.next_event("s").await["id"], hex::encode(&new.id).as_str());

        // Moderation (0.3.0) works on the updated database: a ban deletes
        // the author's events and the gateway refuses the next one.
        c.execute(
            "SELECT nostr.ban_pubkey($1, 'after the update')",
            &[&hex::encode(&other.pubkey())],
        )
        .await
        .expect("ban_pubkey after the update");
        let banned = other.sign(now(), 1, vec![], "banned");
        let refused = publisher.publish(&banned.canonical_json()).await;
        assert!(
            refused[2] == false
                && refused[3].as_str().unwrap_or_default() == "blocked: this pubkey is banned from this relay",
            "{refused}"
        );
        let left: i64 = c
            .query_one(
                "SELECT count(*) FROM nostr.events WHERE pubkey = decode($1, 'hex')",
                &[&hex::encode(&other.pubkey())],
            )
            .await
            .expect("count")
            .get(0);
        assert_eq!(left, 0, "the banned author's events are deleted");
    }
}

/// The lines only one of two schemas has, marked `-` (updated) and `+` (fresh).
fn differences(updated: &str, fresh: &str) -> String {
    let a: std::collections::BTreeSet<&str> = updated.lines().collect();
    let b: std::collections::BTreeSet<&str> = fresh.lines().collect();
    let mut out = String::new();
    for l in a.difference(&b) {
        out.push_str(&format!("- {l}\n"));
    }
    for l in b.difference(&a) {
        out.push_str(&format!("+ {l}\n"));
    }
    if out.is_empty() {
        out.push_str("(the same lines, in another order)");
    }
    out
}
