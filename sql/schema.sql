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

-- One sequence for stored and ephemeral events: notifications name ranges of it.
CREATE SEQUENCE nostr.event_seq;

CREATE TABLE nostr.events (
    -- Assigned on insert; names the row in notifications. Not commit order.
    seq         bigint NOT NULL DEFAULT nextval('nostr.event_seq'),
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

-- Ephemeral events (kinds 20000-29999) never enter nostr.events; they wait
-- here only until the notification that names them has been read.
CREATE UNLOGGED TABLE nostr.ephemeral_events (
    seq        bigint NOT NULL DEFAULT nextval('nostr.event_seq') PRIMARY KEY,
    event      nostr.nostr_event NOT NULL,
    stored_at  timestamptz NOT NULL DEFAULT now()
);

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
CREATE FUNCTION nostr.req(filters jsonb) RETURNS SETOF nostr.nostr_event
    LANGUAGE sql STABLE STRICT AS $$ SELECT nostr.req(filters::text) $$;
CREATE FUNCTION nostr.count(filters jsonb) RETURNS bigint
    LANGUAGE sql STABLE STRICT AS $$ SELECT nostr.count(filters::text) $$;
CREATE FUNCTION nostr.matches(event nostr.nostr_event, filter jsonb) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT nostr.matches(event, filter::text) $$;
