SELECT kind FROM nostr.list_disallowed_kinds() AS kind ORDER BY kind
