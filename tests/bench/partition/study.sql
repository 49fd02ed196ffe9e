-- What both layouts share: the NIP-09 / NIP-62 tables the publish rules read
-- on every event (empty, as in the benchmark dataset), and the fresh events
-- for the ingest step (derived columns as derive.py wrote them; numbered
-- in file order).
CREATE SCHEMA part_study;
CREATE TABLE part_study.deleted_ids (id bytea NOT NULL, pubkey bytea NOT NULL, PRIMARY KEY (id, pubkey));
CREATE TABLE part_study.vanished (pubkey bytea PRIMARY KEY, until_created_at bigint NOT NULL);
CREATE TABLE part_study.deleted_addresses (
    pubkey bytea NOT NULL, kind integer NOT NULL, d_key text NOT NULL, until_created_at bigint NOT NULL,
    PRIMARY KEY (pubkey, kind, d_key));

CREATE TABLE part_study.fresh_rows (
    seq bigint NOT NULL, id bytea NOT NULL, pubkey bytea NOT NULL, created_at bigint NOT NULL,
    kind integer NOT NULL, tags text[] NOT NULL, d_key text, expires_at bigint, event text NOT NULL
);
SELECT format('COPY part_study.fresh_rows FROM %L', f) FROM unnest(string_to_array(:'fresh_files', ' ')) f
\gexec
CREATE TABLE part_study.fresh AS SELECT row_number() OVER (ORDER BY seq) AS n, * FROM part_study.fresh_rows;
CREATE UNIQUE INDEX ON part_study.fresh (n);
DROP TABLE part_study.fresh_rows;
