SELECT kind FROM nostr.list_allowed_kinds() AS kind ORDER BY kind
