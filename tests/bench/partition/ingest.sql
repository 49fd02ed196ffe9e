-- The publish path of each layout, as nostr_pg's rules run it
-- (nostr_pg/src/rules.rs admit, trigger.rs): per event the advisory locks
-- (id, author shared, address), the duplicate, deleted-id, vanished and
-- deleted-address checks, the replaceable rule (newest wins, lowest id on
-- ties; the older version is deleted with its tag rows), the insert and the
-- tag side table rows. Not included, in either layout alike: parsing and
-- signature verification (the fresh rows come derived, see derive.py),
-- nostr.transit and NOTIFY, moderation and policy.
-- part_study.publish_<layout>(lo, hi) stores fresh events lo..hi (one
-- transaction per call, like one publish_batch) and returns how many it stored.

CREATE SEQUENCE part_study.seq START 100000000;

-- The extension's delete trigger (sql/schema.sql, _events_after_delete), for
-- each layout's tag side table.
CREATE FUNCTION part_flat.after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM part_flat.event_tags WHERE tag = ANY (OLD.tags) AND created_at = OLD.created_at AND id = OLD.id;
    RETURN NULL;
END $$;
CREATE TRIGGER events_after_delete AFTER DELETE ON part_flat.events
    FOR EACH ROW EXECUTE FUNCTION part_flat.after_delete();
-- On part_time the same statement finds its one partition by created_at;
-- the id table loses the row too.
CREATE FUNCTION part_time.after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM part_time.event_tags WHERE tag = ANY (OLD.tags) AND created_at = OLD.created_at AND id = OLD.id;
    DELETE FROM part_time.event_ids WHERE id = OLD.id;
    RETURN NULL;
END $$;
CREATE TRIGGER events_after_delete AFTER DELETE ON part_time.events
    FOR EACH ROW EXECUTE FUNCTION part_time.after_delete();

-- The locks and the checks both layouts share (rules.rs: before any check,
-- so concurrent publishers of one id or address wait for each other).
CREATE FUNCTION part_study.lock_and_check(d part_study.fresh) RETURNS boolean
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('id' || encode(d.id, 'hex'), 0));
    PERFORM pg_advisory_xact_lock_shared(hashtextextended('author' || encode(d.pubkey, 'hex'), 0));
    IF d.d_key IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('addr' || encode(d.pubkey, 'hex') || d.kind || d.d_key, 0));
    END IF;
    IF EXISTS (SELECT 1 FROM part_study.deleted_ids WHERE id = d.id AND pubkey = d.pubkey)
       OR EXISTS (SELECT 1 FROM part_study.vanished WHERE pubkey = d.pubkey AND until_created_at >= d.created_at)
       OR (d.d_key IS NOT NULL AND EXISTS (
           SELECT 1 FROM part_study.deleted_addresses
           WHERE pubkey = d.pubkey AND kind = d.kind AND d_key = d.d_key AND until_created_at >= d.created_at)) THEN
        RETURN false;
    END IF;
    RETURN true;
END $$;

-- Flat: the primary key and the unique address index are the rules' backstop.
CREATE FUNCTION part_study.publish_flat(lo bigint, hi bigint) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    d part_study.fresh;
    cur record;
    stored integer := 0;
BEGIN
    FOR d IN SELECT * FROM part_study.fresh WHERE n BETWEEN lo AND hi ORDER BY n LOOP
        CONTINUE WHEN NOT part_study.lock_and_check(d);
        CONTINUE WHEN EXISTS (SELECT 1 FROM part_flat.events WHERE id = d.id);
        IF d.d_key IS NOT NULL THEN
            SELECT id, created_at INTO cur FROM part_flat.events
            WHERE pubkey = d.pubkey AND kind = d.kind AND d_key = d.d_key;
            IF FOUND THEN
                CONTINUE WHEN (cur.created_at, d.id) >= (d.created_at, cur.id);
                DELETE FROM part_flat.events WHERE id = cur.id;
            END IF;
        END IF;
        INSERT INTO part_flat.events
        VALUES (nextval('part_study.seq'), d.id, d.pubkey, d.created_at, d.kind, d.tags, d.d_key, d.expires_at, d.event);
        INSERT INTO part_flat.event_tags SELECT unnest(d.tags), d.kind, d.created_at, d.id;
        stored := stored + 1;
    END LOOP;
    RETURN stored;
END $$;

-- Partitioned: the id goes into part_time.event_ids (its primary key is the
-- id rule's backstop across all partitions) and the address into
-- part_time.addresses (likewise for the address rule); the older version is
-- found there, and deleted from its one partition.
CREATE FUNCTION part_study.publish_time(lo bigint, hi bigint) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    d part_study.fresh;
    cur record;
    stored integer := 0;
BEGIN
    FOR d IN SELECT * FROM part_study.fresh WHERE n BETWEEN lo AND hi ORDER BY n LOOP
        CONTINUE WHEN NOT part_study.lock_and_check(d);
        CONTINUE WHEN EXISTS (SELECT 1 FROM part_time.event_ids WHERE id = d.id);
        IF d.d_key IS NOT NULL THEN
            SELECT id, created_at INTO cur FROM part_time.addresses
            WHERE pubkey = d.pubkey AND kind = d.kind AND d_key = d.d_key;
            IF FOUND THEN
                CONTINUE WHEN (cur.created_at, d.id) >= (d.created_at, cur.id);
                DELETE FROM part_time.events WHERE id = cur.id AND created_at = cur.created_at;
                UPDATE part_time.addresses SET id = d.id, created_at = d.created_at
                WHERE pubkey = d.pubkey AND kind = d.kind AND d_key = d.d_key;
            ELSE
                INSERT INTO part_time.addresses VALUES (d.pubkey, d.kind, d.d_key, d.id, d.created_at);
            END IF;
        END IF;
        INSERT INTO part_time.event_ids VALUES (d.id, d.created_at);
        INSERT INTO part_time.events
        VALUES (nextval('part_study.seq'), d.id, d.pubkey, d.created_at, d.kind, d.tags, d.d_key, d.expires_at, d.event);
        INSERT INTO part_time.event_tags SELECT unnest(d.tags), d.kind, d.created_at, d.id;
        stored := stored + 1;
    END LOOP;
    RETURN stored;
END $$;
