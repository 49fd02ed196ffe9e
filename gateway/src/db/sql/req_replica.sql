-- A REQ's stored events on a hot standby, with the snapshot they were read
-- in (the transit table is unlogged, so a standby has no incarnation to
-- report; the gateway supplies the one it knows). One row per event, as in
-- req.sql and for the same reason.
SELECT s.snapshot, r.e
FROM (SELECT pg_current_snapshot()::text AS snapshot) s
LEFT JOIN LATERAL nostr.req_json($1::text, $2::text[]) WITH ORDINALITY AS r (e, n) ON true
ORDER BY r.n
