SELECT nostr.unallow_event($1::text)
