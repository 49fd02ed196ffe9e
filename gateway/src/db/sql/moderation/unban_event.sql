SELECT nostr.unban_event($1::text)
