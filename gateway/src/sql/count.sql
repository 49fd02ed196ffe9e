-- NIP-45 COUNT.
SELECT nostr.count($1::text)
