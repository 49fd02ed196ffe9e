-- sql/schema.sql's indexes on nostr.events and nostr.event_tags, but the
-- NIP-50 search index (see run.sh: it costs the same in both layouts, no
-- query case reads it, and building it twice at 10M would not fit the study).
SET maintenance_work_mem = '1GB';
ALTER TABLE part_flat.events ADD CONSTRAINT events_pkey PRIMARY KEY (id);
CREATE UNIQUE INDEX ON part_flat.events (seq);
CREATE UNIQUE INDEX events_address_idx ON part_flat.events (pubkey, kind, d_key) WHERE d_key IS NOT NULL;
CREATE INDEX ON part_flat.events (created_at DESC, id);
CREATE INDEX ON part_flat.events (pubkey, created_at DESC, id);
CREATE INDEX ON part_flat.events (pubkey, kind, created_at DESC, id);
CREATE INDEX ON part_flat.events (kind, created_at DESC, id);
CREATE INDEX ON part_flat.events USING gin (tags);
CREATE INDEX ON part_flat.events (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX ON part_flat.event_tags (tag, created_at DESC, id);
CREATE INDEX ON part_flat.event_tags (tag, kind, created_at DESC, id);
