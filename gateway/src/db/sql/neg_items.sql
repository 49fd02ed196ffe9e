-- NIP-77: (created_at, id) of the stored events matching one filter ($1),
-- as REQ would serve them (expired events and the kinds in $2 left out), at
-- most $3 of them (the caller asks for one more than it accepts, to tell
-- "too many"), newest first with ties by lowest id: the order of
-- events_created_idx (and of the kind and author indexes within one kind
-- or author), which the caller turns into the protocol's ascending order
-- while it streams the rows in, so there is nothing to sort here. Kinds,
-- authors and the time range ($4..$7) are applied here (through the
-- indexes); nostr.matches decides the rest of the filter, and only when
-- there is a rest ($8 false): it costs more than the scan.
SELECT created_at, id FROM nostr.events
WHERE (expires_at IS NULL OR expires_at > extract(epoch FROM now())::bigint)
  AND kind <> ALL($2::int[])
  AND ($4::int[] IS NULL OR kind = ANY($4::int[]))
  AND ($5::bytea[] IS NULL OR pubkey = ANY($5::bytea[]))
  AND ($6::bigint IS NULL OR created_at >= $6::bigint)
  AND ($7::bigint IS NULL OR created_at <= $7::bigint)
  AND ($8::boolean OR nostr.matches(event, $1::text))
ORDER BY created_at DESC, id
LIMIT $3::bigint
