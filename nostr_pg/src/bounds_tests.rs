//! In-database tests of the bounds on what one backend holds: the advisory
//! locks of a publish batch and the cache of prepared plans.

#[pgrx::pg_schema]
mod tests {
    use nostr_pg_core::batch::DEFERRED;
    use nostr_pg_core::sign::{tags, Keys};
    use nostr_pg_core::{hex, Event};
    use pgrx::prelude::*;
    use pgrx::spi::Error;

    use crate::test_sql::now;

    /// `(accepted, message)` per event of one `publish_batch` call.
    fn publish_batch(events: &[Event]) -> Result<Vec<(bool, String)>, Error> {
        let json: Vec<String> = events.iter().map(Event::canonical_json).collect();
        Spi::connect(|c| {
            let mut out = Vec::new();
            for row in c.select(
                "SELECT accepted, message FROM nostr.publish_batch($1)",
                None,
                &[json.into()],
            )? {
                out.push((
                    row.get::<bool>(1)?.unwrap_or(false),
                    row.get::<String>(2)?.unwrap_or_default(),
                ));
            }
            Ok(out)
        })
    }

    /// Advisory locks this backend holds (until the test's transaction ends).
    fn advisory_locks() -> Result<i64, Error> {
        Ok(
            Spi::get_one::<i64>(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
            )?
            .unwrap_or(-1),
        )
    }

    fn stored() -> Result<i64, Error> {
        Ok(Spi::get_one::<i64>("SELECT count(*) FROM nostr.events")?.unwrap_or(-1))
    }

    #[pg_test]
    fn a_deletion_locks_its_author_not_each_target() -> Result<(), Error> {
        let alice = Keys::from_seed("bounds-alice");
        let t = now() - 100;
        let notes: Vec<Event> = (0..10)
            .map(|i| alice.sign(t, 1, vec![], &format!("note {i}")))
            .collect();
        assert!(publish_batch(&notes)?.iter().all(|(ok, _)| *ok));
        let held = advisory_locks()?;
        // 2,500 `e` tags (the gateway's max_event_tags): ten real targets,
        // the rest ids nobody published.
        let mut targets: Vec<String> = notes.iter().map(|e| hex::encode(&e.id)).collect();
        targets.extend((10..2500u32).map(|i| hex::encode(&Keys::from_seed("x").sign(i.into(), 1, vec![], "").id)));
        let e_tags: Vec<Vec<String>> = targets.iter().map(|id| vec!["e".into(), id.clone()]).collect();
        let deletion = alice.sign(t + 1, 5, e_tags, "");
        assert_eq!(
            publish_batch(std::slice::from_ref(&deletion))?,
            vec![(true, String::new())]
        );
        // Its own id, and its author exclusively (a second row beside the
        // shared lock the notes took).
        assert_eq!(advisory_locks()? - held, 2);
        assert_eq!(stored()?, 1, "every note deleted, the deletion stored");
        let (ok, msg) = publish_batch(&notes[3..4])?.remove(0);
        assert!(!ok && msg.starts_with("blocked:"), "{msg}");
        Ok(())
    }

    #[pg_test]
    fn events_past_the_lock_budget_are_deferred_in_order() -> Result<(), Error> {
        Spi::run("SET LOCAL nostr.max_locks_per_batch = 20")?;
        let t = now() - 100;
        // Two locks each (id, author): ten fit, the rest wait for a later batch.
        let events: Vec<Event> = (0..15)
            .map(|i| Keys::from_seed(&format!("budget-{i}")).sign(t, 1, vec![], "hi"))
            .collect();
        let verdicts = publish_batch(&events)?;
        let deferred = format!("error: {DEFERRED}");
        for (i, (ok, msg)) in verdicts.iter().enumerate() {
            if i < 10 {
                assert!(*ok && msg.is_empty(), "{i}: {msg}");
            } else {
                assert!(!*ok && *msg == deferred, "{i}: {msg}");
            }
        }
        assert_eq!(advisory_locks()?, 20);
        assert_eq!(stored()?, 10);
        // Sent again, they are published.
        assert!(publish_batch(&events[10..])?.iter().all(|(ok, m)| *ok && m.is_empty()));
        assert_eq!(stored()?, 15);
        // Malformed events take no lock and are answered as usual.
        Spi::run("SET LOCAL nostr.max_locks_per_batch = 16")?;
        let fresh: Vec<Event> = (0..9)
            .map(|i| Keys::from_seed(&format!("budget-b{i}")).sign(t, 30000, tags(&[&["d", "x"]]), ""))
            .collect();
        let verdicts = publish_batch(&fresh)?;
        let fit = verdicts.iter().filter(|(ok, _)| *ok).count();
        assert_eq!(fit, 5, "three locks each: five fit in sixteen");
        Ok(())
    }

    #[pg_test(error = "permission denied to set parameter \"nostr.max_locks_per_batch\"")]
    fn only_a_superuser_sets_the_lock_budget() -> Result<(), Error> {
        Spi::run("CREATE ROLE nostr_bounds_plain")?;
        Spi::run("SET LOCAL ROLE nostr_bounds_plain")?;
        Spi::run("SET LOCAL nostr.max_locks_per_batch = 100000000")
    }

    #[pg_test]
    fn a_flood_of_filter_shapes_keeps_the_plan_cache_bounded() -> Result<(), Error> {
        let keys = Keys::from_seed("plan-flood");
        let t = now() - 100;
        let events: Vec<Event> = (0..30)
            .map(|i| {
                keys.sign(
                    t + i,
                    if i % 3 == 0 { 7 } else { 1 },
                    tags(&[&["t", "x"]]),
                    &i.to_string(),
                )
            })
            .collect();
        assert!(publish_batch(&events)?.iter().all(|(ok, _)| *ok));
        let author = hex::encode(&keys.pubkey());
        // 50 filter counts × kinds × until × authors: 400 distinct statements.
        let shape = |n: i64, flags: u8| {
            let filters: Vec<String> = (0..n)
                .map(|j| {
                    let mut f = format!(r##"{{"#t":["x"],"since":{}"##, t + j);
                    if flags & 1 != 0 {
                        f.push_str(r#","kinds":[1]"#);
                    }
                    if flags & 2 != 0 {
                        f.push_str(&format!(r#","until":{}"#, t + 20));
                    }
                    if flags & 4 != 0 {
                        f.push_str(&format!(r#","authors":["{author}"]"#));
                    }
                    f + "}"
                })
                .collect();
            format!("[{}]", filters.join(","))
        };
        let check = |json: &str| -> Result<(), Error> {
            let filters = nostr_pg_core::Filters::parse(json).map_err(|_| Error::InvalidPosition)?;
            let want = events.iter().filter(|e| filters.matches(e)).count() as i64;
            let got = Spi::get_one_with_args::<i64>("SELECT nostr.count($1::text)", &[json.into()])?;
            assert_eq!(got, Some(want), "{json}");
            Ok(())
        };
        let capacity = crate::spi_cache::CAPACITY as i32;
        for flags in 0..8u8 {
            for n in 1..=50 {
                check(&shape(n, flags))?;
                let size = Spi::get_one::<i32>("SELECT nostr._plan_cache_size()")?.unwrap_or(-1);
                assert!(size <= capacity, "{size} plans");
            }
        }
        let size = Spi::get_one::<i32>("SELECT nostr._plan_cache_size()")?;
        assert_eq!(size, Some(capacity), "full, not beyond");
        // The first shapes were evicted long ago: planned again, same answers.
        for n in [1, 2, 17, 50] {
            check(&shape(n, 0))?;
        }
        Ok(())
    }
}
