SELECT nostr.allow_kind($1::integer)
