-- Bulk load of the same base events into part_time, from the same files (so
-- both loads run at once, one per core), kept versions chosen as in
-- load_flat.sql; then the id and address tables from the stored rows.
SELECT format('COPY part_time.events FROM %L', f) FROM unnest(string_to_array(:'base_files', ' ')) f
\gexec
-- gen_events can write one event twice (a reaction drawn twice in the same
-- second; 6 ids at 10M); the relay refuses the second copy as a duplicate.
DELETE FROM part_time.events e USING (
    SELECT id, min(seq) AS keep FROM part_time.events GROUP BY id HAVING count(*) > 1) d
WHERE e.id = d.id AND e.seq <> d.keep;
DELETE FROM part_time.events e USING (
    SELECT id, created_at FROM (
        SELECT id, created_at, row_number() OVER (PARTITION BY pubkey, kind, d_key ORDER BY created_at DESC, id) AS r
        FROM part_time.events WHERE d_key IS NOT NULL) v
    WHERE r > 1) old
WHERE e.id = old.id AND e.created_at = old.created_at;
INSERT INTO part_time.event_tags SELECT unnest(tags), kind, created_at, id FROM part_time.events;
INSERT INTO part_time.event_ids SELECT id, created_at FROM part_time.events;
INSERT INTO part_time.addresses SELECT pubkey, kind, d_key, id, created_at FROM part_time.events WHERE d_key IS NOT NULL;
