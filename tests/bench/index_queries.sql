-- Queries measured by tests/src/bin/index_bench.rs. Each section is
-- `-- name: NAME (parameter types)` followed by one statement, which the bench
-- PREPAREs with those types and EXECUTEs with values it discovers in the data.
--
-- Shared parameters: $1 the tag key(s), $2 "now" (the expiry check nostr.req
-- adds to every statement), $3 the limit. The `side_*` statements are the ones
-- nostr.req generates for a filter driven by one tag value (query.rs).

-- name: baseline ()
-- A round trip that does nothing: the floor under every latency measured,
-- and how noisy the machine is.
SELECT 1;

-- ---------------------------------------------------------------- discovery

-- name: discover_tags ()
-- Tag keys with the event counts the cases need: the most popular, and the
-- ones closest to 10,000 and to 10 events, per tag letter.
WITH counts AS MATERIALIZED (
    SELECT tag, count(*) AS n FROM nostr.event_tags GROUP BY tag
), picks AS (
    SELECT 'popular' AS what, 10000000 AS target UNION ALL
    SELECT 'medium', 10000 UNION ALL
    SELECT 'rare', 10
)
SELECT l.letter || '_' || p.what AS name, c.tag, c.n
FROM (VALUES ('t'), ('p'), ('e')) AS l(letter)
CROSS JOIN picks p
CROSS JOIN LATERAL (
    SELECT tag, n FROM counts
    WHERE tag LIKE l.letter || ':%'
    ORDER BY abs(n - p.target), tag
    LIMIT 1
) c
ORDER BY 1;

-- name: discover_authors ()
-- The most active author, and one with about 10 events.
WITH counts AS MATERIALIZED (SELECT pubkey, count(*) AS n FROM nostr.events GROUP BY pubkey)
(SELECT encode(pubkey, 'hex'), n FROM counts ORDER BY n DESC, pubkey LIMIT 1)
UNION ALL
(SELECT encode(pubkey, 'hex'), n FROM counts ORDER BY abs(n - 10), pubkey LIMIT 1);

-- name: discover_time ()
SELECT max(created_at) FROM nostr.events;

-- name: discover_ids ()
SELECT encode(id, 'hex') FROM nostr.events WHERE seq % 50000 = 0 ORDER BY seq LIMIT 20;

-- ------------------------------------------------ (a) GIN on events.tags

-- name: gin_tag (text[], bigint, bigint)
SELECT e.created_at, e.id, e.event FROM nostr.events e
WHERE e.tags && $1 AND (e.expires_at IS NULL OR e.expires_at > $2)
ORDER BY e.created_at DESC, e.id LIMIT $3;

-- name: gin_tag_kinds (text[], bigint, bigint, int[])
SELECT e.created_at, e.id, e.event FROM nostr.events e
WHERE e.tags && $1 AND e.kind = ANY ($4) AND (e.expires_at IS NULL OR e.expires_at > $2)
ORDER BY e.created_at DESC, e.id LIMIT $3;

-- name: gin_tag_since (text[], bigint, bigint, bigint)
SELECT e.created_at, e.id, e.event FROM nostr.events e
WHERE e.tags && $1 AND e.created_at >= $4 AND (e.expires_at IS NULL OR e.expires_at > $2)
ORDER BY e.created_at DESC, e.id LIMIT $3;

-- name: gin_tag_until (text[], bigint, bigint, bigint)
SELECT e.created_at, e.id, e.event FROM nostr.events e
WHERE e.tags && $1 AND e.created_at <= $4 AND (e.expires_at IS NULL OR e.expires_at > $2)
ORDER BY e.created_at DESC, e.id LIMIT $3;

-- ------------------------------- (b) ordered side table nostr.event_tags

-- name: side_tag (text, bigint, bigint)
SELECT t.created_at, t.id, e.event FROM nostr.event_tags t JOIN nostr.events e ON e.id = t.id
WHERE t.tag = $1 AND (e.expires_at IS NULL OR e.expires_at > $2)
ORDER BY t.created_at DESC, t.id LIMIT $3;

-- name: side_tag_kinds (text, bigint, bigint, int[])
SELECT t.created_at, t.id, e.event FROM nostr.event_tags t JOIN nostr.events e ON e.id = t.id
WHERE t.tag = $1 AND e.kind = ANY ($4) AND (e.expires_at IS NULL OR e.expires_at > $2)
ORDER BY t.created_at DESC, t.id LIMIT $3;

-- name: side_tag_since (text, bigint, bigint, bigint)
SELECT t.created_at, t.id, e.event FROM nostr.event_tags t JOIN nostr.events e ON e.id = t.id
WHERE t.tag = $1 AND t.created_at >= $4 AND e.created_at >= $4 AND (e.expires_at IS NULL OR e.expires_at > $2)
ORDER BY t.created_at DESC, t.id LIMIT $3;

-- name: side_tag_until (text, bigint, bigint, bigint)
SELECT t.created_at, t.id, e.event FROM nostr.event_tags t JOIN nostr.events e ON e.id = t.id
WHERE t.tag = $1 AND t.created_at <= $4 AND e.created_at <= $4 AND (e.expires_at IS NULL OR e.expires_at > $2)
ORDER BY t.created_at DESC, t.id LIMIT $3;

-- --------------------------------------- (c) RUM (tags, attach created_at)
-- Needs: CREATE INDEX events_tags_rum ON nostr.events
--   USING rum (tags rum_anyarray_addon_ops, created_at) WITH (attach = 'created_at', to = 'tags');
-- `created_at <=| x` is x - created_at for created_at <= x: newest first.
-- $4 is that anchor: far enough ahead of now to cover allowed future events.
-- RUM cannot order ties by id, so the id tie-break of NIP-01 is not applied.

-- name: rum_tag (text[], bigint, bigint, bigint)
SELECT e.created_at, e.id, e.event FROM nostr.events e
WHERE e.tags && $1 AND (e.expires_at IS NULL OR e.expires_at > $2)
ORDER BY e.created_at <=| $4 LIMIT $3;

-- name: rum_tag_kinds (text[], bigint, bigint, bigint, int[])
SELECT e.created_at, e.id, e.event FROM nostr.events e
WHERE e.tags && $1 AND e.kind = ANY ($5) AND (e.expires_at IS NULL OR e.expires_at > $2)
ORDER BY e.created_at <=| $4 LIMIT $3;

-- name: rum_tag_since (text[], bigint, bigint, bigint, bigint)
SELECT e.created_at, e.id, e.event FROM nostr.events e
WHERE e.tags && $1 AND e.created_at >= $5 AND (e.expires_at IS NULL OR e.expires_at > $2)
ORDER BY e.created_at <=| $4 LIMIT $3;

-- name: rum_tag_until (text[], bigint, bigint, bigint)
-- The anchor is `until` itself.
SELECT e.created_at, e.id, e.event FROM nostr.events e
WHERE e.tags && $1 AND e.created_at <= $4 AND (e.expires_at IS NULL OR e.expires_at > $2)
ORDER BY e.created_at <=| $4 LIMIT $3;

-- ------------------------------------ experiments: possible arrangements
-- Need the table made by tests/bench/exp_setup.sql (bench.event_tags_k: the
-- side table with the event's kind, indexed by (tag, kind, created_at)).

-- name: exp_tag_kind (text, bigint, bigint, int)
-- One ordered scan per (tag, kind) pair, as query.rs could do for a filter
-- with tags and kinds.
SELECT t.created_at, t.id, e.event FROM bench.event_tags_k t JOIN nostr.events e ON e.id = t.id
WHERE t.tag = $1 AND t.kind = $4 AND (e.expires_at IS NULL OR e.expires_at > $2)
ORDER BY t.created_at DESC, t.id LIMIT $3;

-- name: exp_gin_and (text[], bigint, bigint)
-- Two tag conditions intersected by GIN (`@>`), then the top N sorted; the
-- OFFSET 0 keeps the planner from walking events_created_idx instead.
SELECT created_at, id, event FROM (
    SELECT e.created_at, e.id, e.event FROM nostr.events e
    WHERE e.tags @> $1 AND (e.expires_at IS NULL OR e.expires_at > $2) OFFSET 0
) m ORDER BY created_at DESC, id LIMIT $3;

-- name: exp_probe (text)
-- How popular a tag is, capped: the price of choosing a filter's driver by
-- selectivity rather than by the number of values.
SELECT count(*) FROM (SELECT 1 FROM nostr.event_tags WHERE tag = $1 LIMIT 1000) s;

-- name: exp_author_tag (bytea, bigint, bigint, text[])
-- {"authors":[a],"#t":[x]} driven by the author instead of the tag.
SELECT e.created_at, e.id, e.event FROM nostr.events e
WHERE e.pubkey = $1 AND e.tags && $4 AND (e.expires_at IS NULL OR e.expires_at > $2)
ORDER BY e.created_at DESC, e.id LIMIT $3;

-- name: exp_count_side (text)
-- NIP-45 COUNT of one tag from the ordered side table alone (index-only).
SELECT count(*) FROM nostr.event_tags WHERE tag = $1;

-- ------------------------------------------------------- the real functions

-- name: req (text)
SELECT count(*) FROM nostr.req($1);

-- name: count (text)
SELECT nostr.count($1);
