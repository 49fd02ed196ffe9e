-- nostr_pg housekeeping: removing what nobody needs any more, a batch at a
-- time. The extension's background worker (nostr_pg/src/housekeeping/)
-- calls these in every database that has the extension, one transaction
-- per batch, and records each run here; `SELECT * FROM nostr.housekeep()`
-- runs one batch of each by hand (or from cron, without the worker).

-- What housekeeping removed, per kind of garbage:
--   expired    NIP-40 events past their expiration (never served meanwhile)
--   transit    rows of nostr.transit older than nostr.transit_retention
--   retention  events older than nostr.retention keeps their kind
CREATE TABLE nostr.housekeeping (
    task          text        PRIMARY KEY,
    -- Runs (a worker pass, or a nostr.housekeep() call), transactions
    -- (batches) and rows removed, since the extension was created.
    runs          bigint      NOT NULL DEFAULT 0,
    batches       bigint      NOT NULL DEFAULT 0,
    removed       bigint      NOT NULL DEFAULT 0,
    -- The last run: when it finished, what it removed, in how many batches.
    last_run      timestamptz NOT NULL,
    last_removed  bigint      NOT NULL DEFAULT 0,
    last_batches  bigint      NOT NULL DEFAULT 0
);
COMMENT ON TABLE nostr.housekeeping IS
    'What the housekeeping worker (or nostr.housekeep()) removed: expired events, old transit rows, events past retention.';

-- Records one run of `task` (its row appears with its first run, so the
-- extension script itself writes no rows: nothing to clash with a restore).
CREATE FUNCTION nostr._housekeeping_done(task text, removed bigint, batches bigint) RETURNS void
    LANGUAGE sql VOLATILE AS $$
    INSERT INTO nostr.housekeeping AS h (task, runs, batches, removed, last_run, last_removed, last_batches)
    VALUES ($1, 1, $3, $2, clock_timestamp(), $2, $3)
    ON CONFLICT (task) DO UPDATE
    SET runs = h.runs + 1, batches = h.batches + $3, removed = h.removed + $2,
        last_run = clock_timestamp(), last_removed = $2, last_batches = $3
$$;

-- One batch of NIP-40 expired events: at most max_rows. Rows another
-- transaction holds (a deletion removing them) are left for the next batch.
CREATE FUNCTION nostr._purge_expired_batch(max_rows integer) RETURNS bigint
    LANGUAGE sql VOLATILE AS $$
    WITH gone AS (
        DELETE FROM nostr.events WHERE id IN (
            SELECT id FROM nostr.events
            WHERE expires_at <= extract(epoch FROM now())::bigint
            LIMIT max_rows FOR UPDATE SKIP LOCKED)
        RETURNING 1
    )
    SELECT count(*) FROM gone
$$;

-- One batch of transit rows of transactions that finished at least
-- `retention` ago (see nostr.purge_transit in schema.sql): moves the purge
-- horizon, then removes at most max_rows below it. Transit rows are never
-- updated, so their ctid names them. Runs with the caller's rights (the
-- worker is a superuser), unlike nostr.purge_transit, which the insert path
-- of any role calls.
CREATE FUNCTION nostr._purge_transit_batch(retention interval, max_rows integer) RETURNS bigint
    LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    n  bigint;
BEGIN
    PERFORM nostr._advance_transit_horizon(retention);
    DELETE FROM nostr.transit WHERE ctid = ANY (ARRAY(
        SELECT t.ctid FROM nostr.transit t, nostr.transit_state s
        WHERE t.xid < s.purged_below LIMIT max_rows));
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

-- One batch of events of kinds first_kind..last_kind created before `cutoff`
-- (unix seconds): at most max_rows.
CREATE FUNCTION nostr._purge_kinds_batch(first_kind integer, last_kind integer, cutoff bigint, max_rows integer)
    RETURNS bigint LANGUAGE sql VOLATILE AS $$
    WITH gone AS (
        DELETE FROM nostr.events WHERE id IN (
            SELECT id FROM nostr.events
            WHERE kind BETWEEN first_kind AND last_kind AND created_at < cutoff
            LIMIT max_rows FOR UPDATE SKIP LOCKED)
        RETURNING 1
    )
    SELECT count(*) FROM gone
$$;

-- One batch of events of every kind outside the ranges first_kinds[i] ..
-- last_kinds[i] created before `cutoff`: at most max_rows.
CREATE FUNCTION nostr._purge_other_kinds_batch(first_kinds integer[], last_kinds integer[], cutoff bigint, max_rows integer)
    RETURNS bigint LANGUAGE sql VOLATILE AS $$
    WITH gone AS (
        DELETE FROM nostr.events WHERE id IN (
            SELECT e.id FROM nostr.events e
            WHERE e.created_at < cutoff
              AND NOT EXISTS (SELECT 1 FROM unnest(first_kinds, last_kinds) AS r (lo, hi)
                              WHERE e.kind BETWEEN r.lo AND r.hi)
            LIMIT max_rows FOR UPDATE OF e SKIP LOCKED)
        RETURNING 1
    )
    SELECT count(*) FROM gone
$$;
