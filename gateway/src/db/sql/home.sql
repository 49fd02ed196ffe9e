-- What the relay's home page shows: the number of stored events (exact while
-- the table is small; past that the planner's estimate, since counting
-- millions of rows on every page view would cost more than the page is
-- worth), and the newest events of the filter $1, readable by anyone (no
-- viewers: restricted kinds are never served). Whether the number is an
-- estimate comes second.
SELECT CASE WHEN c.reltuples < 100000 THEN (SELECT count(*) FROM nostr.events)
            ELSE c.reltuples::bigint END,
       c.reltuples >= 100000,
       ARRAY(SELECT e FROM nostr.req_json($1::text, ARRAY[]::text[]) WITH ORDINALITY AS r (e, n) ORDER BY n)
FROM pg_class c
WHERE c.oid = 'nostr.events'::regclass
