SELECT nostr.ban_event($1::text, $2::text)
