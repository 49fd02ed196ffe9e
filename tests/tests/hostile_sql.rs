//! Hostile input through SQL: the same bad events and filters the WebSocket
//! tests send, given to `nostr.publish`, the `nostr_event` type (text and
//! jsonb casts), `INSERT`, `nostr.req`, `nostr.count` and `nostr.matches`.
//! Every one is a verdict or an error with SQLSTATE 22023, never a crash or
//! an opaque XX000, and no table changes.

mod support;

use e2e::{now, TestDb};
use nostr_pg_core::sign::{tags, Keys};
use nostr_pg_core::Filters;
use serde_json::{json, Value};
use support::cases::*;
use support::*;
use tokio_postgres::error::SqlState;

/// Limits only the gateway enforces (its config), not the extension: through
/// SQL these events are valid.
const GATEWAY_ONLY: [&str; 3] = ["2501 tags", "content over 100000 chars", "event over 128 KiB"];
/// Refused by a publish rule, not by the type: the cast succeeds.
const RULE_ONLY: [&str; 1] = ["time window"];

/// The event JSON inside an `["EVENT", <event>]` frame.
fn event_json(frame: &str) -> Option<&str> {
    frame.strip_prefix("[\"EVENT\",")?.strip_suffix(']')
}

fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code()
        .map(|c| c.code().to_owned())
        .unwrap_or_else(|| format!("no SQLSTATE: {e}"))
}

#[tokio::test]
async fn bad_events_through_every_sql_path() {
    let db = TestDb::new("hostile_sql_events").await;
    let c = db.client().await;
    let before = row_counts(&c).await;
    let keys = Keys::from_seed(SEED);
    let mut checked = 0;
    let mut not_events = Vec::new();
    let mut gateway_only = Vec::new();
    let cases = event_cases(&keys);
    let total = cases.len();
    for case in cases {
        let Some(json) = event_json(&case.frame) else {
            not_events.push(case.name);
            continue;
        };
        if let Some(g) = GATEWAY_ONLY.iter().find(|g| case.name.ends_with(*g)) {
            gateway_only.push(*g);
            continue;
        }
        let name = &case.name;
        // nostr.publish: a verdict row, never an error.
        let row = c
            .query_one("SELECT accepted, message FROM nostr.publish($1)", &[&json])
            .await;
        let row = row.unwrap_or_else(|e| panic!("{name}: publish raised {e}"));
        let (accepted, message): (bool, String) = (row.get(0), row.get(1));
        assert!(!accepted && message.starts_with("invalid: "), "{name}: {message}");
        if let Want::Invalid { containing, .. } = &case.want {
            // The gateway's wording comes from the same core errors.
            if !containing.is_empty() && !containing.starts_with('`') && *containing != "JSON" {
                assert!(message.contains(containing), "{name}: {message}");
            }
        }
        let rule_only = RULE_ONLY.iter().any(|r| name.contains(r));
        // The type's input function, and INSERT through it.
        let cast = c.query_one("SELECT $1::text::nostr.nostr_event::text", &[&json]).await;
        let insert = c
            .execute(
                "INSERT INTO nostr.events (event) VALUES ($1::text::nostr.nostr_event)",
                &[&json],
            )
            .await;
        if rule_only {
            assert!(cast.is_ok(), "{name}: the type accepts it, the rules do not");
            let e = insert.expect_err("INSERT must refuse");
            assert_eq!(sqlstate(&e), "22023", "{name}: {e}");
        } else {
            for (what, e) in [("cast", cast.err()), ("insert", insert.err())] {
                let e = e.unwrap_or_else(|| panic!("{name}: {what} accepted a bad event"));
                assert_eq!(sqlstate(&e), "22023", "{name}: {what}: {e}");
            }
        }
        // The jsonb cast: malformed JSON already fails as jsonb (22P02).
        match c
            .query_one("SELECT $1::text::jsonb::nostr.nostr_event::text", &[&json])
            .await
        {
            Ok(_) if rule_only => {}
            Ok(_) => panic!("{name}: jsonb cast accepted a bad event"),
            Err(e) => {
                let code = sqlstate(&e);
                assert!(
                    code == "22023" || code == "22P02" || code == "22P05",
                    "{name}: jsonb: {code} {:?}",
                    e.as_db_error().map(|d| d.message())
                );
            }
        }
        checked += 1;
    }
    // Every case was checked but those the gateway alone refuses (each of
    // them exactly once) and frames that hold no event object at all.
    assert_eq!(gateway_only, GATEWAY_ONLY.to_vec(), "the gateway-only cases");
    assert_eq!(checked + gateway_only.len() + not_events.len(), total);
    assert!(
        not_events.len() * 4 < total && checked >= 20,
        "{checked} checked; no event object in: {not_events:?}"
    );
    // NULLs, batches mixing good and bad, and nesting deep enough to
    // overflow a recursive parser.
    let good = keys.sign(now(), 1, vec![], "the good one").canonical_json();
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let rows = c
        .query(
            "SELECT id, accepted, message FROM nostr.publish_batch(ARRAY[NULL, 'x', $1, $2, ''])",
            &[&deep, &good],
        )
        .await
        .expect("publish_batch");
    let verdicts: Vec<(bool, String)> = rows.iter().map(|r| (r.get(1), r.get(2))).collect();
    assert_eq!(verdicts.len(), 5);
    assert!(
        verdicts
            .iter()
            .enumerate()
            .all(|(i, (ok, m))| if i == 3 { *ok } else { !ok && m.starts_with("invalid: ") }),
        "{verdicts:?}"
    );
    let e = c
        .query_one("SELECT $1::text::nostr.nostr_event", &[&deep])
        .await
        .expect_err("deep");
    assert_eq!(sqlstate(&e), "22023");
    let e = c
        .execute("INSERT INTO nostr.events (event) VALUES (NULL)", &[])
        .await
        .expect_err("null event");
    assert_eq!(e.code(), Some(&SqlState::NOT_NULL_VIOLATION), "{e}");
    // Derived columns written by a caller are ignored, not trusted.
    let forged = keys.sign(now(), 1, vec![], "forged columns").canonical_json();
    c.execute(
        "INSERT INTO nostr.events (event, id, pubkey, kind, created_at, tags) \
         VALUES ($1::text::nostr.nostr_event, '\\x00', '\\x00', 9, -1, ARRAY['t:lie'])",
        &[&forged],
    )
    .await
    .expect("insert with forged columns");
    let row = c
        .query_one("SELECT kind, created_at > 0, tags = '{}' FROM nostr.events WHERE id <> '\\x00'::bytea AND event::text = $1", &[&forged])
        .await
        .expect("derived columns recomputed");
    assert_eq!(
        (row.get::<_, i32>(0), row.get::<_, bool>(1), row.get::<_, bool>(2)),
        (1, true, true)
    );
    // Updates are refused outright.
    let e = c
        .execute("UPDATE nostr.events SET kind = 7", &[])
        .await
        .expect_err("update");
    assert_eq!(e.code(), Some(&SqlState::FEATURE_NOT_SUPPORTED), "{e}");
    c.execute("DELETE FROM nostr.events", &[]).await.expect("cleanup");
    let mut after = row_counts(&c).await;
    // The good batch event and the forged-columns one were stored and then
    // deleted above: only the events table and its tag index are back to
    // their counts; the two accepted events stay in transit, for listeners.
    let skip = |t: &str| t == "deleted_ids" || t == "transit";
    let transit = after.iter().find(|(t, _)| t == "transit").map(|r| r.1);
    assert_eq!(transit, Some(2), "{after:?}");
    after.retain(|(t, _)| !skip(t));
    let mut want = before.clone();
    want.retain(|(t, _)| !skip(t));
    assert_eq!(after, want);
    println!("{checked} hostile events checked through publish, casts and INSERT");
}

#[tokio::test]
async fn bad_filters_through_req_count_and_matches() {
    let db = TestDb::new("hostile_sql_filters").await;
    let c = db.client().await;
    let keys = Keys::from_seed(SEED);
    let stored = keys.sign(now() - 5, 1, tags(&[&["t", SQLISH]]), SQLISH);
    c.execute(
        "INSERT INTO nostr.events (event) VALUES ($1::text::nostr.nostr_event)",
        &[&stored.canonical_json()],
    )
    .await
    .expect("insert");
    let before = row_counts(&c).await;
    let max_filters: usize = c
        .query_one("SELECT current_setting('nostr.max_filters')::int", &[])
        .await
        .expect("setting")
        .get::<_, i32>(0)
        .try_into()
        .unwrap_or(50);
    let (mut checked, mut refused, mut not_arrays) = (0, 0, Vec::new());
    let cases = req_cases();
    let total = cases.len();
    for case in cases {
        let Ok(Value::Array(frame)) = serde_json::from_str::<Value>(&case.frame) else {
            not_arrays.push(case.name);
            continue;
        };
        let filters = Value::Array(frame.get(2..).unwrap_or_default().to_vec()).to_string();
        // What the core parser says decides what SQL must say.
        let should_fail = match Filters::parse(&filters) {
            Ok(f) => f.0.len() > max_filters,
            Err(_) => true,
        };
        let name = &case.name;
        let req = c.query("SELECT nostr.req($1::text)::text", &[&filters]).await;
        let count = c.query_one("SELECT nostr.count($1::text)", &[&filters]).await;
        let req_json = c.query("SELECT nostr.req_json($1::text)", &[&filters]).await;
        if should_fail {
            refused += 1;
            for (what, e) in [("req", req.err()), ("count", count.err()), ("req_json", req_json.err())] {
                let e = e.unwrap_or_else(|| panic!("{name}: {what} accepted {filters}"));
                assert_eq!(sqlstate(&e), "22023", "{name}: {what}: {e}");
            }
        } else {
            let req = req.unwrap_or_else(|e| panic!("{name}: req: {e}"));
            let count = count.unwrap_or_else(|e| panic!("{name}: count: {e}"));
            assert!(req.len() <= 1 && count.get::<_, i64>(0) <= 1, "{name}");
        }
        // matches() takes jsonb: each filter object on its own.
        for f in frame.get(2..).unwrap_or_default() {
            let r = c
                .query_one(
                    "SELECT nostr.matches(e.event, $1::text::jsonb) FROM nostr.events e LIMIT 1",
                    &[&f.to_string()],
                )
                .await;
            if let Err(e) = r {
                let code = sqlstate(&e);
                assert!(
                    code == "22023" || code == "22P05",
                    "{name}: matches({f}): {code} {:?}",
                    e.as_db_error().map(|d| d.message())
                );
            }
        }
        checked += 1;
    }
    assert_eq!(checked + not_arrays.len(), total);
    assert!(
        checked >= 20 && refused >= 10 && checked - refused >= 5,
        "{checked} checked, {refused} refused; not JSON arrays: {not_arrays:?}"
    );
    // Deep nesting and non-JSON.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    for bad in [deep.as_str(), "", "not json", "{", "[{\"kinds\":[1]}"] {
        let e = c
            .query("SELECT nostr.req($1::text)", &[&bad])
            .await
            .expect_err("bad filters");
        assert_eq!(sqlstate(&e), "22023", "{e}");
    }
    // Numbers jsonb holds but serde_json cannot (pgrx's JsonB conversion
    // must not turn them into an opaque XX000).
    for f in [r#"{"limit":1e999}"#, r#"{"since":1e999}"#, r#"{"kinds":[1e999]}"#] {
        let e = c
            .query_one(
                "SELECT nostr.matches(e.event, $1::text::jsonb) FROM nostr.events e LIMIT 1",
                &[&f],
            )
            .await
            .expect_err("huge number");
        assert_eq!(
            sqlstate(&e),
            "22023",
            "matches({f}): {:?}",
            e.as_db_error().map(|d| d.message())
        );
    }
    // changes() and committed_between() with any transaction ids or
    // snapshots: empty answers (xid8 input in Postgres 15 reads -1 as its
    // unsigned twin).
    for xids in ["{}", "{0,1,18446744073709551615}", "{NULL}", "{-1}"] {
        let rows = c
            .query("SELECT * FROM nostr.changes($1::text::xid8[])", &[&xids])
            .await
            .unwrap_or_else(|e| panic!("changes({xids}): {e}"));
        assert!(rows.is_empty(), "changes({xids})");
    }
    // From the beginning of time to its end: the one transaction that
    // inserted above. Backwards: nothing.
    for (since, upto, n) in [
        ("1:1:", "18446744073709551615:18446744073709551615:", 1),
        ("5:9:6,7", "1:1:", 0),
    ] {
        let rows = c
            .query(
                "SELECT * FROM nostr.committed_between($1::text::pg_snapshot, $2::text::pg_snapshot)",
                &[&since, &upto],
            )
            .await
            .unwrap_or_else(|e| panic!("committed_between({since}, {upto}): {e}"));
        assert_eq!(rows.len(), n, "committed_between({since}, {upto})");
    }
    // Viewers that are not pubkeys are refused before any query runs.
    for viewers in ["{x}", "{NULL,abc}"] {
        let e = c
            .query("SELECT nostr.req('[{}]'::text, $1::text::text[])", &[&viewers])
            .await
            .expect_err("bad viewers");
        assert_eq!(sqlstate(&e), "22023", "{viewers}: {e}");
    }
    // The jsonb overloads.
    let e = c
        .query(
            "SELECT nostr.req($1::text::jsonb)",
            &[&json!({"kinds": ["x"]}).to_string()],
        )
        .await
        .expect_err("jsonb req");
    assert_eq!(sqlstate(&e), "22023");
    assert_eq!(row_counts(&c).await, before);
    println!("{checked} hostile filter lists checked through req, req_json, count and matches");
}
