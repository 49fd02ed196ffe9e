SELECT nostr.unallow_pubkey($1::text)
