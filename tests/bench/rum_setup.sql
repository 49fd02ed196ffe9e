-- The RUM arrangement measured by index_bench (`rum` cases): tags with
-- created_at attached, so `ORDER BY created_at <=| anchor` is served by the
-- index in order. Drop with `DROP INDEX nostr.events_tags_rum`.
\timing on
CREATE EXTENSION IF NOT EXISTS rum;
DROP INDEX IF EXISTS nostr.events_tags_rum;
SET maintenance_work_mem = '1GB';
CREATE INDEX events_tags_rum ON nostr.events
    USING rum (tags rum_anyarray_addon_ops, created_at) WITH (attach = 'created_at', to = 'tags');
VACUUM (ANALYZE) nostr.events;
SELECT pg_size_pretty(pg_relation_size('nostr.events_tags_rum')) AS rum_index_size,
       pg_size_pretty(pg_relation_size('nostr.events_tags_idx')) AS gin_index_size,
       pg_size_pretty(pg_relation_size('nostr.event_tags') + pg_relation_size('nostr.event_tags_idx')) AS side_table_and_index;
