SELECT id, reason FROM nostr.list_allowed_events()
