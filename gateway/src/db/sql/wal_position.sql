-- How far the primary has written its WAL (what replicas must replay).
SELECT pg_current_wal_lsn()::text
