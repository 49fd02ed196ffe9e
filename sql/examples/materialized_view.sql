-- Daily activity (events and distinct authors per day and kind) as a
-- materialized view that dashboards can read cheaply, kept fresh by running
-- this file again: the first run creates the view, every later run
-- refreshes it CONCURRENTLY, so readers are never blocked, and records when.
--
--   psql -d nostr -f sql/examples/materialized_view.sql
--   # every five minutes, from cron:
--   */5 * * * *  psql -d nostr -q -f /path/to/sql/examples/materialized_view.sql
--
--   SELECT * FROM stats.daily_activity WHERE day > current_date - 7 ORDER BY day, kind;
--   SELECT refreshed_at FROM stats.refreshed;   -- how fresh it is
CREATE SCHEMA IF NOT EXISTS stats;

SELECT to_regclass('stats.daily_activity') IS NULL AS missing \gset
\if :missing
CREATE MATERIALIZED VIEW stats.daily_activity AS
SELECT (to_timestamp(created_at) AT TIME ZONE 'UTC')::date AS day,
       kind,
       count(*)               AS events,
       count(DISTINCT pubkey) AS authors
FROM nostr.events
GROUP BY 1, 2;
-- REFRESH ... CONCURRENTLY needs a unique index over every row.
CREATE UNIQUE INDEX daily_activity_key ON stats.daily_activity (day, kind);
CREATE TABLE stats.refreshed (
    view          regclass PRIMARY KEY,
    refreshed_at  timestamptz NOT NULL
);
\else
REFRESH MATERIALIZED VIEW CONCURRENTLY stats.daily_activity;
\endif

INSERT INTO stats.refreshed (view, refreshed_at)
VALUES ('stats.daily_activity', clock_timestamp())
ON CONFLICT (view) DO UPDATE SET refreshed_at = excluded.refreshed_at;

SELECT count(*) AS days_and_kinds, sum(events) AS events FROM stats.daily_activity;
