-- A listener's check-in: the current snapshot, and the state of the transit
-- table (its incarnation, and below which transaction ids rows may be gone).
SELECT pg_current_snapshot()::text, s.epoch, s.purged_below::text FROM nostr.live_state() s
