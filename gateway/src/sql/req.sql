-- Stored events for a REQ, already in NIP-01 order (newest first, lowest id on ties).
SELECT e FROM nostr.req_json($1::text) AS e
