-- The events the named transactions accepted, as canonical JSON, in the
-- order they were accepted.
SELECT xid::text, event FROM nostr.changes($1::text[]::xid8[])
