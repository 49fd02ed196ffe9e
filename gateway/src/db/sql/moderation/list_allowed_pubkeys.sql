SELECT pubkey, reason FROM nostr.list_allowed_pubkeys()
