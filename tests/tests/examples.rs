//! The worked SQL in `sql/examples/`, run with psql as a user would, on a
//! database populated for each: each file's answer is checked, not just that
//! it runs.
// Test helpers expect freely: a failed expectation is a failed test.
#![allow(clippy::expect_used)]

use std::path::Path;

use e2e::{now, publish, TestDb};
use nostr_pg_core::hex;
use nostr_pg_core::sign::{tags, Keys};
use nostr_pg_core::Event;
use tokio_postgres::Client;

/// Runs `sql/examples/FILE` with psql (`$PG_BIN`, as `backup.rs` does) and
/// the given `-v` variables; returns the rows it printed, `|`-separated.
async fn run_example(db: &TestDb, file: &str, vars: &[(&str, &str)]) -> Vec<String> {
    let bin = std::env::var("PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into());
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sql/examples").join(file);
    let mut cmd = tokio::process::Command::new(Path::new(&bin).join("psql"));
    cmd.args(["-X", "-q", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1"]);
    for (name, value) in vars {
        cmd.args(["-v", &format!("{name}={value}")]);
    }
    cmd.arg("-f").arg(&path).args(["-d", &db.url]);
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), cmd.output())
        .await
        .expect("psql finished in time")
        .expect("run psql");
    assert!(
        out.status.success(),
        "{file}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

async fn put(c: &Client, e: &Event) {
    let (accepted, message) = publish(c, &e.canonical_json()).await;
    assert!(accepted && message.is_empty(), "{message}");
}

fn hex_of(k: &Keys) -> String {
    hex::encode(&k.pubkey())
}

#[tokio::test]
async fn trending_tags_ranks_by_authors_then_uses() {
    let db = TestDb::new("ex_trending").await;
    let c = db.client().await;
    let [a, b, cc, d] = ["tr-a", "tr-b", "tr-c", "tr-d"].map(Keys::from_seed);
    let t = now();
    let mut n = 0;
    let mut note = |k: &Keys, kind: u16, at: i64, tag: &str| {
        n += 1;
        k.sign(at, kind, tags(&[&["t", tag]]), &format!("note {n}"))
    };
    let events = vec![
        note(&a, 1, t - 60, "nostr"),
        note(&b, 1, t - 50, "nostr"),
        note(&cc, 1, t - 40, "nostr"),
        note(&d, 1, t - 30, "Nostr"), // tags are compared in lower case
        note(&a, 1, t - 60, "postgres"),
        note(&a, 1, t - 59, "postgres"),
        note(&a, 1, t - 58, "postgres"),
        note(&a, 1, t - 57, "postgres"),
        note(&a, 1, t - 20, "rust"),
        note(&b, 1, t - 19, "rust"),
        note(&b, 1, t - 18, "rust"),
        // Outside the window, or not prose: never counted.
        note(&a, 1, t - 2 * 86_400, "old"),
        note(&b, 1, t - 2 * 86_400, "old"),
        note(&cc, 1, t - 2 * 86_400, "old"),
        note(&d, 1, t - 2 * 86_400, "old"),
        note(&d, 1, t - 2 * 86_400, "old"),
        note(&cc, 7, t - 10, "reaction"),
    ];
    for e in &events {
        put(&c, e).await;
    }
    let rows = run_example(&db, "trending_tags.sql", &[]).await;
    assert_eq!(rows, ["nostr|4|4", "rust|2|3", "postgres|1|4"]);
    // Its knobs: the window in hours and the number of tags.
    let rows = run_example(&db, "trending_tags.sql", &[("hours", "72"), ("top", "1")]).await;
    assert_eq!(rows, ["old|4|5"]);
}

#[tokio::test]
async fn follower_graph_walks_contact_lists() {
    let db = TestDb::new("ex_follows").await;
    let c = db.client().await;
    let [root, a, b, cc, d, e, x] = ["fg-root", "fg-a", "fg-b", "fg-c", "fg-d", "fg-e", "fg-x"].map(Keys::from_seed);
    let t = now();
    let follows = |k: &Keys, at: i64, list: &[&Keys]| {
        let hexes: Vec<String> = list.iter().map(|k| hex_of(k)).collect();
        let mut ts: Vec<Vec<String>> = hexes.iter().map(|h| vec!["p".to_owned(), h.clone()]).collect();
        ts.push(vec!["p".into(), "not-a-pubkey".into()]);
        k.sign(at, 3, ts, "")
    };
    for ev in [
        follows(&root, t, &[&a, &b]),
        // a's older list followed x; the newer one replaces it.
        follows(&a, t - 100, &[&x]),
        follows(&a, t, &[&cc, &root]),
        follows(&b, t, &[&cc, &d]),
        follows(&cc, t, &[&e]),
    ] {
        put(&c, &ev).await;
    }
    let rows = run_example(&db, "follower_graph.sql", &[("root", &hex_of(&root))]).await;
    let mut first: Vec<String> = [&a, &b].iter().map(|k| format!("{}|1|1", hex_of(k))).collect();
    first.sort();
    let expected: Vec<String> = first
        .into_iter()
        .chain([format!("{}|2|2", hex_of(&cc)), format!("{}|2|1", hex_of(&d))])
        .collect();
    assert_eq!(rows, expected, "x was followed only by a replaced list");
    let rows = run_example(&db, "follower_graph.sql", &[("root", &hex_of(&root)), ("depth", "3")]).await;
    assert_eq!(rows.len(), 5, "{rows:?}");
    assert_eq!(rows.last(), Some(&format!("{}|3|1", hex_of(&e))));
}

#[tokio::test]
async fn spam_removal_takes_the_spam_and_the_reactions_to_it() {
    let db = TestDb::new("ex_spam").await;
    let c = db.client().await;
    let [spammer, user, friend] = ["sp-spammer", "sp-user", "sp-friend"].map(Keys::from_seed);
    let t = now();
    let spam: Vec<Event> = (0..5)
        .map(|i| spammer.sign(t - 10 + i, 1, vec![], &format!("buy now {i}")))
        .collect();
    for e in &spam {
        put(&c, e).await;
    }
    let own = user.sign(t, 1, vec![], "a real note");
    let reaction_to_spam = user.sign(t, 7, tags(&[&["e", &hex::encode(&spam[0].id)]]), "-");
    let reaction_to_note = friend.sign(t, 7, tags(&[&["e", &hex::encode(&own.id)]]), "+");
    for e in [&own, &reaction_to_spam, &reaction_to_note] {
        put(&c, e).await;
    }
    let count = |sql: &'static str| {
        let c = &c;
        async move { c.query_one(sql, &[]).await.expect("count").get::<_, i64>(0) }
    };
    assert_eq!(count("SELECT count(*) FROM nostr.events").await, 8);

    let spammer_hex = hex_of(&spammer);
    let preview = run_example(&db, "spam_removal.sql", &[("spammer", &spammer_hex), ("dry_run", "1")]).await;
    assert_eq!(preview, ["1|5", "dry run: nothing deleted"]);
    assert_eq!(
        count("SELECT count(*) FROM nostr.events").await,
        8,
        "a dry run deletes nothing"
    );

    let rows = run_example(&db, "spam_removal.sql", &[("spammer", &spammer_hex)]).await;
    assert_eq!(rows.last().map(String::as_str), Some("5|1"), "{rows:?}");
    let left: Vec<String> = c
        .query("SELECT encode(id, 'hex') FROM nostr.events ORDER BY 1", &[])
        .await
        .expect("ids")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut expected = vec![hex::encode(&own.id), hex::encode(&reaction_to_note.id)];
    expected.sort();
    assert_eq!(left, expected);
    // As the file says: a plain DELETE leaves no record, the event may come back.
    put(&c, &spam[1]).await;
}

#[tokio::test]
async fn materialized_view_is_created_then_kept_fresh() {
    let db = TestDb::new("ex_matview").await;
    let c = db.client().await;
    let [a, b] = ["mv-a", "mv-b"].map(Keys::from_seed);
    let t = now();
    for (i, (k, kind, at)) in [
        (&a, 1, t - 10),
        (&b, 1, t - 9),
        (&a, 1, t - 8),
        (&a, 7, t - 7),
        (&b, 1, t - 3 * 86_400),
    ]
    .into_iter()
    .enumerate()
    {
        put(&c, &k.sign(at, kind, vec![], &format!("{i}"))).await;
    }
    // The view holds exactly what a direct query over nostr.events says.
    const SAME: &str = "SELECT count(*) FROM ( \
        (SELECT day, kind, events, authors FROM stats.daily_activity \
         EXCEPT SELECT (to_timestamp(created_at) AT TIME ZONE 'UTC')::date, kind, count(*), count(DISTINCT pubkey) \
                FROM nostr.events GROUP BY 1, 2) \
        UNION ALL \
        (SELECT (to_timestamp(created_at) AT TIME ZONE 'UTC')::date, kind, count(*), count(DISTINCT pubkey) \
           FROM nostr.events GROUP BY 1, 2 \
         EXCEPT SELECT day, kind, events, authors FROM stats.daily_activity)) AS differences";
    let rows = run_example(&db, "materialized_view.sql", &[]).await;
    assert_eq!(rows.last().map(String::as_str), Some("3|5"), "{rows:?}");
    let differences: i64 = c.query_one(SAME, &[]).await.expect("compare").get(0);
    assert_eq!(differences, 0);
    let today: (i64, i64) = c
        .query_one(
            "SELECT events, authors FROM stats.daily_activity \
             WHERE kind = 1 AND day = (to_timestamp($1::bigint) AT TIME ZONE 'UTC')::date",
            &[&(t - 10)],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .expect("today's row");
    assert_eq!(today, (3, 2));
    let first: std::time::SystemTime = c
        .query_one("SELECT refreshed_at FROM stats.refreshed", &[])
        .await
        .expect("refreshed")
        .get(0);

    // New events, and the file run again (as cron would): the view follows.
    for i in 0..3 {
        put(
            &c,
            &b.sign(t - 5 + i, 30023, tags(&[&["d", &format!("a{i}")]]), "article"),
        )
        .await;
    }
    let rows = run_example(&db, "materialized_view.sql", &[]).await;
    assert_eq!(rows.last().map(String::as_str), Some("4|8"), "{rows:?}");
    let differences: i64 = c.query_one(SAME, &[]).await.expect("compare").get(0);
    assert_eq!(differences, 0);
    let second: std::time::SystemTime = c
        .query_one("SELECT refreshed_at FROM stats.refreshed", &[])
        .await
        .expect("refreshed")
        .get(0);
    assert!(second > first, "the refresh is recorded");
}

/// The answer of `nostr.publish` for `e`, on a new session (which has the
/// database's `nostr.write_policy`).
async fn publish_new_session(db: &TestDb, e: &Event) -> (bool, String) {
    publish(&db.client().await, &e.canonical_json()).await
}

#[tokio::test]
async fn policy_kinds_accepts_only_its_kinds() {
    let db = TestDb::new("ex_policy_kinds").await;
    let rows = run_example(&db, "policy_kinds.sql", &[("kinds", "0, 1")]).await;
    assert_eq!(rows, ["nostr_policy.kinds_only accepts kinds 0,1"]);
    let k = Keys::from_seed("pk-author");
    let t = now();
    assert_eq!(
        publish_new_session(&db, &k.sign(t, 1, vec![], "note")).await,
        (true, String::new())
    );
    assert_eq!(
        publish_new_session(&db, &k.sign(t, 0, vec![], "{}")).await,
        (true, String::new())
    );
    assert_eq!(
        publish_new_session(&db, &k.sign(t, 7, vec![], "+")).await,
        (false, "blocked: kind 7 is not accepted by this relay".to_owned())
    );
    // Plain SQL obeys it too.
    let c = db.client().await;
    let refused = c
        .execute(
            "INSERT INTO nostr.events (event) VALUES ($1::text::nostr.nostr_event)",
            &[&k.sign(t, 30023, tags(&[&["d", "x"]]), "article").canonical_json()],
        )
        .await
        .expect_err("kind 30023 inserted");
    assert_eq!(refused.code().map(|c| c.code()), Some("23514"), "{refused}");
    // Running it again replaces the list.
    run_example(&db, "policy_kinds.sql", &[("kinds", "7")]).await;
    assert_eq!(
        publish_new_session(&db, &k.sign(t, 7, vec![], "+")).await,
        (true, String::new())
    );
    assert!(!publish_new_session(&db, &k.sign(t + 1, 1, vec![], "n")).await.0);
}

#[tokio::test]
async fn policy_web_of_trust_accepts_the_admins_and_whom_they_follow() {
    let db = TestDb::new("ex_policy_wot").await;
    let [admin, friend, stranger] = ["wot-admin", "wot-friend", "wot-stranger"].map(Keys::from_seed);
    let rows = run_example(&db, "policy_web_of_trust.sql", &[("admins", &hex_of(&admin))]).await;
    assert_eq!(rows, ["nostr_policy.followed_by_admins trusts 1 admin(s)"]);
    let t = now();
    let refusal = "restricted: only authors the admins of this relay follow may publish here".to_owned();
    // Nobody is followed yet: only the admin may publish.
    assert_eq!(
        publish_new_session(&db, &friend.sign(t - 10, 1, vec![], "early")).await,
        (false, refusal.clone())
    );
    let follows = admin.sign(t - 9, 3, tags(&[&["p", &hex_of(&friend)]]), "");
    assert_eq!(publish_new_session(&db, &follows).await, (true, String::new()));
    assert_eq!(
        publish_new_session(&db, &friend.sign(t - 8, 1, vec![], "now trusted")).await,
        (true, String::new())
    );
    assert_eq!(
        publish_new_session(&db, &stranger.sign(t - 8, 1, vec![], "hello?")).await,
        (false, refusal.clone())
    );
    // The admin's newer contact list replaces the old one: unfollowed.
    let unfollows = admin.sign(t - 7, 3, tags(&[&["p", &hex_of(&stranger)]]), "");
    assert_eq!(publish_new_session(&db, &unfollows).await, (true, String::new()));
    assert_eq!(
        publish_new_session(&db, &friend.sign(t - 6, 1, vec![], "again")).await,
        (false, refusal)
    );
    assert_eq!(
        publish_new_session(&db, &stranger.sign(t - 6, 1, vec![], "in")).await,
        (true, String::new())
    );
}
