SELECT id, reason FROM nostr.list_banned_events()
