-- Transactions that accepted events and committed between two snapshots.
SELECT x::text FROM nostr.committed_between($1::text::pg_snapshot, $2::text::pg_snapshot) AS x
