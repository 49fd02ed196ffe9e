//! In-database tests of restored rows (see `restore.rs`): a row that brings
//! its own `seq` is stored as it is when its role owns `nostr.events`, and
//! refused for anyone else. The dump round trips are in tests/tests/backup.rs.

#[pgrx::pg_schema]
mod tests {
    use nostr_pg_core::hex;
    use nostr_pg_core::sign::{tags, Keys};
    use nostr_pg_core::Event;
    use pgrx::prelude::*;
    use pgrx::spi::Error;

    use crate::test_sql::now;

    fn restore(seq: i64, event: &Event) -> Result<(), Error> {
        Spi::run_with_args(
            "INSERT INTO nostr.events (seq, event) VALUES ($1, $2::nostr.nostr_event)",
            &[seq.into(), event.canonical_json().into()],
        )
    }

    #[pg_test]
    fn restored_rows_keep_their_seq_and_skip_the_rules() -> Result<(), Error> {
        // Every one of these would be refused if published now.
        Spi::run("SET LOCAL nostr.min_pow = 40")?;
        Spi::run("SET LOCAL nostr.max_past_seconds = 60")?;
        let keys = Keys::from_seed("restored");
        let t = now() - 3600;
        let expired = keys.sign(t, 1, tags(&[&["expiration", &(t + 1).to_string()]]), "gone");
        let protected = keys.sign(t, 1, tags(&[&["-"], &["t", "kept"]]), "mine");
        let vanish = keys.sign(t + 5, 62, tags(&[&["relay", "ALL_RELAYS"]]), "");
        let wrap = Keys::from_seed("sender").sign(t, 1059, tags(&[&["p", &hex::encode(&keys.pubkey())]]), "");
        // The vanish request's own entry, loaded before it as a dump may do.
        Spi::run_with_args(
            "INSERT INTO nostr.vanished VALUES (decode($1, 'hex'), $2)",
            &[hex::encode(&keys.pubkey()).into(), (t + 5).into()],
        )?;
        for (seq, e) in [
            (1_000_001, &expired),
            (1_000_002, &protected),
            (1_000_005, &wrap),
            (1_000_009, &vanish),
        ] {
            restore(seq, e)?;
        }
        let rows = Spi::get_one::<i64>("SELECT count(*) FROM nostr.events WHERE seq > 1000000")?;
        assert_eq!(
            rows,
            Some(4),
            "all stored; replaying the vanish request would delete the wrap"
        );
        let (kind, expires) = Spi::get_two_with_args::<i32, i64>(
            "SELECT kind, expires_at FROM nostr.events WHERE seq = $1",
            &[1_000_001_i64.into()],
        )?;
        assert_eq!((kind, expires), (Some(1), Some(t + 1)), "derived columns computed");
        let tagged = Spi::get_one::<i64>("SELECT count(*) FROM nostr.event_tags WHERE tag = 't:kept'")?;
        assert_eq!(tagged, Some(1), "the ordered tag index has it");
        // Not news: no transit row (and so no number from the sequence).
        assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM nostr.transit")?, Some(0));
        Ok(())
    }

    #[pg_test]
    fn replica_role_does_not_skip_the_triggers() -> Result<(), Error> {
        // A superuser's way to load data "without triggers".
        Spi::run("SET LOCAL session_replication_role = replica")?;
        let keys = Keys::from_seed("replica");
        restore(2_000_001, &keys.sign(now() - 3600, 1, tags(&[&["t", "replica"]]), ""))?;
        let tagged = Spi::get_one::<i64>("SELECT count(*) FROM nostr.event_tags WHERE tag = 't:replica'")?;
        assert_eq!(tagged, Some(1), "a restored row is indexed");
        Spi::run("SET LOCAL nostr.min_pow = 40")?;
        let (ok, msg) = Spi::get_two_with_args::<bool, String>(
            "SELECT accepted, message FROM nostr.publish($1)",
            &[keys.sign(now(), 1, vec![], "cheap").canonical_json().into()],
        )?;
        assert_eq!(ok, Some(false));
        assert!(msg.unwrap_or_default().starts_with("pow:"), "the rules still run");
        Ok(())
    }

    #[pg_test]
    fn published_rows_are_numbered_by_the_sequence() -> Result<(), Error> {
        let e = Keys::from_seed("numbered").sign(now(), 1, vec![], "next");
        Spi::run_with_args(
            "INSERT INTO nostr.events (event) VALUES ($1::nostr.nostr_event)",
            &[e.canonical_json().into()],
        )?;
        // currval: what nextval last gave this session (others run at once).
        let seq = Spi::get_one::<i64>("SELECT seq FROM nostr.events")?;
        assert_eq!(seq, Spi::get_one::<i64>("SELECT currval('nostr.event_seq')")?);
        Ok(())
    }

    #[pg_test(
        error = "restricted: only the owner of nostr.events may insert rows with their own seq (restoring a dump); leave seq out to publish"
    )]
    fn an_ordinary_role_cannot_insert_rows_with_their_seq() -> Result<(), Error> {
        Spi::run("CREATE ROLE nostr_restore_test")?;
        Spi::run("GRANT USAGE ON SCHEMA nostr TO nostr_restore_test")?;
        Spi::run("GRANT INSERT ON nostr.events TO nostr_restore_test")?;
        Spi::run("SET LOCAL ROLE nostr_restore_test")?;
        let e = Keys::from_seed("intruder").sign(now() - 10, 1, tags(&[&["expiration", "1"]]), "");
        restore(7, &e)
    }
}
