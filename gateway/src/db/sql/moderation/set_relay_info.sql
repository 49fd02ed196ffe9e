-- field: name, description or icon; a NULL value clears it.
SELECT nostr.set_relay_info($1::text, $2::text)
