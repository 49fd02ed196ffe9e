//! In-database tests of NIP-45 COUNT: the tag-index count answers exactly
//! what the general count answers, and is the one chosen for one tag.

#[pgrx::pg_schema]
mod tests {
    use nostr_pg_core::sign::{tags, Keys};
    use nostr_pg_core::{Event, Filters};
    use pgrx::prelude::*;
    use pgrx::spi::Error;

    use crate::query::count::{choose, CountPlan};

    fn publish_all(events: &[Event]) -> Result<(), Error> {
        let json: Vec<String> = events.iter().map(Event::canonical_json).collect();
        let ok = Spi::get_one_with_args::<i64>(
            "SELECT count(*) FILTER (WHERE accepted AND message = '') FROM nostr.publish_batch($1)",
            &[json.into()],
        )?;
        assert_eq!(ok, Some(events.len() as i64));
        Ok(())
    }

    fn count(filters: &str) -> Result<i64, Error> {
        Ok(Spi::get_one_with_args::<i64>("SELECT nostr.count($1::text)", &[filters.into()])?.unwrap_or(-1))
    }

    /// What COUNT must answer, by the core matcher over every live event.
    fn expected(filters: &str) -> Result<i64, Error> {
        Ok(Spi::get_one_with_args::<i64>(
            "SELECT count(*) FROM nostr.events WHERE nostr.matches(event, $1) \
             AND (expires_at IS NULL OR expires_at > extract(epoch FROM now())::bigint)",
            &[filters.into()],
        )?
        .unwrap_or(-1))
    }

    fn plan_of(filters: &str) -> &'static str {
        let parsed = Filters::parse(filters).unwrap_or_default();
        match choose(&parsed.0, None) {
            CountPlan::Nothing => "nothing",
            CountPlan::TagIndex(..) => "tag index",
            CountPlan::General(_) => "general",
        }
    }

    #[pg_test]
    fn tag_index_counts_equal_the_general_count() -> Result<(), Error> {
        let a = Keys::from_seed("count-a");
        let b = Keys::from_seed("count-b");
        let t = crate::rules::now() - 1000;
        let long = "x".repeat(300);
        let soon = (t + 5000).to_string();
        let events = vec![
            a.sign(t, 1, tags(&[&["t", "nostr"]]), "one"),
            // The same tag twice on one event is one event.
            a.sign(t + 1, 1, tags(&[&["t", "nostr"], &["t", "nostr"]]), "twice"),
            // Both values of a two-value condition: counted once.
            a.sign(t + 2, 1, tags(&[&["t", "nostr"], &["t", "pg"]]), "both"),
            b.sign(t + 3, 7, tags(&[&["t", "nostr"]]), "+"),
            b.sign(t + 4, 7, tags(&[&["t", "pg"]]), "+"),
            b.sign(t + 5, 1, tags(&[&["t", &long]]), "a hashed index key"),
            b.sign(t + 6, 1, tags(&[&["p", "nostr"]]), "another letter"),
            // Made expired below: still stored, never counted.
            b.sign(t + 7, 1, tags(&[&["t", "nostr"], &["expiration", &soon]]), "expires"),
            b.sign(t + 8, 7, tags(&[&["t", "pg"], &["expiration", &soon]]), "expires too"),
        ];
        publish_all(&events)?;
        Spi::run("ALTER TABLE nostr.events DISABLE TRIGGER events_no_update")?;
        Spi::run("UPDATE nostr.events SET expires_at = 1 WHERE expires_at IS NOT NULL")?;
        let cases = [
            r##"[{"#t":["nostr"]}]"##.to_owned(),
            r##"[{"#t":["nostr","pg"]}]"##.to_owned(),
            r##"[{"#t":["pg","pg"]}]"##.to_owned(),
            r##"[{"#t":["nostr"],"kinds":[7]}]"##.to_owned(),
            r##"[{"#t":["nostr","pg"],"kinds":[1,7]}]"##.to_owned(),
            format!(r##"[{{"#t":["nostr"],"since":{}}}]"##, t + 1),
            format!(r##"[{{"#t":["nostr","pg"],"since":{},"until":{}}}]"##, t + 2, t + 7),
            format!(r##"[{{"#t":["{long}"]}}]"##),
            r##"[{"#t":["absent"]}]"##.to_owned(),
            r##"[{"#p":["nostr"],"limit":1}]"##.to_owned(),
        ];
        for case in &cases {
            assert_eq!(plan_of(case), "tag index", "{case}");
            assert_eq!(count(case)?, expected(case)?, "{case}");
        }
        assert_eq!(count(r##"[{"#t":["nostr"]}]"##)?, 4);
        assert_eq!(count(r##"[{"#t":["nostr","pg"]}]"##)?, 5);
        // Shapes the tag index cannot answer alone take the general count.
        let general = [
            r##"[{"#t":["nostr"]},{"kinds":[7]}]"##.to_owned(),
            r##"[{"#t":["nostr"],"#p":["nostr"]}]"##.to_owned(),
            format!(
                r##"[{{"#t":["nostr"],"authors":["{}"]}}]"##,
                nostr_pg_core::hex::encode(&a.pubkey())
            ),
            r##"[{"kinds":[1]}]"##.to_owned(),
        ];
        for case in &general {
            assert_eq!(plan_of(case), "general", "{case}");
            assert_eq!(count(case)?, expected(case)?, "{case}");
        }
        assert_eq!(plan_of(r##"[{"#t":[]},{"kinds":[]}]"##), "nothing");
        assert_eq!(count(r##"[{"#t":[]},{"kinds":[]}]"##)?, 0);
        Ok(())
    }

    /// A count restricted to viewers is never taken from the tag index,
    /// which cannot see who an event involves.
    #[pg_test]
    fn counts_for_viewers_take_the_general_form() -> Result<(), Error> {
        let filters = Filters::parse(r##"[{"#t":["nostr"]}]"##).unwrap_or_default();
        let viewers = crate::query::Viewers(vec![[7u8; 32]]);
        assert!(matches!(choose(&filters.0, Some(&viewers)), CountPlan::General(_)));
        Ok(())
    }
}
