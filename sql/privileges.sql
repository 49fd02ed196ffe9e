-- nostr_pg privileges: who may do what. Shipped inside the extension, run
-- after every other object exists (extension_sql_file!, finalize).
--
-- The relay runs as an ordinary role. It publishes only through
-- nostr.publish_batch, which runs with the extension owner's rights
-- (SECURITY DEFINER, nostr_pg/src/publish.rs) and passes every event through
-- the insert trigger's rules; so that role needs no write privilege on any
-- table, and cannot delete events, write tombstones or inject live events
-- around the rules. Readers get SELECT and nothing else. Nothing here
-- changes what a superuser may do.

-- Functions are executable by PUBLIC by default. These write with the owner's
-- rights, so only roles granted them below (or by hand) may call them; any
-- other role gets "permission denied for function" (SQLSTATE 42501).
REVOKE EXECUTE ON FUNCTION nostr.publish_batch(text[], text[]) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION nostr.publish(text, text) FROM PUBLIC;
-- Creates the transit state row when missing; the relay's listener calls it.
REVOKE EXECUTE ON FUNCTION nostr.live_state() FROM PUBLIC;
-- Called by the insert trigger (as the owner, inside publish_batch). Anyone
-- else calling it with a short retention could purge live events before the
-- listeners read them.
REVOKE EXECUTE ON FUNCTION nostr.purge_transit(interval) FROM PUBLIC;

-- What a gateway needs, and no more: publish (through every rule), read
-- events (nostr.req_json, nostr.count), read what notifications name
-- (nostr.changes, nostr.committed_between: the transit table), see which
-- incarnation of it a REQ read in (transit_state), and check in
-- (nostr.live_state). LISTEN, pg_current_snapshot() and
-- pg_current_xact_id_if_assigned() need no grant.
CREATE FUNCTION nostr.grant_relay(grantee name) RETURNS void
    LANGUAGE plpgsql VOLATILE STRICT SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA nostr TO %I', grantee);
    EXECUTE format('GRANT SELECT ON nostr.events, nostr.event_tags, nostr.transit, nostr.transit_state TO %I', grantee);
    EXECUTE format(
        'GRANT EXECUTE ON FUNCTION nostr.publish_batch(text[], text[]), nostr.publish(text, text), '
        'nostr.live_state() TO %I', grantee);
END $$;
COMMENT ON FUNCTION nostr.grant_relay(name) IS
    'Grants a role what the nostr_pg gateway needs: publish through the rules, read events and live changes.';

-- Read-only SQL access: nostr.req, nostr.count, nostr.matches and SELECT on
-- the stored events. No write of any kind.
CREATE FUNCTION nostr.grant_reader(grantee name) RETURNS void
    LANGUAGE plpgsql VOLATILE STRICT SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA nostr TO %I', grantee);
    EXECUTE format('GRANT SELECT ON nostr.events, nostr.event_tags TO %I', grantee);
END $$;
COMMENT ON FUNCTION nostr.grant_reader(name) IS
    'Grants a role read-only SQL access to the stored events.';

-- Granting is the owner's business: without this, a role that may not grant
-- would get only a warning ("no privileges were granted") from GRANT.
REVOKE EXECUTE ON FUNCTION nostr.grant_relay(name) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION nostr.grant_reader(name) FROM PUBLIC;
