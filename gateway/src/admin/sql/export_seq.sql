-- Stored events in the order they were accepted (seq); otherwise as
-- export_newest.sql.
SELECT event::text FROM nostr.events
WHERE (expires_at IS NULL OR expires_at > extract(epoch FROM now())::bigint)
  AND ($1::text IS NULL OR nostr.matches(event, $1::text))
ORDER BY seq
LIMIT $2::bigint
