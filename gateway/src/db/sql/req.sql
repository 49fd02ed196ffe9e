-- Stored events for a REQ, already in NIP-01 order (newest first, lowest id on
-- ties), with the snapshot they were read in: one statement, one snapshot, so
-- live delivery can tell which accepted events the query already covered.
SELECT pg_current_snapshot()::text,
       ARRAY(SELECT e FROM nostr.req_json($1::text, $2::text[]) WITH ORDINALITY AS r (e, n) ORDER BY n)
