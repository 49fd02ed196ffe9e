-- Moves a mirror cursor forward (never back).
INSERT INTO nostr_mirror.cursors AS c (upstream, filter, last_created_at)
VALUES ($1::text, $2::text, $3::bigint)
ON CONFLICT (upstream, filter) DO UPDATE
SET last_created_at = greatest(c.last_created_at, EXCLUDED.last_created_at), updated_at = now()
