//! In-database tests of moderation (`sql/moderation.sql`, `moderation.rs`)
//! and the write policy (`policy.rs`): each function, and each refusal
//! through every path: `nostr.publish`, `nostr.publish_batch` and a plain
//! `INSERT`. Each test runs in its own transaction, rolled back afterwards.

#[pgrx::pg_schema]
mod tests {
    use nostr_pg_core::sign::{tags, Keys};
    use nostr_pg_core::{hex, Event};
    use pgrx::prelude::*;
    use pgrx::spi::Error;

    use crate::test_sql::{id, now, publish};

    fn pk(k: &Keys) -> String {
        hex::encode(&k.pubkey())
    }

    /// The verdict of each path for `event`, each in its own subtransaction
    /// (rolled back, so the paths do not see each other's insert):
    /// `publish`, `publish_batch` (from `addr`), and an `INSERT` (its
    /// SQLSTATE and message when refused, `inserted N` otherwise).
    fn every_path(event: &Event, addr: Option<&str>) -> Result<[String; 3], Error> {
        Spi::run(
            "CREATE OR REPLACE FUNCTION pg_temp.attempt(how text, e text, addr inet) RETURNS text
             LANGUAGE plpgsql AS $$
             DECLARE
                 answer text;
                 n bigint;
             BEGIN
                 BEGIN
                     IF how = 'publish' THEN
                         SELECT accepted || ' ' || message INTO answer FROM nostr.publish(e);
                     ELSIF how = 'batch' THEN
                         SELECT accepted || ' ' || message INTO answer
                         FROM nostr.publish_batch(ARRAY[e], NULL, ARRAY[addr]);
                     ELSE
                         INSERT INTO nostr.events (event) VALUES (e::nostr.nostr_event);
                         GET DIAGNOSTICS n = ROW_COUNT;
                         answer := 'inserted ' || n;
                     END IF;
                     RAISE EXCEPTION USING ERRCODE = 'P0004', MESSAGE = answer;
                 EXCEPTION
                     WHEN assert_failure THEN RETURN SQLERRM;
                     WHEN OTHERS THEN RETURN SQLSTATE || ' ' || SQLERRM;
                 END;
             END $$",
        )?;
        let json = event.canonical_json();
        let mut out: [String; 3] = Default::default();
        for (slot, how) in out.iter_mut().zip(["publish", "batch", "insert"]) {
            *slot = Spi::get_one_with_args::<String>(
                "SELECT pg_temp.attempt($1, $2, $3::inet)",
                &[how.into(), json.clone().into(), addr.map(str::to_owned).into()],
            )?
            .unwrap_or_default();
        }
        Ok(out)
    }

    /// Every path refused `event` with `blocked: <detail>`.
    fn blocked_everywhere(event: &Event, addr: Option<&str>, detail: &str) -> Result<(), Error> {
        let [publish, batch, insert] = every_path(event, addr)?;
        let want = format!("false blocked: {detail}");
        assert_eq!(publish, want);
        assert_eq!(batch, want);
        assert_eq!(insert, format!("23514 blocked: {detail}"));
        Ok(())
    }

    /// Every path accepted `event` as new.
    fn accepted_everywhere(event: &Event, addr: Option<&str>) -> Result<(), Error> {
        let [publish, batch, insert] = every_path(event, addr)?;
        assert_eq!(publish, "true ");
        assert_eq!(batch, "true ");
        assert_eq!(insert, "inserted 1");
        Ok(())
    }

    fn stored(e: &Event) -> Result<bool, Error> {
        Ok(Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM nostr.events WHERE id = decode($1, 'hex'))",
            &[id(e).into()],
        )?
        .unwrap_or(false))
    }

    fn rows(sql: &str) -> Result<Vec<String>, Error> {
        Spi::connect(|c| {
            let mut out = Vec::new();
            for row in c.select(sql, None, &[])? {
                out.push(row.get::<String>(1)?.unwrap_or_default());
            }
            Ok(out)
        })
    }

    #[pg_test]
    fn ban_pubkey_deletes_and_refuses_on_every_path() -> Result<(), Error> {
        let spammer = Keys::from_seed("mod-spammer");
        let other = Keys::from_seed("mod-other");
        let old = spammer.sign(now() - 10, 1, vec![], "spam");
        let kept = other.sign(now() - 10, 1, vec![], "fine");
        assert!(publish(&old)?.0 && publish(&kept)?.0);
        Spi::run_with_args("SELECT nostr.allow_pubkey($1)", &[pk(&spammer).into()])?;
        Spi::run_with_args("SELECT nostr.ban_pubkey($1, 'spam')", &[pk(&spammer).into()])?;
        assert!(!stored(&old)? && stored(&kept)?);
        // Banning lifts the allow list entry (the list is empty again).
        assert!(rows("SELECT pubkey FROM nostr.list_allowed_pubkeys()")?.is_empty());
        assert_eq!(
            rows("SELECT pubkey || ' ' || reason FROM nostr.list_banned_pubkeys()")?,
            vec![format!("{} spam", pk(&spammer))]
        );
        let new = spammer.sign(now(), 1, vec![], "more spam");
        blocked_everywhere(&new, None, "this pubkey is banned from this relay")?;
        blocked_everywhere(&old, None, "this pubkey is banned from this relay")?;
        accepted_everywhere(&other.sign(now(), 1, vec![], "still fine"), None)?;
        // Banning again updates the reason; unbanning lets the author back.
        Spi::run_with_args("SELECT nostr.ban_pubkey($1, 'still spam')", &[pk(&spammer).into()])?;
        assert_eq!(
            rows("SELECT reason FROM nostr.list_banned_pubkeys()")?,
            vec!["still spam".to_owned()]
        );
        Spi::run_with_args("SELECT nostr.unban_pubkey($1)", &[pk(&spammer).into()])?;
        assert!(rows("SELECT pubkey FROM nostr.list_banned_pubkeys()")?.is_empty());
        accepted_everywhere(&new, None)?;
        Ok(())
    }

    #[pg_test]
    fn allow_list_admits_only_its_pubkeys_and_lifts_bans() -> Result<(), Error> {
        let member = Keys::from_seed("mod-member");
        let stranger = Keys::from_seed("mod-stranger");
        Spi::run_with_args("SELECT nostr.ban_pubkey($1)", &[pk(&member).into()])?;
        Spi::run_with_args("SELECT nostr.allow_pubkey($1, 'member')", &[pk(&member).into()])?;
        assert!(rows("SELECT pubkey FROM nostr.list_banned_pubkeys()")?.is_empty());
        assert_eq!(
            rows("SELECT pubkey || ' ' || reason FROM nostr.list_allowed_pubkeys()")?,
            vec![format!("{} member", pk(&member))]
        );
        accepted_everywhere(&member.sign(now(), 1, vec![], "hello"), None)?;
        let detail = format!("pubkey {} is not on this relay's allow list", pk(&stranger));
        blocked_everywhere(&stranger.sign(now(), 1, vec![], "let me in"), None, &detail)?;
        Spi::run_with_args("SELECT nostr.unallow_pubkey($1)", &[pk(&member).into()])?;
        accepted_everywhere(&stranger.sign(now(), 1, vec![], "open again"), None)?;
        Ok(())
    }

    #[pg_test]
    fn ban_event_deletes_it_and_keeps_it_out_until_allowed() -> Result<(), Error> {
        let keys = Keys::from_seed("mod-event");
        let bad = keys.sign(now(), 1, vec![], "bad note");
        assert!(publish(&bad)?.0);
        Spi::run_with_args("SELECT nostr.ban_event($1, 'illegal')", &[id(&bad).into()])?;
        assert!(!stored(&bad)?);
        assert_eq!(
            rows("SELECT id || ' ' || reason FROM nostr.list_banned_events()")?,
            vec![format!("{} illegal", id(&bad))]
        );
        blocked_everywhere(&bad, None, "this event is banned from this relay")?;
        // The author may publish other events.
        accepted_everywhere(&keys.sign(now(), 1, vec![], "good note"), None)?;
        // Unbanning lets it be published again (it is not restored).
        Spi::run_with_args("SELECT nostr.unban_event($1)", &[id(&bad).into()])?;
        assert!(!stored(&bad)?);
        Spi::run_with_args("SELECT nostr.ban_event($1)", &[id(&bad).into()])?;
        Spi::run_with_args("SELECT nostr.allow_event($1, 'reviewed')", &[id(&bad).into()])?;
        assert!(rows("SELECT id FROM nostr.list_banned_events()")?.is_empty());
        assert_eq!(
            rows("SELECT id || ' ' || reason FROM nostr.list_allowed_events()")?,
            vec![format!("{} reviewed", id(&bad))]
        );
        accepted_everywhere(&bad, None)?;
        Spi::run_with_args("SELECT nostr.unallow_event($1)", &[id(&bad).into()])?;
        assert!(rows("SELECT id FROM nostr.list_allowed_events()")?.is_empty());
        Ok(())
    }

    #[pg_test]
    fn reported_events_need_moderation_until_allowed_or_banned() -> Result<(), Error> {
        let author = Keys::from_seed("mod-reported");
        let reporter = Keys::from_seed("mod-reporter");
        let a = author.sign(now() - 5, 1, vec![], "reported twice");
        let b = author.sign(now() - 4, 1, vec![], "reported once");
        let never_stored = author.sign(now() - 3, 1, vec![], "not here");
        for e in [&a, &b] {
            assert!(publish(e)?.0);
        }
        let report = |target: &Event, kind: &str, text: &str, at: i64| {
            reporter.sign(at, 1984, tags(&[&["e", &id(target), kind], &["p", &pk(&author)]]), text)
        };
        for r in [
            report(&a, "spam", "", now() - 2),
            report(&a, "illegal", "really", now() - 1),
            report(&b, "nudity", "", now() - 1),
            report(&never_stored, "spam", "", now()),
        ] {
            assert!(publish(&r)?.0);
        }
        let listed = || rows("SELECT id || ' | ' || reason FROM nostr.list_events_needing_moderation()");
        assert_eq!(
            listed()?,
            vec![
                format!("{} | illegal: really; spam", id(&a)),
                format!("{} | nudity", id(&b)),
            ]
        );
        Spi::run_with_args("SELECT nostr.allow_event($1)", &[id(&a).into()])?;
        Spi::run_with_args("SELECT nostr.ban_event($1)", &[id(&b).into()])?;
        assert!(listed()?.is_empty());
        Ok(())
    }

    #[pg_test]
    fn kinds_allowed_and_disallowed() -> Result<(), Error> {
        let keys = Keys::from_seed("mod-kinds");
        Spi::run("SELECT nostr.allow_kind(1), nostr.allow_kind(0)")?;
        assert_eq!(
            Spi::get_one::<Vec<i32>>("SELECT array_agg(k) FROM nostr.list_allowed_kinds() k")?,
            Some(vec![0, 1])
        );
        accepted_everywhere(&keys.sign(now(), 1, vec![], "note"), None)?;
        blocked_everywhere(
            &keys.sign(now(), 7, vec![], "+"),
            None,
            "kind 7 is not accepted by this relay",
        )?;
        // Disallowing takes the kind off the allow list; with only 0 left,
        // 1 is refused as much as 7.
        Spi::run("SELECT nostr.disallow_kind(1)")?;
        assert_eq!(
            Spi::get_one::<Vec<i32>>("SELECT array_agg(k) FROM nostr.list_disallowed_kinds() k")?,
            Some(vec![1])
        );
        blocked_everywhere(
            &keys.sign(now(), 1, vec![], "n"),
            None,
            "kind 1 is not accepted by this relay",
        )?;
        // An empty allow list admits every kind not disallowed.
        Spi::run("DELETE FROM nostr.allowed_kinds")?;
        accepted_everywhere(&keys.sign(now(), 7, vec![], "+"), None)?;
        blocked_everywhere(
            &keys.sign(now(), 1, vec![], "n2"),
            None,
            "kind 1 is not accepted by this relay",
        )?;
        Spi::run("SELECT nostr.allow_kind(1)")?;
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM nostr.list_disallowed_kinds()")?,
            Some(0)
        );
        Ok(())
    }

    #[pg_test(error = "invalid kind: expected 0 to 65535, got 70000")]
    fn kinds_out_of_range_are_errors() -> Result<(), Error> {
        Spi::run("SELECT nostr.allow_kind(70000)")
    }

    #[pg_test]
    fn blocked_addresses_refuse_their_events() -> Result<(), Error> {
        let keys = Keys::from_seed("mod-ip");
        Spi::run("SELECT nostr.block_ip('10.0.0.0/8', 'abuse'), nostr.block_ip('192.0.2.7')")?;
        Spi::run("SELECT nostr.block_ip('2001:db8::/32')")?;
        assert_eq!(
            rows("SELECT ip || ' ' || coalesce(reason, '-') FROM nostr.list_blocked_ips()")?,
            vec!["10.0.0.0/8 abuse", "192.0.2.7 -", "2001:db8::/32 -"]
        );
        for (addr, blocked) in [
            ("10.1.2.3", true),
            ("192.0.2.7", true),
            ("192.0.2.8", false),
            ("2001:db8::1", true),
            ("2001:db9::1", false),
        ] {
            assert_eq!(
                Spi::get_one_with_args::<bool>("SELECT nostr.ip_blocked($1::inet)", &[addr.into()])?,
                Some(blocked),
                "{addr}"
            );
        }
        // Only publish_batch knows the address: publish and INSERT, which
        // do not, accept.
        let e = keys.sign(now(), 1, vec![], "from a blocked network");
        let [publish, batch, insert] = every_path(&e, Some("10.9.9.9"))?;
        assert_eq!(batch, "false blocked: your address is blocked from this relay");
        assert_eq!((publish.as_str(), insert.as_str()), ("true ", "inserted 1"));
        accepted_everywhere(&keys.sign(now(), 1, vec![], "elsewhere"), Some("192.0.2.8"))?;
        Spi::run("SELECT nostr.unblock_ip('10.0.0.0/8')")?;
        accepted_everywhere(&e, Some("10.9.9.9"))?;
        Ok(())
    }

    #[pg_test]
    fn relay_info_has_one_row_and_null_clears() -> Result<(), Error> {
        let info = || {
            Spi::get_one::<String>(
                "SELECT concat_ws('|', coalesce(name, '-'), coalesce(description, '-'), coalesce(icon, '-')) FROM nostr.relay_info()",
            )
        };
        assert_eq!(info()?.as_deref(), Some("-|-|-"));
        Spi::run("SELECT nostr.set_relay_info('name', 'Our relay'), nostr.set_relay_info('icon', 'https://x/i.png')")?;
        assert_eq!(info()?.as_deref(), Some("Our relay|-|https://x/i.png"));
        Spi::run("SELECT nostr.set_relay_info('name', NULL), nostr.set_relay_info('description', 'd')")?;
        assert_eq!(info()?.as_deref(), Some("-|d|https://x/i.png"));
        assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM nostr.relay_info()")?, Some(1));
        Ok(())
    }

    #[pg_test(error = "invalid relay info field 'banner': expected name, description or icon")]
    fn relay_info_fields_are_checked() -> Result<(), Error> {
        Spi::run("SELECT nostr.set_relay_info('banner', 'x')")
    }

    #[pg_test(error = "invalid pubkey: expected 64 hex characters, got 'npub1xyz'")]
    fn bad_hex_pubkeys_are_errors() -> Result<(), Error> {
        Spi::run("SELECT nostr.ban_pubkey('npub1xyz')")
    }

    #[pg_test(error = "invalid event id: expected 64 hex characters, got NULL")]
    fn null_ids_are_errors() -> Result<(), Error> {
        Spi::run("SELECT nostr.ban_event(NULL)")
    }

    #[pg_test]
    fn hex_in_upper_case_is_the_same_key() -> Result<(), Error> {
        let keys = Keys::from_seed("mod-upper");
        Spi::run_with_args("SELECT nostr.ban_pubkey(upper($1))", &[pk(&keys).into()])?;
        assert_eq!(rows("SELECT pubkey FROM nostr.list_banned_pubkeys()")?, vec![pk(&keys)]);
        blocked_everywhere(
            &keys.sign(now(), 1, vec![], "x"),
            None,
            "this pubkey is banned from this relay",
        )
    }

    /// A policy for the tests: refuses kind 7 (with its own prefix), shadows
    /// kind 2, passes the rest; and records what it was asked.
    fn install_policy() -> Result<(), Error> {
        Spi::run(
            "CREATE TABLE pg_temp.asked (kind int, auth text, addr inet);
             CREATE FUNCTION pg_temp.policy(e nostr.nostr_event, auth text, addr inet) RETURNS text
             LANGUAGE plpgsql AS $$
             BEGIN
                 INSERT INTO pg_temp.asked VALUES (nostr.kind(e), auth, addr);
                 RETURN CASE nostr.kind(e) WHEN 7 THEN 'restricted: no reactions here'
                                           WHEN 2 THEN 'shadow: quietly dropped'
                                           WHEN 9 THEN 'not a prefix at all' END;
             END $$",
        )?;
        let schema = Spi::get_one::<String>("SELECT nspname::text FROM pg_namespace WHERE oid = pg_my_temp_schema()")?
            .unwrap_or_default();
        Spi::run(&format!("SET LOCAL nostr.write_policy = '{schema}.policy'"))
    }

    #[pg_test]
    fn write_policy_accepts_rejects_and_shadows_on_every_path() -> Result<(), Error> {
        install_policy()?;
        let keys = Keys::from_seed("mod-policy");
        accepted_everywhere(&keys.sign(now(), 1, vec![], "fine"), Some("192.0.2.1"))?;
        let [publish, batch, insert] = every_path(&keys.sign(now(), 7, vec![], "+"), None)?;
        assert_eq!(publish, "false restricted: no reactions here");
        assert_eq!(batch, publish);
        assert_eq!(insert, "42501 restricted: no reactions here");
        let [_, _, insert] = every_path(&keys.sign(now(), 9, vec![], "?"), None)?;
        assert_eq!(insert, "23514 blocked: not a prefix at all");
        // Shadow-rejected: answered as accepted, never stored, never in
        // transit (so never delivered); an INSERT inserts no row.
        let quiet = keys.sign(now(), 2, vec![], "shh");
        let [publish, batch, insert] = every_path(&quiet, None)?;
        assert_eq!(publish, "true shadow: quietly dropped");
        assert_eq!(batch, publish);
        assert_eq!(insert, "inserted 0");
        assert_eq!(
            Spi::get_two::<bool, bool>(
                "SELECT EXISTS (SELECT 1 FROM nostr.events WHERE kind = 2), EXISTS (SELECT 1 FROM nostr.transit t WHERE nostr.kind(t.event) = 2)"
            )?,
            (Some(false), Some(false))
        );
        // It was told who sent the event, where known.
        let auth = pk(&keys);
        Spi::run_with_args(
            "SELECT * FROM nostr.publish_batch(ARRAY[$1], ARRAY[$2], ARRAY['198.51.100.4'::inet])",
            &[
                keys.sign(now(), 1, vec![], "with sender").canonical_json().into(),
                auth.clone().into(),
            ],
        )?;
        assert_eq!(
            Spi::get_two::<String, String>("SELECT auth, host(addr) FROM pg_temp.asked ORDER BY ctid DESC LIMIT 1")?,
            (Some(auth), Some("198.51.100.4".to_owned()))
        );
        Ok(())
    }

    #[pg_test]
    fn a_policy_that_names_no_function_refuses_everything() -> Result<(), Error> {
        Spi::run("SET LOCAL nostr.write_policy = 'public.no_such_policy'")?;
        let (ok, msg) = publish(&Keys::from_seed("mod-nopolicy").sign(now(), 1, vec![], "x"))?;
        assert!(!ok);
        assert_eq!(
            msg,
            "error: nostr.write_policy names no function public.no_such_policy(nostr.nostr_event, text, inet) returning text"
        );
        Ok(())
    }

    #[pg_test]
    fn empty_moderation_is_remembered_and_forgotten_on_change() -> Result<(), Error> {
        let keys = Keys::from_seed("mod-cache");
        // Looked at once (nothing there), then a ban in the same transaction
        // is seen by the next event at once.
        accepted_everywhere(&keys.sign(now(), 1, vec![], "a"), None)?;
        Spi::run_with_args("SELECT nostr.ban_pubkey($1)", &[pk(&keys).into()])?;
        blocked_everywhere(
            &keys.sign(now(), 1, vec![], "b"),
            None,
            "this pubkey is banned from this relay",
        )?;
        Spi::run("TRUNCATE nostr.banned_pubkeys")?;
        accepted_everywhere(&keys.sign(now(), 1, vec![], "c"), None)
    }
}
