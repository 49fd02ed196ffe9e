-- nostr-pg-admin mirror's own table (not the extension's): per upstream
-- relay and filter, the newest created_at of the events it stored from
-- there up to a point where nothing before it is missing. A restart asks
-- the relay for events since then, minus a safety margin.
CREATE SCHEMA IF NOT EXISTS nostr_mirror;
CREATE TABLE IF NOT EXISTS nostr_mirror.cursors (
    upstream text NOT NULL,
    filter text NOT NULL,
    last_created_at bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (upstream, filter)
);
