SELECT pubkey, reason FROM nostr.list_banned_pubkeys()
