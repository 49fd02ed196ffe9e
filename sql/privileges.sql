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
REVOKE EXECUTE ON FUNCTION nostr.publish_batch(text[], text[], inet[]) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION nostr._publish_batch(text[], text[], text[]) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION nostr.publish(text, text) FROM PUBLIC;
-- Creates the transit state row when missing; the relay's listener calls it.
REVOKE EXECUTE ON FUNCTION nostr.live_state() FROM PUBLIC;
-- Called by the insert trigger (as the owner, inside publish_batch). Anyone
-- else calling it with a short retention could purge live events before the
-- listeners read them.
REVOKE EXECUTE ON FUNCTION nostr.purge_transit(interval) FROM PUBLIC;

-- Moderation (sql/moderation.sql): the functions write and read the
-- moderation tables with the owner's rights; only superusers and the relay's
-- role (the NIP-86 endpoint, which authenticates its admins) may call them.
-- The locks and the invalidation are for those functions and the tables'
-- triggers only.
REVOKE EXECUTE ON FUNCTION
    nostr.ban_pubkey(text, text), nostr.unban_pubkey(text),
    nostr.allow_pubkey(text, text), nostr.unallow_pubkey(text),
    nostr.list_banned_pubkeys(), nostr.list_allowed_pubkeys(),
    nostr.ban_event(text, text), nostr.unban_event(text),
    nostr.allow_event(text, text), nostr.unallow_event(text),
    nostr.list_banned_events(), nostr.list_allowed_events(),
    nostr.list_events_needing_moderation(),
    nostr.allow_kind(integer), nostr.disallow_kind(integer),
    nostr.list_allowed_kinds(), nostr.list_disallowed_kinds(),
    nostr.block_ip(inet, text), nostr.unblock_ip(inet), nostr.list_blocked_ips(), nostr.ip_blocked(inet),
    nostr.set_relay_info(text, text), nostr.relay_info(),
    nostr._lock_author(bytea), nostr._lock_id(bytea), nostr._invalidate_moderation(oid)
FROM PUBLIC;

-- What a gateway needs, and no more: publish (through every rule), read
-- events (nostr.req_json, nostr.count), read what notifications name
-- (nostr.changes, nostr.committed_between: the transit table), see which
-- incarnation of it a REQ read in (transit_state), and check in
-- (nostr.live_state). LISTEN, pg_current_snapshot() and
-- pg_current_xact_id_if_assigned() need no grant. And moderation: the
-- gateway serves NIP-86 (and reads nostr.relay_info() for NIP-11).
CREATE FUNCTION nostr.grant_relay(grantee name) RETURNS void
    LANGUAGE plpgsql VOLATILE STRICT SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA nostr TO %I', grantee);
    EXECUTE format('GRANT SELECT ON nostr.events, nostr.event_tags, nostr.transit, nostr.transit_state TO %I', grantee);
    EXECUTE format(
        'GRANT EXECUTE ON FUNCTION nostr.publish_batch(text[], text[], inet[]), nostr.publish(text, text), '
        'nostr.live_state() TO %I', grantee);
    EXECUTE format(
        'GRANT EXECUTE ON FUNCTION '
        'nostr.ban_pubkey(text, text), nostr.unban_pubkey(text), '
        'nostr.allow_pubkey(text, text), nostr.unallow_pubkey(text), '
        'nostr.list_banned_pubkeys(), nostr.list_allowed_pubkeys(), '
        'nostr.ban_event(text, text), nostr.unban_event(text), '
        'nostr.allow_event(text, text), nostr.unallow_event(text), '
        'nostr.list_banned_events(), nostr.list_allowed_events(), '
        'nostr.list_events_needing_moderation(), '
        'nostr.allow_kind(integer), nostr.disallow_kind(integer), '
        'nostr.list_allowed_kinds(), nostr.list_disallowed_kinds(), '
        'nostr.block_ip(inet, text), nostr.unblock_ip(inet), nostr.list_blocked_ips(), nostr.ip_blocked(inet), '
        'nostr.set_relay_info(text, text), nostr.relay_info() TO %I', grantee);
END $$;
COMMENT ON FUNCTION nostr.grant_relay(name) IS
    'Grants a role what the nostr_pg gateway needs: publish through the rules, read events and live changes, moderate (NIP-86).';

-- Read-only SQL access: nostr.req, nostr.count, nostr.matches and SELECT on
-- the stored events, and the relay's public name and description. No write
-- of any kind, and no moderation.
CREATE FUNCTION nostr.grant_reader(grantee name) RETURNS void
    LANGUAGE plpgsql VOLATILE STRICT SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA nostr TO %I', grantee);
    EXECUTE format('GRANT SELECT ON nostr.events, nostr.event_tags TO %I', grantee);
    EXECUTE format('GRANT EXECUTE ON FUNCTION nostr.relay_info() TO %I', grantee);
END $$;
COMMENT ON FUNCTION nostr.grant_reader(name) IS
    'Grants a role read-only SQL access to the stored events.';

-- Granting is the owner's business: without this, a role that may not grant
-- would get only a warning ("no privileges were granted") from GRANT.
REVOKE EXECUTE ON FUNCTION nostr.grant_relay(name) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION nostr.grant_reader(name) FROM PUBLIC;
