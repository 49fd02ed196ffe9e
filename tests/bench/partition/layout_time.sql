-- The partitioned layout under study (see layout_flat.sql for the flat one,
-- with the same columns).

-- part_time: both tables range-partitioned by created_at, one partition per
-- calendar month (UTC) of the dataset's year, one for anything older and one
-- for anything newer. The unique id and address rules cannot be a unique
-- index on the partitioned table (it would have to include created_at), so
-- they live in two unpartitioned tables with unique indexes of their own:
-- part_time.event_ids (every stored event's id, with its created_at, which
-- also lets an `ids` lookup find the one partition to read) and
-- part_time.addresses (the current event of each replaceable address).
CREATE SCHEMA part_time;
CREATE TABLE part_time.events (
    seq bigint NOT NULL, id bytea NOT NULL, pubkey bytea NOT NULL, created_at bigint NOT NULL,
    kind integer NOT NULL, tags text[] NOT NULL, d_key text, expires_at bigint, event text NOT NULL
) PARTITION BY RANGE (created_at);
CREATE TABLE part_time.event_tags (tag text NOT NULL, kind integer NOT NULL, created_at bigint NOT NULL, id bytea NOT NULL) PARTITION BY RANGE (created_at);
CREATE TABLE part_time.event_ids (id bytea NOT NULL, created_at bigint NOT NULL);
CREATE TABLE part_time.addresses (
    pubkey bytea NOT NULL, kind integer NOT NULL, d_key text NOT NULL,
    id bytea NOT NULL, created_at bigint NOT NULL
);

-- One partition per month from :first_month for :months months, one below
-- and one above; the same bounds for both tables.
SELECT format('CREATE TABLE part_time.%I PARTITION OF part_time.%I FOR VALUES FROM (%s) TO (%s)',
              t || '_' || name, t, lo, hi)
FROM unnest(ARRAY['events', 'event_tags']) t,
LATERAL (
    SELECT 'old' AS name, 'MINVALUE' AS lo, extract(epoch FROM :'first_month'::date)::bigint::text AS hi
    UNION ALL
    SELECT to_char(m, 'YYYY_MM'), extract(epoch FROM m)::bigint::text,
           extract(epoch FROM m + interval '1 month')::bigint::text
    FROM generate_series(:'first_month'::date, :'first_month'::date + (:months - 1) * interval '1 month', interval '1 month') m
    UNION ALL
    SELECT 'new', extract(epoch FROM :'first_month'::date + :months * interval '1 month')::bigint::text, 'MAXVALUE'
) b
\gexec
