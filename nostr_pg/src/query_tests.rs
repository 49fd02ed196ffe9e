//! In-database tests of queries, through SQL: NIP-01 REQ semantics to the
//! letter, restricted kinds and viewers, search, bad filters, and every
//! plan agreeing with the core matcher. Each test runs in its own
//! transaction, rolled back afterwards.

#[pgrx::pg_schema]
mod tests {
    use nostr_pg_core::sign::{tags, Keys};
    use nostr_pg_core::{hex, Event};
    use pgrx::prelude::*;
    use pgrx::spi::Error;

    use crate::test_sql::{id, now, publish, req_ids};

    #[pg_test]
    fn req_follows_nip01_to_the_letter() -> Result<(), Error> {
        let keys = Keys::from_seed("req");
        let other = Keys::from_seed("req-other");
        let t = now() - 1000;
        let mut same_time: Vec<Event> = (0..3)
            .map(|i| keys.sign(t + 50, 1, vec![], &format!("tie {i}")))
            .collect();
        for e in &same_time {
            publish(e)?;
        }
        let older = keys.sign(t + 10, 1, tags(&[&["t", "nostr"], &["p", "x", "y"]]), "older");
        let newest = other.sign(t + 90, 7, tags(&[&["t", "nostr"], &["e", &id(&older)]]), "+");
        publish(&older)?;
        publish(&newest)?;
        same_time.sort_by_key(|a| a.id);

        // Newest first; equal timestamps by lowest id.
        let mut want = vec![id(&newest)];
        want.extend(same_time.iter().map(id));
        want.push(id(&older));
        assert_eq!(req_ids("[{}]")?, want);
        // Limit per filter, union without duplicates.
        assert_eq!(req_ids(r#"[{"limit":1},{"kinds":[7]}]"#)?, vec![id(&newest)]);
        assert_eq!(
            req_ids(r#"[{"limit":2,"kinds":[1]}]"#)?,
            vec![id(&same_time[0]), id(&same_time[1])]
        );
        // since/until inclusive.
        assert_eq!(
            req_ids(&format!(r#"[{{"since":{0},"until":{0}}}]"#, t + 10))?,
            vec![id(&older)]
        );
        // Tags: first value only; AND across tags; OR within one.
        assert_eq!(
            req_ids(r##"[{"#t":["nostr"],"#e":["zzz","ignored"]}]"##)?,
            Vec::<String>::new()
        );
        assert_eq!(req_ids(r##"[{"#p":["x"]}]"##)?, vec![id(&older)]);
        assert_eq!(req_ids(r##"[{"#p":["y"]}]"##)?, Vec::<String>::new());
        assert_eq!(req_ids(r##"[{"#t":["nostr"],"kinds":[1]}]"##)?, vec![id(&older)]);
        // Authors, ids: exact values.
        let pk = hex::encode(&other.pubkey());
        assert_eq!(req_ids(&format!(r#"[{{"authors":["{pk}"]}}]"#))?, vec![id(&newest)]);
        assert_eq!(
            req_ids(&format!(r#"[{{"ids":["{}"]}}]"#, id(&older)))?,
            vec![id(&older)]
        );
        // Empty lists match nothing.
        assert!(req_ids(r#"[{"ids":[]}]"#)?.is_empty());
        // Count is distinct across filters.
        assert_eq!(
            Spi::get_one::<i64>(r#"SELECT nostr.count('[{"kinds":[1]},{"limit":1}]'::text)"#)?,
            Some(5)
        );
        // matches() agrees with the core matcher.
        assert_eq!(
            Spi::get_one::<i64>(
                r##"SELECT count(*) FROM nostr.events WHERE nostr.matches(event, '{"#t":["nostr"]}')"##
            )?,
            Some(2)
        );
        Ok(())
    }

    /// With viewers, events of the restricted kinds are only read when they
    /// involve a viewer, and the restriction is applied before each filter's
    /// limit, so pages are full and counts exact.
    #[pg_test]
    fn restricted_kinds_are_filtered_before_the_limit() -> Result<(), Error> {
        let alice = Keys::from_seed("dm-alice");
        let bob = Keys::from_seed("dm-bob");
        let carol = Keys::from_seed("dm-carol");
        let t = now() - 100;
        let p = |k: &Keys| hex::encode(&k.pubkey());
        let public = alice.sign(t, 1, vec![], "public");
        let to_bob = alice.sign(t + 1, 4, tags(&[&["p", &p(&bob)]]), "hi bob");
        let wrap_to_carol = bob.sign(t + 2, 1059, tags(&[&["p", &p(&carol)]]), "wrapped");
        let newest_dm = carol.sign(t + 3, 4, tags(&[&["p", &p(&alice)]]), "hi alice");
        for e in [&public, &to_bob, &wrap_to_carol, &newest_dm] {
            assert!(publish(e)?.0);
        }
        let req_as = |filters: &str, viewers: Option<Vec<String>>| -> Result<Vec<String>, Error> {
            Spi::connect(|c| {
                let mut out = Vec::new();
                let sql = "SELECT nostr.id(e) FROM nostr.req($1::text, $2) e";
                for row in c.select(sql, None, &[filters.into(), viewers.into()])? {
                    out.push(row.get::<String>(1)?.unwrap_or_default());
                }
                Ok(out)
            })
        };
        assert_eq!(
            req_as(r#"[{"limit":1}]"#, None)?,
            vec![id(&newest_dm)],
            "no viewers: no restriction"
        );
        assert_eq!(
            req_as(r#"[{"limit":1}]"#, Some(vec![]))?,
            vec![id(&public)],
            "anonymous"
        );
        assert_eq!(
            req_as(r#"[{"limit":2}]"#, Some(vec![p(&bob)]))?,
            vec![id(&wrap_to_carol), id(&to_bob)],
            "bob: his own wrap (author) and his DM (p tag), a full page"
        );
        assert_eq!(
            req_as(r#"[{"kinds":[4,1059]}]"#, Some(vec![p(&carol)]))?,
            vec![id(&newest_dm), id(&wrap_to_carol)]
        );
        let count_as = |viewers: Option<Vec<String>>| {
            Spi::get_one_with_args::<i64>("SELECT nostr.count('[{}]'::text, $1)", &[viewers.into()])
        };
        assert_eq!(count_as(None)?, Some(4));
        assert_eq!(count_as(Some(vec![]))?, Some(1));
        assert_eq!(count_as(Some(vec![p(&alice)]))?, Some(3));
        Ok(())
    }

    #[pg_test(error = "invalid: viewer \"nothex\" is not a 64-character lowercase hex pubkey")]
    fn malformed_viewers_are_refused() -> Result<(), Error> {
        Spi::run("SELECT nostr.count('[{}]'::text, ARRAY['nothex'])")
    }

    /// The kinds full-text search leaves out exist once, in the core; the
    /// planner builds its condition from it, and the search index's
    /// predicate in sql/schema.sql must say the same or the index is unused.
    #[pg_test]
    fn the_search_index_leaves_out_the_core_unsearched_kinds() -> Result<(), Error> {
        let predicate = Spi::get_one::<String>(
            "SELECT pg_get_expr(indpred, indrelid) FROM pg_index WHERE indexrelid = 'nostr.events_search_idx'::regclass",
        )?
        .unwrap_or_default();
        let kinds: Vec<u16> = predicate
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .collect();
        assert_eq!(kinds, nostr_pg_core::kind::UNSEARCHED.to_vec(), "{predicate}");
        assert_eq!(
            crate::query::unsearched_kinds_sql(),
            "e.kind NOT IN (3, 4, 5, 6, 7, 1059, 9735)"
        );
        Ok(())
    }

    #[pg_test(error = "invalid: unsupported filter field `foo`")]
    fn bad_filters_raise() -> Result<(), Error> {
        Spi::run(r#"SELECT * FROM nostr.req('[{"foo":1}]'::text)"#)
    }

    #[pg_test]
    fn search_uses_full_text() -> Result<(), Error> {
        let keys = Keys::from_seed("search");
        let hit = keys.sign(now(), 1, vec![], "Postgres makes a fine Nostr relay");
        publish(&hit)?;
        publish(&keys.sign(now(), 1, vec![], "something else"))?;
        assert_eq!(req_ids(r#"[{"search":"nostr relay"}]"#)?, vec![id(&hit)]);
        Ok(())
    }

    /// Every plan the filter planner can pick (ordered scans driven by a tag,
    /// tag and kind, authors, kinds; the bitmap fallback when the driver is
    /// big and conditions remain) returns exactly what the core matcher says.
    #[pg_test]
    fn every_plan_agrees_with_the_core_matcher() -> Result<(), Error> {
        let t = now() - 100_000;
        let busy = Keys::from_seed("plan-busy");
        let quiet = Keys::from_seed("plan-quiet");
        let target = hex::encode(&busy.sign(t, 1, vec![], "target").id);
        let mut all = Vec::new();
        for i in 0..2400i64 {
            let mut tg: Vec<Vec<String>> = vec![];
            if i % 2 == 0 {
                tg.push(vec!["t".into(), "popular".into()]);
            }
            // Both popular (over the planner's probe cap of 1000), overlapping
            // on every 14th event: the bitmap fallback's case.
            if i % 2 == 1 || i % 7 == 0 {
                tg.push(vec!["e".into(), target.clone()]);
            }
            if i % 500 == 7 {
                tg.push(vec!["t".into(), "rare".into()]);
            }
            let (keys, kind) = if i % 400 == 2 {
                (&quiet, 30023)
            } else {
                (&busy, if i % 5 == 0 { 7 } else { 1 })
            };
            if kind == 30023 {
                tg.push(vec!["d".into(), format!("slug{i}")]);
            }
            // Timestamps collide in groups of three, to exercise the id tie-break.
            all.push(keys.sign(t + i / 3, kind, tg, &format!("event {i}")));
        }
        for chunk in all.chunks(800) {
            let json: Vec<String> = chunk.iter().map(Event::canonical_json).collect();
            let ok = Spi::get_one_with_args::<i64>(
                "SELECT count(*) FILTER (WHERE accepted) FROM nostr.publish_batch($1)",
                &[json.into()],
            )?;
            assert_eq!(ok, Some(chunk.len() as i64));
        }
        let qk = hex::encode(&quiet.pubkey());
        let bk = hex::encode(&busy.pubkey());
        let some_id = id(&all[10]);
        // (filter, the plan it must get, whether it matches anything here)
        let cases = [
            (r##"{"#t":["popular"],"limit":10}"##.to_owned(), "ordered(tag)", true),
            (
                r##"{"#t":["popular"],"kinds":[30023],"limit":10}"##.to_owned(),
                "ordered(tag,kind)",
                true,
            ),
            // No kind 0 exists: the (tag, kind) range probes empty and drives.
            (
                r##"{"#t":["popular"],"kinds":[0]}"##.to_owned(),
                "ordered(tag,kind)",
                false,
            ),
            // Two popular tags: walking either would read past the probe cap.
            (
                format!(r##"{{"#t":["popular"],"#e":["{target}"],"limit":25}}"##),
                "unordered",
                true,
            ),
            (
                format!(r##"{{"#t":["popular","rare"],"#e":["{target}"],"kinds":[7],"limit":25}}"##),
                "ordered(tag,kind)",
                true,
            ),
            (
                format!(r##"{{"authors":["{qk}"],"#t":["popular"]}}"##),
                "ordered(author)",
                true,
            ),
            (
                format!(r##"{{"authors":["{bk}","{qk}"],"kinds":[1,30023],"limit":30}}"##),
                "ordered(author,kind)",
                true,
            ),
            (
                format!(
                    r##"{{"authors":["{bk}"],"#e":["{target}"],"since":{},"until":{},"limit":40}}"##,
                    t + 100,
                    t + 600
                ),
                // The time range keeps the tag's probe under the cap.
                "ordered(tag)",
                true,
            ),
            (
                r##"{"kinds":[7],"since":0,"limit":15}"##.to_owned(),
                "ordered(kind)",
                true,
            ),
            // A tag nobody uses drives: nothing to read.
            (
                r##"{"#t":["rare"],"#e":["nothing"]}"##.to_owned(),
                "ordered(tag)",
                false,
            ),
            (r##"{"limit":7}"##.to_owned(), "newest", true),
            (format!(r##"{{"ids":["{some_id}"],"kinds":[1,7]}}"##), "unordered", true),
            (r##"{"kinds":[]}"##.to_owned(), "nothing", false),
        ];
        for (json, plan, found) in cases {
            let filter = nostr_pg_core::Filter::parse(&json).map_err(|_| Error::InvalidPosition)?;
            let chosen = Spi::get_one_with_args::<String>("SELECT nostr._filter_plan($1)", &[json.as_str().into()])?;
            assert_eq!(chosen.as_deref(), Some(plan), "{json}");
            let mut want: Vec<&Event> = all.iter().filter(|e| filter.matches(e)).collect();
            want.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
            want.truncate(filter.limit.map_or(usize::MAX, |l| l as usize));
            let want: Vec<String> = want.iter().map(|e| id(e)).collect();
            assert_eq!(!want.is_empty(), found, "{json}: the case is meant to find {found}");
            assert_eq!(req_ids(&format!("[{json}]"))?, want, "{json}");
        }
        Ok(())
    }
}
