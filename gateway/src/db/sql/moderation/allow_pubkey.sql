SELECT nostr.allow_pubkey($1::text, $2::text)
