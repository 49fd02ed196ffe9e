-- The events a NOTIFY nostr_events '<lo>:<hi>' names, as canonical JSON.
SELECT e FROM nostr.changes($1::bigint, $2::bigint) AS e
