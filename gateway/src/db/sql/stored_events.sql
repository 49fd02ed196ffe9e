-- The stored canonical events among some ids (nostr-pg-admin sync sends
-- them to the other relay), not those past their NIP-40 expiration.
SELECT event::text FROM nostr.events
WHERE id = ANY($1::bytea[])
  AND (expires_at IS NULL OR expires_at > extract(epoch FROM now())::bigint)
