SELECT nostr.allow_event($1::text, $2::text)
