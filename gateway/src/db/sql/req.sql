-- Stored events for a REQ, already in NIP-01 order (newest first, lowest id on
-- ties), with what they were read at: one statement, one snapshot, so live
-- delivery can tell which accepted events the query already covered; and
-- the incarnation of the transit table (NULL when a crash has just emptied
-- it), so a gap in live delivery can tell whether this read is before it.
SELECT pg_current_snapshot()::text,
       (SELECT s.epoch FROM nostr.transit_state s),
       ARRAY(SELECT e FROM nostr.req_json($1::text, $2::text[]) WITH ORDINALITY AS r (e, n) ORDER BY n)
