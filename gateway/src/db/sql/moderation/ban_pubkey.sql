SELECT nostr.ban_pubkey($1::text, $2::text)
