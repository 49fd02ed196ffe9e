-- Bulk load of the base events into part_flat (in the transaction that
-- created the tables, so wal_level=minimal skips WAL), from derive.py's
-- files. Of several versions of one replaceable address only the newest
-- (lowest id on ties) is kept, as the publish rules would have left it.
SELECT format('COPY part_flat.events FROM %L', f) FROM unnest(string_to_array(:'base_files', ' ')) f
\gexec
-- gen_events can write one event twice (a reaction drawn twice in the same
-- second; 6 ids at 10M); the relay refuses the second copy as a duplicate.
DELETE FROM part_flat.events e USING (
    SELECT id, min(seq) AS keep FROM part_flat.events GROUP BY id HAVING count(*) > 1) d
WHERE e.id = d.id AND e.seq <> d.keep;
DELETE FROM part_flat.events e USING (
    SELECT id FROM (
        SELECT id, row_number() OVER (PARTITION BY pubkey, kind, d_key ORDER BY created_at DESC, id) AS r
        FROM part_flat.events WHERE d_key IS NOT NULL) v
    WHERE r > 1) old
WHERE e.id = old.id;
INSERT INTO part_flat.event_tags SELECT unnest(tags), kind, created_at, id FROM part_flat.events;
