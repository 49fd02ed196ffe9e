-- nostr_pg storage: tables, indexes and triggers. Shipped inside the
-- extension (pulled in at build time by extension_sql_file!). The publish
-- rules themselves are in Rust (nostr_pg/src/rules.rs), run by the insert
-- trigger below, so every way into nostr.events obeys them.

-- jsonb goes through text both ways, so every path shares the text input's
-- validation and jsonb's own limits (no U+0000) give Postgres' own errors.
CREATE FUNCTION nostr.nostr_event_from_jsonb(jsonb) RETURNS nostr.nostr_event
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT $1::text::nostr.nostr_event $$;
CREATE FUNCTION nostr.nostr_event_to_jsonb(nostr.nostr_event) RETURNS jsonb
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT $1::text::jsonb $$;
CREATE CAST (jsonb AS nostr.nostr_event) WITH FUNCTION nostr.nostr_event_from_jsonb(jsonb);
CREATE CAST (nostr.nostr_event AS jsonb) WITH FUNCTION nostr.nostr_event_to_jsonb(nostr.nostr_event);

-- The tags as jsonb (an array of arrays of strings).
CREATE FUNCTION nostr.tags(nostr.nostr_event) RETURNS jsonb
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT nostr._tags_json($1)::jsonb $$;

-- One sequence for stored and ephemeral events: the order in which they were
-- accepted within a transaction (not commit order across transactions).
CREATE SEQUENCE nostr.event_seq;

CREATE TABLE nostr.events (
    -- Assigned by the insert trigger when the event is accepted (no default:
    -- a row that brings its own seq is a restored one, see
    -- nostr_pg/src/restore.rs). Not commit order.
    seq         bigint NOT NULL,
    -- Everything below but `event` is derived from `event` by the insert
    -- trigger; values written by callers are ignored.
    id          bytea  NOT NULL,
    pubkey      bytea  NOT NULL,
    created_at  bigint NOT NULL,
    kind        integer NOT NULL,
    -- Index keys of single-letter tags: 'e:<value>', or 'e#<sha256>' for values
    -- over 256 bytes or holding U+0000 (see nostr_pg_core::tags).
    tags        text[] NOT NULL,
    -- Replaceable address: '' for kinds 0, 3, 10000-19999; the 'd' tag key for
    -- 30000-39999; NULL otherwise.
    d_key       text,
    -- NIP-40 expiration, if any.
    expires_at  bigint,
    -- The verified event; its text form is the exact canonical JSON.
    event       nostr.nostr_event NOT NULL,
    CONSTRAINT events_pkey PRIMARY KEY (id)
);
COMMENT ON TABLE nostr.events IS 'Stored Nostr events. INSERT (event) VALUES (''{...}'') runs every publish rule.';

CREATE UNIQUE INDEX events_seq_idx ON nostr.events (seq);
-- Replaceable and addressable events: at most one per address, whatever races.
CREATE UNIQUE INDEX events_address_idx ON nostr.events (pubkey, kind, d_key) WHERE d_key IS NOT NULL;
CREATE INDEX events_created_idx ON nostr.events (created_at DESC, id);
CREATE INDEX events_author_idx ON nostr.events (pubkey, created_at DESC, id);
CREATE INDEX events_author_kind_idx ON nostr.events (pubkey, kind, created_at DESC, id);
CREATE INDEX events_kind_idx ON nostr.events (kind, created_at DESC, id);
-- Tag containment for any combination of tag conditions (`tags && ...`).
CREATE INDEX events_tags_idx ON nostr.events USING gin (tags);
CREATE INDEX events_expires_idx ON nostr.events (expires_at) WHERE expires_at IS NOT NULL;
-- NIP-50 search, over the kinds whose content is prose. The predicate must
-- match nostr_pg/src/query/plan.rs (UNSEARCHED_KINDS_SQL) and
-- nostr_pg_core::kind::UNSEARCHED: reactions and contact lists are over a
-- third of all events and would cost a sixth of ingest for nothing.
CREATE INDEX events_search_idx ON nostr.events USING gin (to_tsvector('simple', nostr.search_text(event)))
    WHERE kind NOT IN (3, 4, 5, 6, 7, 1059, 9735);

-- "Latest N with tag X" as one ordered range scan, however popular X is: GIN
-- returns unordered bitmaps that must be sorted in full. Maintained by the
-- triggers on nostr.events.
CREATE TABLE nostr.event_tags (
    tag         text    NOT NULL,
    kind        integer NOT NULL,
    created_at  bigint  NOT NULL,
    id          bytea   NOT NULL
);
CREATE INDEX event_tags_idx ON nostr.event_tags (tag, created_at DESC, id);
-- Tag and kinds together (reactions to a note, mentions of a pubkey in notes):
-- without it a popular tag with a rare kind walks every event of the tag.
CREATE INDEX event_tags_kind_idx ON nostr.event_tags (tag, kind, created_at DESC, id);

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

-- Moves nostr.transit_state.purged_below up to the oldest transaction still
-- running `retention` ago (from the horizons taken at each call): rows below
-- it belong to transactions that finished at least `retention` ago and may
-- be removed. Returns the new value, or NULL when nothing moved or another
-- session is purging (it holds the state row until its transaction ends).
CREATE FUNCTION nostr._advance_transit_horizon(retention interval) RETURNS xid8
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cutoff   timestamptz;
    horizon  xid8;
BEGIN
    PERFORM nostr.live_state();
    PERFORM 1 FROM nostr.transit_state FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    INSERT INTO nostr.transit_horizons VALUES (now(), pg_snapshot_xmin(pg_current_snapshot()));
    SELECT h.taken_at, h.oldest_xid INTO cutoff, horizon FROM nostr.transit_horizons h
    WHERE h.taken_at <= now() - retention ORDER BY h.taken_at DESC LIMIT 1;
    IF horizon IS NULL THEN
        RETURN NULL;
    END IF;
    DELETE FROM nostr.transit_horizons WHERE taken_at < cutoff;
    UPDATE nostr.transit_state SET purged_below = greatest(purged_below, horizon)
    RETURNING purged_below INTO horizon;
    RETURN horizon;
END $$;
-- Its callers are nostr.purge_transit (for any role, with its owner's rights)
-- and housekeeping; a role calling it directly could pass any retention.
REVOKE EXECUTE ON FUNCTION nostr._advance_transit_horizon(interval) FROM PUBLIC;

-- Removes transit rows of transactions that finished at least `retention`
-- ago. Skips (returns 0) when another session is purging.
CREATE FUNCTION nostr.purge_transit(retention interval DEFAULT '5 minutes') RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    horizon  xid8;
    n        bigint;
BEGIN
    horizon := nostr._advance_transit_horizon(retention);
    IF horizon IS NULL THEN
        RETURN 0;
    END IF;
    DELETE FROM nostr.transit WHERE xid < horizon;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

-- NIP-09: ids deleted by their author (checked against the author of any
-- later copy), and addresses deleted up to a timestamp.
CREATE TABLE nostr.deleted_ids (
    id          bytea NOT NULL,
    pubkey      bytea NOT NULL,
    deleted_by  bytea NOT NULL,
    PRIMARY KEY (id, pubkey)
);
CREATE TABLE nostr.deleted_addresses (
    pubkey            bytea   NOT NULL,
    kind              integer NOT NULL,
    d_key             text    NOT NULL,
    until_created_at  bigint  NOT NULL,
    PRIMARY KEY (pubkey, kind, d_key)
);

-- NIP-62: authors who asked to vanish, and up to when.
CREATE TABLE nostr.vanished (
    pubkey            bytea  NOT NULL PRIMARY KEY,
    until_created_at  bigint NOT NULL
);

CREATE TRIGGER events_before_insert BEFORE INSERT ON nostr.events
    FOR EACH ROW EXECUTE FUNCTION nostr.events_before_insert();
-- Keeps nostr.event_tags in step with deletes by any path.
CREATE FUNCTION nostr._events_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM nostr.event_tags
    WHERE tag = ANY (OLD.tags) AND created_at = OLD.created_at AND id = OLD.id;
    RETURN NULL;
END $$;
CREATE TRIGGER events_after_delete AFTER DELETE ON nostr.events
    FOR EACH ROW EXECUTE FUNCTION nostr._events_after_delete();

-- Events are immutable: an update could bypass every rule.
CREATE FUNCTION nostr._refuse_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'nostr.events rows are immutable; delete and publish instead'
        USING ERRCODE = 'feature_not_supported';
END $$;
CREATE TRIGGER events_no_update BEFORE UPDATE ON nostr.events
    FOR EACH ROW EXECUTE FUNCTION nostr._refuse_update();

CREATE FUNCTION nostr._truncate_tags() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- `TRUNCATE nostr.events, nostr.event_tags` has emptied it already (and
    -- truncating it again inside that statement would fail).
    IF EXISTS (SELECT 1 FROM nostr.event_tags) THEN
        TRUNCATE nostr.event_tags;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER events_truncate AFTER TRUNCATE ON nostr.events
    FOR EACH STATEMENT EXECUTE FUNCTION nostr._truncate_tags();

-- NIP-40: expired events are never served; this removes them for good.
CREATE FUNCTION nostr.purge_expired() RETURNS bigint LANGUAGE sql AS $$
    WITH gone AS (
        DELETE FROM nostr.events
        WHERE expires_at IS NOT NULL AND expires_at <= extract(epoch FROM now())::bigint
        RETURNING 1
    )
    SELECT count(*) FROM gone;
$$;

-- Filters as jsonb, for SQL users.
CREATE FUNCTION nostr.req(filters jsonb, viewers text[] DEFAULT NULL) RETURNS SETOF nostr.nostr_event
    LANGUAGE sql STABLE AS $$ SELECT nostr.req(filters::text, viewers) $$;
CREATE FUNCTION nostr.count(filters jsonb, viewers text[] DEFAULT NULL) RETURNS bigint
    LANGUAGE sql STABLE AS $$ SELECT nostr.count(filters::text, viewers) $$;
CREATE FUNCTION nostr.matches(event nostr.nostr_event, filter jsonb) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT nostr.matches(event, filter::text) $$;

-- Backups: pg_dump includes the rows of these tables and the position of the
-- sequence (extension-owned objects are otherwise left to CREATE EXTENSION,
-- which would restore an empty relay). A restore runs CREATE EXTENSION, then
-- loads the rows with COPY, through the insert trigger, which stores them as
-- they were, without the publish rules (nostr_pg/src/restore.rs).
-- nostr.event_tags is not dumped: the trigger rebuilds it from each restored
-- event. That costs no more than loading it (100k events: 17 s of backend CPU
-- either way), keeps dumps a third smaller, and the index can never
-- disagree with the events it indexes.
-- The live-delivery tables (nostr.transit, transit_state, transit_horizons)
-- are deliberately left out: their rows are named by transaction ids of the
-- cluster that wrote them, which mean nothing (or something else) in the
-- restored one, and they only matter to listeners connected at the time.
-- A restored database starts a new transit epoch, as after a crash.
SELECT pg_catalog.pg_extension_config_dump('nostr.events', '');
SELECT pg_catalog.pg_extension_config_dump('nostr.deleted_ids', '');
SELECT pg_catalog.pg_extension_config_dump('nostr.deleted_addresses', '');
SELECT pg_catalog.pg_extension_config_dump('nostr.vanished', '');
SELECT pg_catalog.pg_extension_config_dump('nostr.event_seq', '');
-- The triggers keep the table's invariants (the rules, nostr.event_tags), so
-- they fire under session_replication_role = replica too (a superuser's way
-- to load data without triggers): a restore run that way still rebuilds
-- nostr.event_tags, and an ordinary insert still obeys the rules.
ALTER TABLE nostr.events ENABLE ALWAYS TRIGGER events_before_insert;
ALTER TABLE nostr.events ENABLE ALWAYS TRIGGER events_after_delete;
ALTER TABLE nostr.events ENABLE ALWAYS TRIGGER events_no_update;
ALTER TABLE nostr.events ENABLE ALWAYS TRIGGER events_truncate;
