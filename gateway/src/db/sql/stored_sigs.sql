-- The stored events among some ids, with their signatures. An import skips
-- a line without publishing it only when its id hashes right and both match:
-- then the line is that very event, and publishing it would answer duplicate.
SELECT id, nostr.sig(event) FROM nostr.events WHERE id = ANY($1::bytea[])
