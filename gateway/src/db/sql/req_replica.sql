-- A REQ's stored events on a hot standby, with the snapshot they were read
-- in (the transit table is unlogged, so a standby has no incarnation to
-- report; the gateway supplies the one it knows).
SELECT pg_current_snapshot()::text,
       ARRAY(SELECT e FROM nostr.req_json($1::text, $2::text[]) WITH ORDINALITY AS r (e, n) ORDER BY n)
