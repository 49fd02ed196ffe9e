-- The same indexes as indexes_flat.sql, as partitioned (per-partition)
-- indexes. What must be unique across partitions is in event_ids and
-- addresses; per partition the primary key includes created_at, as
-- PostgreSQL requires, and the address index is not needed (addresses
-- answers the lookup and keeps the rule).
SET maintenance_work_mem = '1GB';
ALTER TABLE part_time.events ADD PRIMARY KEY (id, created_at);
CREATE INDEX ON part_time.events (seq);
CREATE INDEX ON part_time.events (created_at DESC, id);
CREATE INDEX ON part_time.events (pubkey, created_at DESC, id);
CREATE INDEX ON part_time.events (pubkey, kind, created_at DESC, id);
CREATE INDEX ON part_time.events (kind, created_at DESC, id);
CREATE INDEX ON part_time.events USING gin (tags);
CREATE INDEX ON part_time.events (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX ON part_time.event_tags (tag, created_at DESC, id);
CREATE INDEX ON part_time.event_tags (tag, kind, created_at DESC, id);
ALTER TABLE part_time.event_ids ADD PRIMARY KEY (id);
ALTER TABLE part_time.addresses ADD PRIMARY KEY (pubkey, kind, d_key);
