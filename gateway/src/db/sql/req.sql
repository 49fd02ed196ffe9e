-- Stored events for a REQ, already in NIP-01 order (newest first, lowest id on
-- ties), with what they were read at: one statement, one snapshot, so live
-- delivery can tell which accepted events the query already covered; and
-- the incarnation of the transit table (NULL when a crash has just emptied
-- it), so a gap in live delivery can tell whether this read is before it.
-- One row per event (one row with a NULL event when none match), not one
-- array: a page of large events (contact lists run to tens of kilobytes)
-- built into one array value costs several copies of the whole page into
-- freshly mapped memory, on each side of the connection.
SELECT s.snapshot, s.epoch, r.e
FROM (SELECT pg_current_snapshot()::text AS snapshot,
             (SELECT t.epoch FROM nostr.transit_state t) AS epoch) s
LEFT JOIN LATERAL nostr.req_json($1::text, $2::text[]) WITH ORDINALITY AS r (e, n) ON true
ORDER BY r.n
