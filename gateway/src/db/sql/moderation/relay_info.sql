-- The name, description and icon set through NIP-86 (NULL where unset).
SELECT name, description, icon FROM nostr.relay_info()
