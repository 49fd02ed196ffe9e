//! In-database tests of housekeeping's batches through `nostr.housekeep()`
//! (the worker that runs them by itself is tested end to end, in
//! tests/tests/housekeeping.rs), and of the `nostr.retention` setting.

#[pgrx::pg_schema]
mod tests {
    use nostr_pg_core::sign::{tags, Keys};
    use nostr_pg_core::Event;
    use pgrx::prelude::*;
    use pgrx::spi::Error;

    use crate::test_sql::now;

    const DAY: i64 = 86_400;

    fn publish_all(events: &[Event]) -> Result<(), Error> {
        let json: Vec<String> = events.iter().map(Event::canonical_json).collect();
        let ok = Spi::get_one_with_args::<i64>(
            "SELECT count(*) FILTER (WHERE accepted AND message = '') FROM nostr.publish_batch($1)",
            &[json.into()],
        )?;
        assert_eq!(ok, Some(events.len() as i64));
        Ok(())
    }

    /// `nostr.housekeep(max_rows)`: rows removed per task.
    fn housekeep(max_rows: i32) -> Result<Vec<(String, i64)>, Error> {
        Spi::connect(|c| {
            let mut out = Vec::new();
            for row in c.select(
                "SELECT task, removed FROM nostr.housekeep($1)",
                None,
                &[max_rows.into()],
            )? {
                out.push((
                    row.get::<String>(1)?.unwrap_or_default(),
                    row.get::<i64>(2)?.unwrap_or(-1),
                ));
            }
            Ok(out)
        })
    }

    fn removed(expired: i64, transit: i64, retention: i64) -> Vec<(String, i64)> {
        vec![
            ("expired".into(), expired),
            ("transit".into(), transit),
            ("retention".into(), retention),
        ]
    }

    fn count(sql: &str) -> Result<i64, Error> {
        Ok(Spi::get_one::<i64>(sql)?.unwrap_or(-1))
    }

    #[pg_test]
    fn expired_events_go_in_batches_and_are_counted() -> Result<(), Error> {
        let keys = Keys::from_seed("hk-expired");
        let later = (now() + 3600).to_string();
        let events: Vec<Event> = (0..5)
            .map(|i| keys.sign(now(), 1, tags(&[&["expiration", &later]]), &i.to_string()))
            .collect();
        publish_all(&events)?;
        publish_all(&[keys.sign(now(), 1, vec![], "stays")])?;
        // Expired in place (the test cannot wait an hour).
        Spi::run("ALTER TABLE nostr.events DISABLE TRIGGER events_no_update")?;
        Spi::run("UPDATE nostr.events SET expires_at = 1 WHERE expires_at IS NOT NULL")?;
        assert_eq!(housekeep(2)?, removed(2, 0, 0));
        assert_eq!(housekeep(2)?, removed(2, 0, 0));
        assert_eq!(housekeep(2)?, removed(1, 0, 0));
        assert_eq!(housekeep(2)?, removed(0, 0, 0));
        assert_eq!(count("SELECT count(*) FROM nostr.events")?, 1);
        assert_eq!(count("SELECT count(*) FROM nostr.event_tags")?, 0, "tag rows went too");
        let row = Spi::get_three::<i64, i64, i64>(
            "SELECT runs, batches, removed FROM nostr.housekeeping WHERE task = 'expired'",
        )?;
        assert_eq!(row, (Some(4), Some(4), Some(5)));
        let last = Spi::get_two::<i64, bool>(
            "SELECT last_removed, last_run IS NOT NULL FROM nostr.housekeeping WHERE task = 'expired'",
        )?;
        assert_eq!(last, (Some(0), Some(true)));
        Ok(())
    }

    #[pg_test]
    fn retention_removes_old_events_of_the_kinds_it_names() -> Result<(), Error> {
        let keys = Keys::from_seed("hk-retention");
        let t = now();
        // Kind 1 keeps 30 days, 30000-39999 forever, every other kind 1 year;
        // kind 0 is not named, so `*` covers it.
        Spi::run("SET LOCAL nostr.retention = '1:30d, 30000-39999:forever, *:1y'")?;
        let old_note = keys.sign(t - 40 * DAY, 1, vec![], "old note");
        let new_note = keys.sign(t - 20 * DAY, 1, vec![], "new note");
        let old_reaction = keys.sign(t - 400 * DAY, 7, vec![], "+");
        let reaction = keys.sign(t - 40 * DAY, 7, vec![], "+");
        let old_article = keys.sign(t - 4000 * DAY, 30023, tags(&[&["d", "a"]]), "kept");
        let old_profile = Keys::from_seed("hk-profile").sign(t - 400 * DAY, 0, vec![], "{}");
        publish_all(&[old_note, new_note, old_reaction, reaction, old_article, old_profile])?;
        assert_eq!(housekeep(1000)?, removed(0, 0, 3));
        let mut left: Vec<String> = Spi::connect(|c| {
            c.select(
                "SELECT nostr.content(event) || kind FROM nostr.events ORDER BY 1",
                None,
                &[],
            )?
            .map(|r| r.get::<String>(1).map(Option::unwrap_or_default))
            .collect::<Result<Vec<_>, _>>()
        })?;
        left.sort();
        assert_eq!(left, vec!["+7", "kept30023", "new note1"]);
        // Off (the default): nothing is removed, whatever its age.
        Spi::run("SET LOCAL nostr.retention = ''")?;
        publish_all(&[keys.sign(t - 9000 * DAY, 1, vec![], "ancient")])?;
        assert_eq!(housekeep(1000)?, removed(0, 0, 0));
        Ok(())
    }

    #[pg_test]
    fn retention_batches_stop_at_max_rows_across_rules() -> Result<(), Error> {
        let t = now();
        Spi::run("SET LOCAL nostr.retention = '1:1d, 7:1d'")?;
        let events: Vec<Event> = (0..6)
            .map(|i| {
                Keys::from_seed(&format!("hk-ret-{i}")).sign(t - 2 * DAY, if i < 3 { 1 } else { 7 }, vec![], "old")
            })
            .collect();
        publish_all(&events)?;
        assert_eq!(housekeep(4)?, removed(0, 0, 4));
        assert_eq!(housekeep(4)?, removed(0, 0, 2));
        assert_eq!(count("SELECT count(*) FROM nostr.events")?, 0);
        Ok(())
    }

    #[pg_test(error = "invalid value for parameter \"nostr.retention\": \"1:90, *:1y\"")]
    fn a_malformed_retention_is_refused_when_set() -> Result<(), Error> {
        Spi::run("SET LOCAL nostr.retention = '1:90, *:1y'")
    }

    #[pg_test(error = "permission denied to set parameter \"nostr.retention\"")]
    fn only_a_superuser_sets_retention() -> Result<(), Error> {
        Spi::run("CREATE ROLE nostr_hk_plain")?;
        Spi::run("SET LOCAL ROLE nostr_hk_plain")?;
        Spi::run("SET LOCAL nostr.retention = '*:1s'")
    }
}
