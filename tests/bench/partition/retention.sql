-- Retention of one month (:lo <= created_at < :hi; partitions :ev_part and
-- :tag_part), each layout in its own transaction; run with \timing on, each
-- statement preceded by its label.

\echo flat BEGIN
BEGIN;
\echo flat DELETE FROM events (the delete trigger removes the tag rows)
DELETE FROM part_flat.events WHERE created_at >= :lo AND created_at < :hi;
\echo flat COMMIT
COMMIT;
\echo flat VACUUM events, event_tags
VACUUM part_flat.events, part_flat.event_tags;

\echo partitioned BEGIN
BEGIN;
\echo partitioned DELETE FROM event_ids (the ids of the month)
DELETE FROM part_time.event_ids i USING part_time.:"ev_part" p WHERE i.id = p.id;
\echo partitioned DELETE FROM addresses (those of the month)
DELETE FROM part_time.addresses WHERE created_at >= :lo AND created_at < :hi;
\echo partitioned DETACH events partition
ALTER TABLE part_time.events DETACH PARTITION part_time.:"ev_part";
\echo partitioned DETACH event_tags partition
ALTER TABLE part_time.event_tags DETACH PARTITION part_time.:"tag_part";
\echo partitioned DROP both
DROP TABLE part_time.:"ev_part", part_time.:"tag_part";
\echo partitioned COMMIT
COMMIT;
\echo partitioned VACUUM event_ids, addresses
VACUUM part_time.event_ids, part_time.addresses;
