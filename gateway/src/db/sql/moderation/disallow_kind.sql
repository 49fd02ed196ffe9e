SELECT nostr.disallow_kind($1::integer)
