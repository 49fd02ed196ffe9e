//! In-database tests of the publish rules, through SQL: validation, the
//! kind classes, deletion, expiry, vanish, proof of work, protection, and
//! what a transaction names for its listeners. Queries are tested in
//! `query_tests.rs`. Each test runs in its own transaction, rolled back
//! afterwards.

#[pgrx::pg_schema]
mod tests {
    use nostr_pg_core::sign::{tags, Keys};
    use nostr_pg_core::{hex, Event};
    use pgrx::prelude::*;
    use pgrx::spi::Error;

    use crate::test_sql::{id, now, publish, publish_as, req_ids};

    const CANONICAL: &str = include_str!("../core/tests/data/canonical.jsonl");

    fn publish_text(json: &str) -> Result<(bool, String), Error> {
        let (ok, msg) =
            Spi::get_two_with_args::<bool, String>("SELECT accepted, message FROM nostr.publish($1)", &[json.into()])?;
        Ok((ok.unwrap_or(false), msg.unwrap_or_default()))
    }

    fn stored() -> Result<i64, Error> {
        Ok(Spi::get_one::<i64>("SELECT count(*) FROM nostr.events")?.unwrap_or(-1))
    }

    #[pg_test]
    fn canonical_vectors_are_accepted_with_their_exact_id() -> Result<(), Error> {
        Spi::run("SET LOCAL nostr.max_future_seconds = 2000000000")?;
        let mut n = 0;
        for line in CANONICAL.lines().filter(|l| !l.trim().is_empty()) {
            let case: serde_json::Value =
                serde_json::from_str(line).map_err(|e| Error::PreparedStatementArgumentMismatch {
                    expected: 0,
                    got: e.line(),
                })?;
            let frame: serde_json::Value =
                serde_json::from_str(case["send"].as_str().unwrap_or("")).unwrap_or_default();
            let wire = frame[1].to_string();
            // `send` is the exact wire text; re-serialising with serde keeps the
            // values but not the escapes, so also send the raw object substring.
            let raw = case["send"].as_str().unwrap_or("");
            let raw_event = raw.trim_start_matches("[\"EVENT\",").trim_end_matches(']');
            let expected = case["event"]["id"].as_str().unwrap_or("");
            let (ok, msg) = publish_text(raw_event)?;
            assert!(ok, "{}: {msg}", case["name"]);
            // The re-encoded copy is the same event: NIP-01 answers a
            // duplicate with `true` and the `duplicate:` prefix.
            let (dup, msg) = publish_text(&wire)?;
            assert!(dup && msg.starts_with("duplicate: "), "{}: {msg}", case["name"]);
            let served = Spi::get_one_with_args::<String>(
                "SELECT event::text FROM nostr.events WHERE id = decode($1, 'hex')",
                &[expected.into()],
            )?
            .unwrap_or_default();
            let again = Event::parse_verified(&served, &nostr_pg_core::Verifier::new());
            assert_eq!(
                again.map(|e| hex::encode(&e.id)).ok().as_deref(),
                Some(expected),
                "{}",
                case["name"]
            );
            n += 1;
        }
        assert_eq!(n, 31);
        assert_eq!(stored()?, 31);
        Ok(())
    }

    #[pg_test]
    fn bad_input_is_refused_and_changes_nothing() -> Result<(), Error> {
        let keys = Keys::from_seed("bad-input");
        let good = keys.sign(now(), 1, vec![], "hello");
        let json = good.canonical_json();
        let other = keys.sign(now(), 1, vec![], "other");
        let pk = hex::encode(&good.pubkey);
        let cases: Vec<(String, &str)> = vec![
            ("{".into(), "invalid: malformed JSON"),
            ("[]".into(), "invalid: event must be a JSON object"),
            (
                json.replace(&id(&good), &id(&good).to_uppercase()),
                "invalid: `id` must be 64",
            ),
            (json.replace(&pk, &pk[..62]), "invalid: `pubkey` must be 64"),
            (
                json.replace(&id(&good), &id(&other)),
                "invalid: event id does not match",
            ),
            (
                json.replace(&hex::encode(&good.sig), &hex::encode(&other.sig)),
                "invalid: signature does not verify",
            ),
            (json.replace("\"kind\":1", "\"kind\":70000"), "invalid: `kind` must be"),
            (json.replace("\"kind\":1", "\"kind\":-1"), "invalid: `kind` must be"),
            (
                json.replace(&format!("\"created_at\":{}", good.created_at), "\"created_at\":\"1\""),
                "invalid: `created_at` must be",
            ),
            (
                json.replace(&format!("\"created_at\":{}", good.created_at), "\"created_at\":1.5"),
                "invalid: `created_at` must be",
            ),
            (
                json.replace(
                    &format!("\"created_at\":{}", good.created_at),
                    "\"created_at\":9223372036854775808",
                ),
                "invalid: `created_at` must be",
            ),
            (json.replace("\"tags\":[]", "\"tags\":[[1]]"), "invalid: `tags` must be"),
            (
                json.replace("\"tags\":[]", "\"tags\":[\"e\"]"),
                "invalid: `tags` must be",
            ),
            (
                json.replace("\"content\":\"hello\"", "\"content\":\"\\ud800\""),
                "invalid: malformed JSON",
            ),
            ("'; DROP TABLE nostr.events; --".into(), "invalid: malformed JSON"),
        ];
        for (input, expect) in cases {
            let (ok, msg) = publish_text(&input)?;
            assert!(!ok, "{input}");
            assert!(msg.starts_with(expect), "{input}: {msg}");
        }
        assert_eq!(stored()?, 0);
        Ok(())
    }

    #[pg_test(error = "invalid: signature does not verify")]
    fn casting_a_forged_event_raises() -> Result<(), Error> {
        let keys = Keys::from_seed("forged");
        let a = keys.sign(now(), 1, vec![], "a");
        let b = keys.sign(now(), 1, vec![], "b");
        let forged = a.canonical_json().replace(&hex::encode(&a.sig), &hex::encode(&b.sig));
        Spi::run_with_args("SELECT $1::nostr.nostr_event", &[forged.into()])
    }

    #[pg_test(error = "duplicate: already have this event")]
    fn direct_insert_runs_the_same_rules() -> Result<(), Error> {
        let e = Keys::from_seed("direct").sign(now(), 1, vec![], "x");
        Spi::run_with_args(
            "INSERT INTO nostr.events (event) VALUES ($1::nostr.nostr_event)",
            &[e.canonical_json().into()],
        )?;
        Spi::run_with_args(
            "INSERT INTO nostr.events (event) VALUES ($1::nostr.nostr_event)",
            &[e.canonical_json().into()],
        )
    }

    #[pg_test]
    fn derived_columns_cannot_be_forged() -> Result<(), Error> {
        let e = Keys::from_seed("forge-columns").sign(now(), 7, tags(&[&["e", "abc"]]), "+");
        Spi::run_with_args(
            "INSERT INTO nostr.events (id, pubkey, created_at, kind, tags, event) VALUES ('\\x00', '\\x00', 1, 1, '{}', $1::nostr.nostr_event)",
            &[e.canonical_json().into()],
        )?;
        let (kind, tags) = Spi::get_two::<i32, Vec<String>>("SELECT kind, tags FROM nostr.events")?;
        assert_eq!(kind, Some(7));
        assert_eq!(tags, Some(vec!["e:abc".to_owned()]));
        assert_eq!(
            Spi::get_one::<String>("SELECT encode(id, 'hex') FROM nostr.events")?,
            Some(id(&e))
        );
        Ok(())
    }

    #[pg_test(error = "nostr.events rows are immutable; delete and publish instead")]
    fn updates_are_refused() -> Result<(), Error> {
        publish(&Keys::from_seed("upd").sign(now(), 1, vec![], "x"))?;
        Spi::run("UPDATE nostr.events SET kind = 2")
    }

    #[pg_test]
    fn nul_and_huge_tag_values_round_trip() -> Result<(), Error> {
        let keys = Keys::from_seed("nul");
        let huge = "x".repeat(5000);
        let e = keys.sign(now(), 1, tags(&[&["t", &huge], &["r", "a\0b"]]), "nul \0 inside");
        assert_eq!(publish(&e)?, (true, String::new()));
        let served = Spi::get_one::<String>("SELECT event::text FROM nostr.events")?.unwrap_or_default();
        assert_eq!(served, e.canonical_json());
        assert_eq!(req_ids(&format!(r##"[{{"#t":["{huge}"]}}]"##))?, vec![id(&e)]);
        assert_eq!(req_ids(r##"[{"#r":["a\u0000b"]}]"##)?, vec![id(&e)]);
        Ok(())
    }

    #[pg_test]
    fn replaceable_keeps_the_newest_and_ties_go_to_the_lowest_id() -> Result<(), Error> {
        let keys = Keys::from_seed("replaceable");
        let t = now() - 100;
        let old = keys.sign(t, 0, vec![], "old");
        let new = keys.sign(t + 10, 0, vec![], "new");
        assert!(publish(&old)?.0);
        assert!(publish(&new)?.0);
        let (ok, msg) = publish(&old)?;
        assert!(!ok && msg.starts_with("blocked: have a newer version"), "{msg}");
        // The stored version itself, sent again, is a duplicate: accepted.
        let (ok, msg) = publish(&new)?;
        assert!(ok && msg.starts_with("duplicate: already have"), "{msg}");
        assert_eq!(req_ids(r#"[{"kinds":[0]}]"#)?, vec![id(&new)]);

        // Equal timestamps: the lower id wins, whatever the arrival order.
        let a = keys.sign(t + 20, 10002, vec![], "a");
        let b = keys.sign(t + 20, 10002, vec![], "b");
        let (low, high) = if a.id < b.id { (a, b) } else { (b, a) };
        assert!(publish(&high)?.0);
        assert!(publish(&low)?.0);
        let (ok, msg) = publish(&high)?;
        assert!(!ok && msg.starts_with("blocked: have a newer version"), "{msg}");
        assert_eq!(req_ids(r#"[{"kinds":[10002]}]"#)?, vec![id(&low)]);
        Ok(())
    }

    #[pg_test]
    fn addressable_is_keyed_by_d_and_missing_d_is_empty() -> Result<(), Error> {
        let keys = Keys::from_seed("addressable");
        let t = now() - 100;
        let a1 = keys.sign(t, 30023, tags(&[&["d", "a"]]), "a1");
        let b1 = keys.sign(t, 30023, tags(&[&["d", "b"]]), "b1");
        let a2 = keys.sign(t + 1, 30023, tags(&[&["d", "a"]]), "a2");
        let none = keys.sign(t, 30023, vec![], "no d");
        let empty = keys.sign(t + 1, 30023, tags(&[&["d", ""]]), "empty d");
        for e in [&a1, &b1, &a2, &none, &empty] {
            assert!(publish(e)?.0);
        }
        let mut got = req_ids(r#"[{"kinds":[30023]}]"#)?;
        got.sort();
        let mut want = vec![id(&a2), id(&b1), id(&empty)];
        want.sort();
        assert_eq!(got, want);
        Ok(())
    }

    /// What this transaction accepted, as `nostr.changes` gives it to listeners.
    fn accepted_here() -> Result<Vec<String>, Error> {
        Spi::connect(|c| {
            let mut out = Vec::new();
            let sql = "SELECT event FROM nostr.changes(ARRAY[pg_current_xact_id()])";
            for row in c.select(sql, None, &[])? {
                out.push(row.get::<String>(1)?.unwrap_or_default());
            }
            Ok(out)
        })
    }

    #[pg_test]
    fn ephemeral_events_are_notified_but_never_stored() -> Result<(), Error> {
        let e = Keys::from_seed("ephemeral").sign(now(), 20001, vec![], "live only");
        assert_eq!(publish(&e)?, (true, String::new()));
        assert_eq!(stored()?, 0);
        assert_eq!(accepted_here()?, vec![e.canonical_json()]);
        Ok(())
    }

    /// Listeners read what a transaction accepted, not what is still stored:
    /// a version replaced, or an event deleted, in the same transaction is
    /// still named; a refused one is not.
    #[pg_test]
    fn transit_names_everything_accepted_even_if_gone_since() -> Result<(), Error> {
        let keys = Keys::from_seed("transit");
        let t = now() - 100;
        let v1 = keys.sign(t, 0, vec![], "v1");
        let v2 = keys.sign(t + 1, 0, vec![], "v2");
        let note = keys.sign(t, 1, vec![], "note");
        let del = keys.sign(t + 2, 5, tags(&[&["e", &id(&note)]]), "");
        let batch: Vec<String> = [&v1, &v2, &v1, &note, &del]
            .iter()
            .map(|e| e.canonical_json())
            .collect();
        let accepted = Spi::get_one_with_args::<Vec<bool>>(
            "SELECT array_agg(accepted) FROM nostr.publish_batch($1)",
            &[batch.into()],
        )?;
        assert_eq!(accepted, Some(vec![true, true, false, true, true]));
        let mut left = req_ids("[{}]")?;
        left.sort();
        let mut want = vec![id(&v2), id(&del)];
        want.sort();
        assert_eq!(left, want, "v1 replaced, the note deleted");
        let named = accepted_here()?;
        let want: Vec<String> = [&v1, &v2, &note, &del].iter().map(|e| e.canonical_json()).collect();
        assert_eq!(named, want, "in the order accepted");
        Ok(())
    }

    #[pg_test]
    fn deletion_by_e_removes_own_events_only_and_blocks_republishing() -> Result<(), Error> {
        let alice = Keys::from_seed("alice");
        let bob = Keys::from_seed("bob");
        let t = now() - 100;
        let mine = alice.sign(t, 1, vec![], "mine");
        let theirs = bob.sign(t, 1, vec![], "theirs");
        assert!(publish(&mine)?.0 && publish(&theirs)?.0);
        let del = alice.sign(t + 1, 5, tags(&[&["e", &id(&mine)], &["e", &id(&theirs)]]), "");
        assert!(publish(&del)?.0);
        let mut left = req_ids("[{}]")?;
        left.sort();
        let mut want = vec![id(&theirs), id(&del)];
        want.sort();
        assert_eq!(left, want, "bob's event stays; the deletion is stored");
        let (ok, msg) = publish(&mine)?;
        assert!(!ok && msg.starts_with("blocked:"), "{msg}");
        // Deleting a deletion has no effect.
        let undo = alice.sign(t + 2, 5, tags(&[&["e", &id(&del)]]), "");
        assert!(publish(&undo)?.0);
        assert!(req_ids("[{\"kinds\":[5]}]")?.contains(&id(&del)));
        Ok(())
    }

    #[pg_test]
    fn deletion_by_a_removes_versions_up_to_its_time() -> Result<(), Error> {
        let keys = Keys::from_seed("a-delete");
        let t = now() - 100;
        let art = keys.sign(t, 30023, tags(&[&["d", "post"]]), "v1");
        assert!(publish(&art)?.0);
        let addr = format!("30023:{}:post", hex::encode(&keys.pubkey()));
        assert!(publish(&keys.sign(t + 5, 5, tags(&[&["a", &addr]]), ""))?.0);
        assert!(req_ids(r#"[{"kinds":[30023]}]"#)?.is_empty());
        let (ok, msg) = publish(&keys.sign(t + 4, 30023, tags(&[&["d", "post"]]), "v0"))?;
        assert!(!ok && msg.starts_with("blocked:"), "{msg}");
        let newer = keys.sign(t + 6, 30023, tags(&[&["d", "post"]]), "v2");
        assert!(publish(&newer)?.0, "a version newer than the deletion is allowed");
        Ok(())
    }

    #[pg_test]
    fn expired_events_are_refused_and_never_served() -> Result<(), Error> {
        let keys = Keys::from_seed("expiry");
        let past = now() - 10;
        let (ok, msg) = publish(&keys.sign(now() - 20, 1, tags(&[&["expiration", &past.to_string()]]), ""))?;
        assert!(!ok && msg.starts_with("invalid:"), "{msg}");
        let later = keys.sign(now(), 1, tags(&[&["expiration", &(now() + 3600).to_string()]]), "");
        assert!(publish(&later)?.0);
        assert_eq!(req_ids("[{}]")?, vec![id(&later)]);
        // Make it expired in place (the test cannot wait an hour), then check.
        Spi::run("ALTER TABLE nostr.events DISABLE TRIGGER events_no_update")?;
        Spi::run("UPDATE nostr.events SET expires_at = 1")?;
        assert!(req_ids("[{}]")?.is_empty());
        assert_eq!(Spi::get_one::<i64>("SELECT nostr.count('[{}]'::text)")?, Some(0));
        assert_eq!(Spi::get_one::<i64>("SELECT nostr.purge_expired()")?, Some(1));
        assert_eq!(stored()?, 0);
        Ok(())
    }

    #[pg_test]
    fn vanish_deletes_the_author_and_blocks_older_events() -> Result<(), Error> {
        Spi::run("SET LOCAL nostr.relay_url = 'wss://relay.example'")?;
        let carol = Keys::from_seed("carol");
        let dave = Keys::from_seed("dave");
        let t = now() - 100;
        let note = carol.sign(t, 1, vec![], "bye");
        let wrap = dave.sign(t, 1059, tags(&[&["p", &hex::encode(&carol.pubkey())]]), "gift");
        let other = dave.sign(t, 1, vec![], "stays");
        for e in [&note, &wrap, &other] {
            assert!(publish(e)?.0);
        }
        let elsewhere = carol.sign(t + 1, 62, tags(&[&["relay", "wss://other.example"]]), "");
        assert!(publish(&elsewhere)?.0);
        assert!(
            req_ids("[{}]")?.contains(&id(&note)),
            "a request for another relay does nothing"
        );
        let vanish = carol.sign(t + 2, 62, tags(&[&["relay", "wss://relay.example/"]]), "");
        assert!(publish(&vanish)?.0);
        let left = req_ids(r#"[{"kinds":[1,1059]}]"#)?;
        assert_eq!(left, vec![id(&other)]);
        let (ok, msg) = publish(&note)?;
        assert!(!ok && msg.starts_with("blocked:"), "{msg}");
        Ok(())
    }

    #[pg_test]
    fn pow_window_and_protection_settings() -> Result<(), Error> {
        let keys = Keys::from_seed("settings");
        Spi::run("SET LOCAL nostr.min_pow = 30")?;
        let (ok, msg) = publish(&keys.sign(now(), 1, vec![], "cheap"))?;
        assert!(!ok && msg.starts_with("pow: difficulty"), "{msg}");
        Spi::run("SET LOCAL nostr.min_pow = 0")?;
        Spi::run("SET LOCAL nostr.max_future_seconds = 60")?;
        let (ok, msg) = publish(&keys.sign(now() + 3600, 1, vec![], "future"))?;
        assert!(!ok && msg.starts_with("invalid: created_at"), "{msg}");
        Spi::run("SET LOCAL nostr.max_past_seconds = 60")?;
        let (ok, msg) = publish(&keys.sign(now() - 3600, 1, vec![], "past"))?;
        assert!(!ok && msg.starts_with("invalid: created_at"), "{msg}");

        let protected = keys.sign(now(), 1, tags(&[&["-"]]), "mine only");
        let (ok, msg) = publish(&protected)?;
        assert!(!ok && msg.starts_with("auth-required:"), "{msg}");
        let (ok, msg) = publish_as(&protected, Some(&Keys::from_seed("someone").pubkey()))?;
        assert!(!ok && msg.starts_with("restricted:"), "{msg}");
        assert!(publish_as(&protected, Some(&keys.pubkey()))?.0);
        Ok(())
    }
}
