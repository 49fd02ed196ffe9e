SELECT nostr.unban_pubkey($1::text)
