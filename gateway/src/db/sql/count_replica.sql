-- NIP-45 COUNT on a hot standby, with the snapshot it was read in.
SELECT pg_current_snapshot()::text, nostr.count($1::text, $2::text[])
