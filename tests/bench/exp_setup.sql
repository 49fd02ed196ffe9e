-- Experimental arrangements measured by index_bench (`exp` cases). They live
-- in schema `bench`, outside the extension, and are built from the loaded
-- data; drop them with `DROP SCHEMA bench CASCADE`.
\timing on
CREATE SCHEMA IF NOT EXISTS bench;
DROP TABLE IF EXISTS bench.event_tags_k;
-- The side table with the event's kind: one ordered scan per (tag, kind)
-- pair answers "latest N with tag X and kind K" in O(N) however rare K is
-- among X's events.
CREATE TABLE bench.event_tags_k AS
    SELECT t.tag, e.kind, t.created_at, t.id
    FROM nostr.event_tags t JOIN nostr.events e ON e.id = t.id;
CREATE INDEX event_tags_k_idx ON bench.event_tags_k (tag, kind, created_at DESC, id);
VACUUM (ANALYZE) bench.event_tags_k;
SELECT pg_size_pretty(pg_relation_size('bench.event_tags_k_idx')) AS tag_kind_index_size;
