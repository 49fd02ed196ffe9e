SELECT id, reason FROM nostr.list_events_needing_moderation()
