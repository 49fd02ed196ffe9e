-- The two layouts under study, with identical columns (nostr.events and
-- nostr.event_tags of sql/schema.sql; `event` as the JSON text, see
-- derive.py). Tables only: load_*.sql fill them, indexes_*.sql index them.

-- part_flat: today's layout.
CREATE SCHEMA part_flat;
CREATE TABLE part_flat.events (
    seq bigint NOT NULL, id bytea NOT NULL, pubkey bytea NOT NULL, created_at bigint NOT NULL,
    kind integer NOT NULL, tags text[] NOT NULL, d_key text, expires_at bigint, event text NOT NULL
);
CREATE TABLE part_flat.event_tags (tag text NOT NULL, kind integer NOT NULL, created_at bigint NOT NULL, id bytea NOT NULL);
