-- Stored events, newest first (ties by lowest id, as REQ orders them),
-- optionally those matching one filter ($1) and at most $2 of them; not
-- those past their NIP-40 expiration, which the relay no longer serves.
SELECT event::text FROM nostr.events
WHERE (expires_at IS NULL OR expires_at > extract(epoch FROM now())::bigint)
  AND ($1::text IS NULL OR nostr.matches(event, $1::text))
ORDER BY created_at DESC, id
LIMIT $2::bigint
