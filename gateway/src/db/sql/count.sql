-- NIP-45 COUNT, restricted to the viewers when $2 is not NULL.
SELECT nostr.count($1::text, $2::text[])
