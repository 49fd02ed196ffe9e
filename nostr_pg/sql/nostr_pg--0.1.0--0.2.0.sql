-- nostr_pg 0.1.0 -> 0.2.0 (ALTER EXTENSION nostr_pg UPDATE).
-- Keep the statements in step with what a fresh 0.2.0 install creates:
-- tests/tests/upgrade.rs compares the two schemas object by object.
\echo Use "ALTER EXTENSION nostr_pg UPDATE" to load this file. \quit

-- 1. Gone in 0.2.0: ranges of seq as the unit of live delivery, and the
--    ephemeral-only transit table (nostr.transit replaces both). Functions
--    whose signature changed are dropped here and created again below.
DROP FUNCTION nostr.changes(bigint, bigint);
DROP TABLE nostr.ephemeral_events;
DROP FUNCTION nostr.req(jsonb);
DROP FUNCTION nostr.count(jsonb);
DROP FUNCTION nostr.req(text);
DROP FUNCTION nostr.req_json(text);
DROP FUNCTION nostr.count(text);

-- 2. The library is named for its version since 0.2.0 (nostr_pg-0.2.0.so;
--    0.1.0 was nostr_pg.so): every C function moves to it. Generated with
--    pg_config/rebind-functions.py from the 0.2.0 install script.
CREATE OR REPLACE FUNCTION nostr._tags_json(
	"event" nostr_event
) RETURNS TEXT
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c
AS 'nostr_pg-0.2.0', '_tags_json_wrapper';

CREATE OR REPLACE FUNCTION nostr.content(
	"event" nostr_event
) RETURNS TEXT
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c
AS 'nostr_pg-0.2.0', 'content_wrapper';

CREATE OR REPLACE FUNCTION nostr.created_at(
	"event" nostr_event
) RETURNS bigint
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c
AS 'nostr_pg-0.2.0', 'created_at_wrapper';

CREATE OR REPLACE FUNCTION nostr.events_before_insert() RETURNS TRIGGER
LANGUAGE c AS 'nostr_pg-0.2.0', 'events_before_insert_wrapper';

CREATE OR REPLACE FUNCTION nostr.id(
	"event" nostr_event
) RETURNS TEXT
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c
AS 'nostr_pg-0.2.0', 'id_wrapper';

CREATE OR REPLACE FUNCTION nostr.kind(
	"event" nostr_event
) RETURNS INT
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c
AS 'nostr_pg-0.2.0', 'kind_wrapper';

CREATE OR REPLACE FUNCTION nostr.matches(
	"event" nostr_event,
	"filter" TEXT
) RETURNS bool
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c
AS 'nostr_pg-0.2.0', 'matches_wrapper';

CREATE OR REPLACE FUNCTION nostr.nostr_event_in(
	"input" cstring
) RETURNS nostr_event
IMMUTABLE PARALLEL SAFE
LANGUAGE c
AS 'nostr_pg-0.2.0', 'nostr_event_in_wrapper';

CREATE OR REPLACE FUNCTION nostr.nostr_event_out(
	"input" nostr_event
) RETURNS cstring
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c
AS 'nostr_pg-0.2.0', 'nostr_event_out_wrapper';

CREATE OR REPLACE FUNCTION nostr.pubkey(
	"event" nostr_event
) RETURNS TEXT
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c
AS 'nostr_pg-0.2.0', 'pubkey_wrapper';

CREATE OR REPLACE FUNCTION nostr.publish(
	"event" TEXT,
	"auth_pubkey" TEXT DEFAULT NULL
) RETURNS TABLE (
"id" TEXT,
"accepted" bool,
"message" TEXT
)
VOLATILE SECURITY DEFINER PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'nostr_pg-0.2.0', 'publish_wrapper';

CREATE OR REPLACE FUNCTION nostr.publish_batch(
	"events" TEXT[],
	"auth_pubkeys" TEXT[] DEFAULT NULL
) RETURNS TABLE (
"id" TEXT,
"accepted" bool,
"message" TEXT
)
VOLATILE SECURITY DEFINER PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'nostr_pg-0.2.0', 'publish_batch_wrapper';

CREATE OR REPLACE FUNCTION nostr.search_text(
	"event" nostr_event
) RETURNS TEXT
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c
AS 'nostr_pg-0.2.0', 'search_text_wrapper';

CREATE OR REPLACE FUNCTION nostr.sig(
	"event" nostr_event
) RETURNS TEXT
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c
AS 'nostr_pg-0.2.0', 'sig_wrapper';

CREATE OR REPLACE FUNCTION nostr.tag_values(
	"event" nostr_event,
	"name" TEXT
) RETURNS TEXT[]
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c
AS 'nostr_pg-0.2.0', 'tag_values_wrapper';

-- 3. New or changed C functions.
CREATE FUNCTION nostr.req(
	"filters" TEXT,
	"viewers" TEXT[] DEFAULT NULL
) RETURNS SETOF nostr_event
STABLE PARALLEL SAFE
LANGUAGE c
AS 'nostr_pg-0.2.0', 'req_wrapper';

CREATE FUNCTION nostr.req_json(
	"filters" TEXT,
	"viewers" TEXT[] DEFAULT NULL
) RETURNS SETOF TEXT
STABLE PARALLEL SAFE
LANGUAGE c
AS 'nostr_pg-0.2.0', 'req_json_wrapper';

CREATE FUNCTION nostr.count(
	"filters" TEXT,
	"viewers" TEXT[] DEFAULT NULL
) RETURNS bigint
STABLE PARALLEL SAFE
LANGUAGE c
AS 'nostr_pg-0.2.0', 'count_wrapper';

CREATE FUNCTION nostr._filter_plan(
	"filter" TEXT
) RETURNS TEXT
STRICT STABLE PARALLEL SAFE
LANGUAGE c
AS 'nostr_pg-0.2.0', '_filter_plan_wrapper';

-- 4. From sql/schema.sql.
-- Live delivery (nostr_pg/src/notify.rs). Every event a transaction accepts,
-- stored or ephemeral, is also written here, named by that transaction's id;
-- at commit one NOTIFY nostr_events names the transaction. Listeners read
-- what was accepted from here, not from nostr.events, so an event replaced,
-- deleted or expired a moment after it was accepted is still delivered.
-- Rows are transient: nostr.purge_transit() removes them once every listener
-- has had time to read them. UNLOGGED: a crash empties the table, and
-- listeners notice through nostr.live_state().
CREATE UNLOGGED TABLE nostr.transit (
    xid    xid8   NOT NULL DEFAULT pg_current_xact_id(),
    seq    bigint NOT NULL DEFAULT nextval('nostr.event_seq'),
    event  nostr.nostr_event NOT NULL
);
CREATE INDEX transit_xid_idx ON nostr.transit (xid, seq);

-- One row: which incarnation of nostr.transit this is (a crash empties the
-- table and this row with it) and below which transaction ids rows may have
-- been purged. A listener that finds either changed since it last looked
-- cannot fill a gap from nostr.transit and must say so to its subscribers.
CREATE UNLOGGED TABLE nostr.transit_state (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    epoch         bigint  NOT NULL,
    purged_below  xid8    NOT NULL
);
-- The oldest running transaction at the time of each purge: a purge only
-- removes rows of transactions that had finished `retention` before it.
CREATE UNLOGGED TABLE nostr.transit_horizons (
    taken_at    timestamptz NOT NULL,
    oldest_xid  xid8        NOT NULL
);

-- The state row, created anew (with a new epoch) when the table is new or a
-- crash emptied it: a listener that knew the old epoch then knows that what
-- it had not read yet is gone.
CREATE FUNCTION nostr.live_state(OUT epoch bigint, OUT purged_below xid8)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    SELECT s.epoch, s.purged_below INTO epoch, purged_below FROM nostr.transit_state s;
    IF NOT FOUND THEN
        INSERT INTO nostr.transit_state (epoch, purged_below)
        VALUES (floor(random() * 9.2e18)::bigint, '0')
        ON CONFLICT DO NOTHING;
        SELECT s.epoch, s.purged_below INTO epoch, purged_below FROM nostr.transit_state s;
    END IF;
END $$;
COMMENT ON FUNCTION nostr.live_state() IS
    'Incarnation of nostr.transit and the transaction id below which its rows may be gone.';

-- The events transactions accepted, as canonical JSON, in the order accepted.
CREATE FUNCTION nostr.changes(xids xid8[]) RETURNS TABLE (xid xid8, event text)
    LANGUAGE sql STABLE STRICT AS $$
    SELECT t.xid, t.event::text FROM nostr.transit t WHERE t.xid = ANY (xids) ORDER BY t.seq
$$;
COMMENT ON FUNCTION nostr.changes(xid8[]) IS
    'Events accepted by the transactions a nostr_events notification names.';

-- Transactions that accepted events and committed after snapshot `since` and
-- before snapshot `upto` (taken later): what a listener that was up to date
-- at `since` must have seen by `upto`.
CREATE FUNCTION nostr.committed_between(since pg_snapshot, upto pg_snapshot) RETURNS SETOF xid8
    LANGUAGE sql STABLE STRICT AS $$
    SELECT t.xid FROM nostr.transit t
    WHERE t.xid >= pg_snapshot_xmin(since)
      AND pg_visible_in_snapshot(t.xid, upto)
      AND NOT pg_visible_in_snapshot(t.xid, since)
    GROUP BY t.xid ORDER BY t.xid
$$;
COMMENT ON FUNCTION nostr.committed_between(pg_snapshot, pg_snapshot) IS
    'Transactions that accepted events, committed after snapshot since and before snapshot upto.';

-- Removes transit rows of transactions that finished at least `retention`
-- ago. Skips (returns 0) when another session is purging.
CREATE FUNCTION nostr.purge_transit(retention interval DEFAULT '5 minutes') RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cutoff   timestamptz;
    horizon  xid8;
    n        bigint;
BEGIN
    PERFORM nostr.live_state();
    PERFORM 1 FROM nostr.transit_state FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    INSERT INTO nostr.transit_horizons VALUES (now(), pg_snapshot_xmin(pg_current_snapshot()));
    SELECT h.taken_at, h.oldest_xid INTO cutoff, horizon FROM nostr.transit_horizons h
    WHERE h.taken_at <= now() - retention ORDER BY h.taken_at DESC LIMIT 1;
    IF horizon IS NULL THEN
        RETURN 0;
    END IF;
    DELETE FROM nostr.transit_horizons WHERE taken_at < cutoff;
    UPDATE nostr.transit_state SET purged_below = greatest(purged_below, horizon);
    DELETE FROM nostr.transit WHERE xid < horizon;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

-- Filters as jsonb, for SQL users.
CREATE FUNCTION nostr.req(filters jsonb, viewers text[] DEFAULT NULL) RETURNS SETOF nostr.nostr_event
    LANGUAGE sql STABLE AS $$ SELECT nostr.req(filters::text, viewers) $$;
CREATE FUNCTION nostr.count(filters jsonb, viewers text[] DEFAULT NULL) RETURNS bigint
    LANGUAGE sql STABLE AS $$ SELECT nostr.count(filters::text, viewers) $$;

-- 5. From sql/privileges.sql (run last in a fresh install); publish and
--    publish_batch became SECURITY DEFINER in section 2.

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
-- (nostr.changes, nostr.committed_between: the transit table), and check in
-- (nostr.live_state). LISTEN, pg_current_snapshot() and
-- pg_current_xact_id_if_assigned() need no grant.
CREATE FUNCTION nostr.grant_relay(grantee name) RETURNS void
    LANGUAGE plpgsql VOLATILE STRICT SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA nostr TO %I', grantee);
    EXECUTE format('GRANT SELECT ON nostr.events, nostr.event_tags, nostr.transit TO %I', grantee);
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
