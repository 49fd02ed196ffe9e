-- nostr_pg moderation: who and what may publish, kept in tables of the
-- extension, so psql, the NIP-86 endpoint of every gateway and the publish
-- rules agree at once. The rules read these tables in the insert trigger
-- (nostr_pg/src/moderation.rs), so a ban holds for nostr.publish,
-- nostr.publish_batch, plain INSERT/COPY and imports alike.
--
-- Pubkeys and ids are given as 64 hex characters and listed in lower case.
-- Every function here runs with the extension owner's rights (SECURITY
-- DEFINER, fixed search_path) and is executable only by superusers and the
-- roles nostr.grant_relay names (sql/privileges.sql): the gateway is the
-- NIP-86 endpoint and authenticates its admins itself. Nobody else may write
-- these tables.

-- Banned authors: their events are refused (blocked:) and deleted.
CREATE TABLE nostr.banned_pubkeys (
    pubkey     bytea       PRIMARY KEY CHECK (length(pubkey) = 32),
    reason     text,
    banned_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE nostr.banned_pubkeys IS
    'Moderation: authors whose events are refused (blocked:) and were deleted. Write through nostr.ban_pubkey / nostr.unban_pubkey.';

-- The allow list: while it has a row, only these authors may publish.
CREATE TABLE nostr.allowed_pubkeys (
    pubkey      bytea       PRIMARY KEY CHECK (length(pubkey) = 32),
    reason      text,
    allowed_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE nostr.allowed_pubkeys IS
    'Moderation: the allow list; while it has rows, only these authors may publish. Write through nostr.allow_pubkey / nostr.unallow_pubkey.';

-- Banned events: deleted, and refused (blocked:) if published again.
CREATE TABLE nostr.banned_events (
    id         bytea       PRIMARY KEY CHECK (length(id) = 32),
    reason     text,
    banned_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE nostr.banned_events IS
    'Moderation: events deleted and refused ever after (blocked:). Write through nostr.ban_event.';

-- Events a moderator reviewed and kept: off the moderation list.
CREATE TABLE nostr.allowed_events (
    id          bytea       PRIMARY KEY CHECK (length(id) = 32),
    reason      text,
    allowed_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE nostr.allowed_events IS
    'Moderation: events reviewed and kept (no longer listed by nostr.list_events_needing_moderation). Write through nostr.allow_event.';

-- Kinds: while allowed_kinds has a row, only those kinds are accepted; a
-- kind in disallowed_kinds is always refused.
CREATE TABLE nostr.allowed_kinds (
    kind  integer PRIMARY KEY CHECK (kind BETWEEN 0 AND 65535)
);
COMMENT ON TABLE nostr.allowed_kinds IS
    'Moderation: while it has rows, only these kinds are accepted. Write through nostr.allow_kind / nostr.disallow_kind.';
CREATE TABLE nostr.disallowed_kinds (
    kind  integer PRIMARY KEY CHECK (kind BETWEEN 0 AND 65535)
);
COMMENT ON TABLE nostr.disallowed_kinds IS
    'Moderation: kinds always refused (blocked:). Write through nostr.disallow_kind / nostr.allow_kind.';

-- Blocked client addresses and networks.
CREATE TABLE nostr.blocked_ips (
    ip          cidr        PRIMARY KEY,
    reason      text,
    blocked_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX blocked_ips_net_idx ON nostr.blocked_ips USING gist (ip inet_ops);
COMMENT ON TABLE nostr.blocked_ips IS
    'Moderation: client addresses and networks whose events are refused (blocked:). Write through nostr.block_ip / nostr.unblock_ip.';

-- What NIP-11 and the home page say about the relay, where set here (NULL:
-- the gateway's configuration decides). One row at most, made on first use.
CREATE TABLE nostr.relay_details (
    singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    name         text,
    description  text,
    icon         text
);
COMMENT ON TABLE nostr.relay_details IS
    'The relay''s name, description and icon as set by nostr.set_relay_info (NULL: the gateway''s configuration).';

-- Each write to a moderation table tells every backend (at its commit) that
-- its cached "which of these tables have rows" is stale, so the publish
-- rules skip the empty ones without looking (nostr_pg/src/moderation.rs).
CREATE FUNCTION nostr._moderation_changed() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM nostr._invalidate_moderation(TG_RELID);
    RETURN NULL;
END $$;
COMMENT ON FUNCTION nostr._moderation_changed() IS
    'Internal: statement trigger of the moderation tables; makes every backend read them anew.';
CREATE TRIGGER banned_pubkeys_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON nostr.banned_pubkeys
    FOR EACH STATEMENT EXECUTE FUNCTION nostr._moderation_changed();
CREATE TRIGGER allowed_pubkeys_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON nostr.allowed_pubkeys
    FOR EACH STATEMENT EXECUTE FUNCTION nostr._moderation_changed();
CREATE TRIGGER banned_events_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON nostr.banned_events
    FOR EACH STATEMENT EXECUTE FUNCTION nostr._moderation_changed();
CREATE TRIGGER allowed_kinds_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON nostr.allowed_kinds
    FOR EACH STATEMENT EXECUTE FUNCTION nostr._moderation_changed();
CREATE TRIGGER disallowed_kinds_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON nostr.disallowed_kinds
    FOR EACH STATEMENT EXECUTE FUNCTION nostr._moderation_changed();
CREATE TRIGGER blocked_ips_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON nostr.blocked_ips
    FOR EACH STATEMENT EXECUTE FUNCTION nostr._moderation_changed();
ALTER TABLE nostr.banned_pubkeys ENABLE ALWAYS TRIGGER banned_pubkeys_changed;
ALTER TABLE nostr.allowed_pubkeys ENABLE ALWAYS TRIGGER allowed_pubkeys_changed;
ALTER TABLE nostr.banned_events ENABLE ALWAYS TRIGGER banned_events_changed;
ALTER TABLE nostr.allowed_kinds ENABLE ALWAYS TRIGGER allowed_kinds_changed;
ALTER TABLE nostr.disallowed_kinds ENABLE ALWAYS TRIGGER disallowed_kinds_changed;
ALTER TABLE nostr.blocked_ips ENABLE ALWAYS TRIGGER blocked_ips_changed;

-- 64 hex characters (either case) as 32 bytes; anything else is an error
-- that says what was expected.
CREATE FUNCTION nostr._hex32(value text, what text) RETURNS bytea
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF value IS NULL OR value !~ '^[0-9a-fA-F]{64}$' THEN
        RAISE EXCEPTION 'invalid %: expected 64 hex characters, got %', what, coalesce(quote_literal(value), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN decode(value, 'hex');
END $$;
COMMENT ON FUNCTION nostr._hex32(text, text) IS
    'Internal: 64 hex characters as 32 bytes, or an invalid_parameter_value error naming what was expected.';

CREATE FUNCTION nostr._check_kind(kind integer) RETURNS integer
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF kind IS NULL OR kind < 0 OR kind > 65535 THEN
        RAISE EXCEPTION 'invalid kind: expected 0 to 65535, got %', coalesce(kind::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN kind;
END $$;
COMMENT ON FUNCTION nostr._check_kind(integer) IS
    'Internal: the kind if it is one (0 to 65535), else an invalid_parameter_value error.';

-- Pubkeys ------------------------------------------------------------------

CREATE FUNCTION nostr.ban_pubkey(pubkey text, reason text DEFAULT NULL) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    k bytea := nostr._hex32(pubkey, 'pubkey');
BEGIN
    -- Waits for the author's events being published right now to commit, so
    -- the delete below sees them and later ones see the ban.
    PERFORM nostr._lock_author(k);
    INSERT INTO nostr.banned_pubkeys AS b (pubkey, reason) VALUES (k, ban_pubkey.reason)
    ON CONFLICT ON CONSTRAINT banned_pubkeys_pkey DO UPDATE SET reason = excluded.reason;
    DELETE FROM nostr.allowed_pubkeys a WHERE a.pubkey = k;
    DELETE FROM nostr.events e WHERE e.pubkey = k;
END $$;
COMMENT ON FUNCTION nostr.ban_pubkey(text, text) IS
    'NIP-86 banpubkey: refuses the author''s events from now on (blocked:), deletes those stored, takes it off the allow list.';

CREATE FUNCTION nostr.unban_pubkey(pubkey text) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    k bytea := nostr._hex32(pubkey, 'pubkey');
BEGIN
    DELETE FROM nostr.banned_pubkeys b WHERE b.pubkey = k;
END $$;
COMMENT ON FUNCTION nostr.unban_pubkey(text) IS
    'NIP-86 unbanpubkey: lifts a ban (deleted events stay deleted; the allow list is not changed).';

CREATE FUNCTION nostr.allow_pubkey(pubkey text, reason text DEFAULT NULL) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    k bytea := nostr._hex32(pubkey, 'pubkey');
BEGIN
    DELETE FROM nostr.banned_pubkeys b WHERE b.pubkey = k;
    INSERT INTO nostr.allowed_pubkeys AS a (pubkey, reason) VALUES (k, allow_pubkey.reason)
    ON CONFLICT ON CONSTRAINT allowed_pubkeys_pkey DO UPDATE SET reason = excluded.reason;
END $$;
COMMENT ON FUNCTION nostr.allow_pubkey(text, text) IS
    'NIP-86 allowpubkey: lifts a ban and puts the author on the allow list (while it is not empty, only listed authors may publish).';

CREATE FUNCTION nostr.unallow_pubkey(pubkey text) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    k bytea := nostr._hex32(pubkey, 'pubkey');
BEGIN
    DELETE FROM nostr.allowed_pubkeys a WHERE a.pubkey = k;
END $$;
COMMENT ON FUNCTION nostr.unallow_pubkey(text) IS
    'NIP-86 unallowpubkey: takes the author off the allow list (without banning it; an empty list allows everyone).';

CREATE FUNCTION nostr.list_banned_pubkeys() RETURNS TABLE (pubkey text, reason text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT encode(b.pubkey, 'hex'), b.reason FROM nostr.banned_pubkeys b ORDER BY b.banned_at, b.pubkey
$$;
COMMENT ON FUNCTION nostr.list_banned_pubkeys() IS
    'NIP-86 listbannedpubkeys: banned authors (hex) with the reason given, oldest ban first.';

CREATE FUNCTION nostr.list_allowed_pubkeys() RETURNS TABLE (pubkey text, reason text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT encode(a.pubkey, 'hex'), a.reason FROM nostr.allowed_pubkeys a ORDER BY a.allowed_at, a.pubkey
$$;
COMMENT ON FUNCTION nostr.list_allowed_pubkeys() IS
    'NIP-86 listallowedpubkeys: the allow list (hex) with the reason given, oldest first.';

-- Events -------------------------------------------------------------------

CREATE FUNCTION nostr.ban_event(id text, reason text DEFAULT NULL) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    k bytea := nostr._hex32(id, 'event id');
BEGIN
    -- Waits for a publish of this very event in flight (it holds the id's
    -- lock until commit), so the delete below sees it.
    PERFORM nostr._lock_id(k);
    INSERT INTO nostr.banned_events AS b (id, reason) VALUES (k, ban_event.reason)
    ON CONFLICT ON CONSTRAINT banned_events_pkey DO UPDATE SET reason = excluded.reason;
    DELETE FROM nostr.allowed_events a WHERE a.id = k;
    DELETE FROM nostr.events e WHERE e.id = k;
END $$;
COMMENT ON FUNCTION nostr.ban_event(text, text) IS
    'NIP-86 banevent: deletes the event and refuses it ever after (blocked:); takes it off the allowed (reviewed) list.';

CREATE FUNCTION nostr.unban_event(id text) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    k bytea := nostr._hex32(id, 'event id');
BEGIN
    DELETE FROM nostr.banned_events b WHERE b.id = k;
END $$;
COMMENT ON FUNCTION nostr.unban_event(text) IS
    'NIP-86 unbanevent: the event may be published again (it is not restored).';

CREATE FUNCTION nostr.allow_event(id text, reason text DEFAULT NULL) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    k bytea := nostr._hex32(id, 'event id');
BEGIN
    DELETE FROM nostr.banned_events b WHERE b.id = k;
    INSERT INTO nostr.allowed_events AS a (id, reason) VALUES (k, allow_event.reason)
    ON CONFLICT ON CONSTRAINT allowed_events_pkey DO UPDATE SET reason = excluded.reason;
END $$;
COMMENT ON FUNCTION nostr.allow_event(text, text) IS
    'NIP-86 allowevent: marks the event reviewed (off the moderation list) and lifts a ban of it.';

CREATE FUNCTION nostr.unallow_event(id text) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    k bytea := nostr._hex32(id, 'event id');
BEGIN
    DELETE FROM nostr.allowed_events a WHERE a.id = k;
END $$;
COMMENT ON FUNCTION nostr.unallow_event(text) IS
    'NIP-86 unallowevent: the event is no longer marked reviewed (reports list it again).';

CREATE FUNCTION nostr.list_banned_events() RETURNS TABLE (id text, reason text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT encode(b.id, 'hex'), b.reason FROM nostr.banned_events b ORDER BY b.banned_at, b.id
$$;
COMMENT ON FUNCTION nostr.list_banned_events() IS
    'NIP-86 listbannedevents: banned event ids (hex) with the reason given, oldest ban first.';

CREATE FUNCTION nostr.list_allowed_events() RETURNS TABLE (id text, reason text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT encode(a.id, 'hex'), a.reason FROM nostr.allowed_events a ORDER BY a.allowed_at, a.id
$$;
COMMENT ON FUNCTION nostr.list_allowed_events() IS
    'NIP-86 listallowedevents: events marked reviewed (hex) with the reason given.';

-- Stored events that NIP-56 reports (kind 1984) name in an `e` tag, not yet
-- allowed or banned, one row per event; the reason joins each report's type
-- (the tag's third element) and text, most reported first.
CREATE FUNCTION nostr.list_events_needing_moderation() RETURNS TABLE (id text, reason text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    WITH reported AS (
        SELECT nostr._hex32(tag ->> 1, 'event id') AS target,
               concat_ws(': ', nullif(tag ->> 2, ''), nullif(nostr.content(r.event), '')) AS why,
               r.created_at
        FROM nostr.events r, jsonb_array_elements(nostr.tags(r.event)) AS tag
        WHERE r.kind = 1984 AND tag ->> 0 = 'e' AND (tag ->> 1) ~ '^[0-9a-f]{64}$'
    )
    SELECT encode(p.target, 'hex'),
           coalesce(string_agg(DISTINCT nullif(p.why, ''), '; ' ORDER BY nullif(p.why, '')), 'reported')
    FROM reported p
    WHERE EXISTS (SELECT 1 FROM nostr.events e WHERE e.id = p.target)
      AND NOT EXISTS (SELECT 1 FROM nostr.allowed_events a WHERE a.id = p.target)
      AND NOT EXISTS (SELECT 1 FROM nostr.banned_events b WHERE b.id = p.target)
    GROUP BY p.target
    ORDER BY count(*) DESC, max(p.created_at) DESC, p.target
$$;
COMMENT ON FUNCTION nostr.list_events_needing_moderation() IS
    'NIP-86 listeventsneedingmoderation: stored events reported by NIP-56 reports (kind 1984, e tags), neither allowed nor banned yet; reason: report types and texts.';

-- Kinds --------------------------------------------------------------------

CREATE FUNCTION nostr.allow_kind(kind integer) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    k integer := nostr._check_kind(kind);
BEGIN
    DELETE FROM nostr.disallowed_kinds d WHERE d.kind = k;
    INSERT INTO nostr.allowed_kinds VALUES (k) ON CONFLICT DO NOTHING;
END $$;
COMMENT ON FUNCTION nostr.allow_kind(integer) IS
    'NIP-86 allowkind: puts the kind on the allow list (while it is not empty, only listed kinds are accepted) and off the disallowed list.';

CREATE FUNCTION nostr.disallow_kind(kind integer) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    k integer := nostr._check_kind(kind);
BEGIN
    DELETE FROM nostr.allowed_kinds a WHERE a.kind = k;
    INSERT INTO nostr.disallowed_kinds VALUES (k) ON CONFLICT DO NOTHING;
END $$;
COMMENT ON FUNCTION nostr.disallow_kind(integer) IS
    'NIP-86 disallowkind: the kind is always refused (blocked:) and off the allow list; stored events of it stay.';

CREATE FUNCTION nostr.list_allowed_kinds() RETURNS SETOF integer
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT a.kind FROM nostr.allowed_kinds a ORDER BY a.kind
$$;
COMMENT ON FUNCTION nostr.list_allowed_kinds() IS
    'NIP-86 listallowedkinds: the kind allow list (empty: every kind not disallowed is accepted).';

CREATE FUNCTION nostr.list_disallowed_kinds() RETURNS SETOF integer
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT d.kind FROM nostr.disallowed_kinds d ORDER BY d.kind
$$;
COMMENT ON FUNCTION nostr.list_disallowed_kinds() IS
    'NIP-86 listdisallowedkinds: kinds always refused.';

-- Addresses ----------------------------------------------------------------

CREATE FUNCTION nostr.block_ip(ip inet, reason text DEFAULT NULL) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF ip IS NULL THEN
        RAISE EXCEPTION 'invalid ip: NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO nostr.blocked_ips AS b (ip, reason) VALUES (network(block_ip.ip), block_ip.reason)
    ON CONFLICT ON CONSTRAINT blocked_ips_pkey DO UPDATE SET reason = excluded.reason;
END $$;
COMMENT ON FUNCTION nostr.block_ip(inet, text) IS
    'NIP-86 blockip: refuses events from the address, or from every address of a network (10.0.0.0/8), with blocked:.';

CREATE FUNCTION nostr.unblock_ip(ip inet) RETURNS void
    LANGUAGE sql VOLATILE STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    DELETE FROM nostr.blocked_ips b WHERE b.ip = network($1)
$$;
COMMENT ON FUNCTION nostr.unblock_ip(inet) IS
    'NIP-86 unblockip: removes the address or network exactly as blocked (a host inside a blocked network stays blocked).';

CREATE FUNCTION nostr.list_blocked_ips() RETURNS TABLE (ip text, reason text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN masklen(b.ip) = CASE family(b.ip) WHEN 4 THEN 32 ELSE 128 END
                THEN host(b.ip) ELSE b.ip::text END,
           b.reason
    FROM nostr.blocked_ips b ORDER BY b.blocked_at, b.ip
$$;
COMMENT ON FUNCTION nostr.list_blocked_ips() IS
    'NIP-86 listblockedips: blocked addresses (as 192.0.2.7) and networks (as 10.0.0.0/8) with the reason given.';

CREATE FUNCTION nostr.ip_blocked(addr inet) RETURNS boolean
    LANGUAGE sql STABLE STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM nostr.blocked_ips b WHERE b.ip >>= addr)
$$;
COMMENT ON FUNCTION nostr.ip_blocked(inet) IS
    'Whether a blocked address or network contains addr.';

-- Relay information ----------------------------------------------------------

CREATE FUNCTION nostr.set_relay_info(field text, value text) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF field IS NULL OR field NOT IN ('name', 'description', 'icon') THEN
        RAISE EXCEPTION 'invalid relay info field %: expected name, description or icon',
            coalesce(quote_literal(field), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO nostr.relay_details (singleton) VALUES (true) ON CONFLICT DO NOTHING;
    UPDATE nostr.relay_details d SET
        name = CASE WHEN field = 'name' THEN value ELSE d.name END,
        description = CASE WHEN field = 'description' THEN value ELSE d.description END,
        icon = CASE WHEN field = 'icon' THEN value ELSE d.icon END;
END $$;
COMMENT ON FUNCTION nostr.set_relay_info(text, text) IS
    'NIP-86 changerelayname/description/icon: sets field (name, description or icon) for NIP-11; NULL clears it (the gateway''s configuration applies).';

CREATE FUNCTION nostr.relay_info() RETURNS TABLE (name text, description text, icon text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT d.name, d.description, d.icon
    FROM (SELECT) AS one LEFT JOIN nostr.relay_details d ON true
$$;
COMMENT ON FUNCTION nostr.relay_info() IS
    'The relay''s name, description and icon as set by nostr.set_relay_info: one row, NULL where unset.';

-- pg_dump carries the moderation state with the events (see schema.sql).
SELECT pg_catalog.pg_extension_config_dump('nostr.banned_pubkeys', '');
SELECT pg_catalog.pg_extension_config_dump('nostr.allowed_pubkeys', '');
SELECT pg_catalog.pg_extension_config_dump('nostr.banned_events', '');
SELECT pg_catalog.pg_extension_config_dump('nostr.allowed_events', '');
SELECT pg_catalog.pg_extension_config_dump('nostr.allowed_kinds', '');
SELECT pg_catalog.pg_extension_config_dump('nostr.disallowed_kinds', '');
SELECT pg_catalog.pg_extension_config_dump('nostr.blocked_ips', '');
SELECT pg_catalog.pg_extension_config_dump('nostr.relay_details', '');
