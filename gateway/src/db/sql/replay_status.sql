-- A replica's health: whether it is still a standby, how far it has replayed
-- the primary's WAL, and how old the last transaction it replayed is.
SELECT pg_is_in_recovery(),
       pg_last_wal_replay_lsn()::text,
       extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8
