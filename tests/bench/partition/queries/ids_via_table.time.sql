-- ids.sql on part_time through part_time.event_ids: the id table names each
-- id's created_at, so each lookup reads one partition.
WITH m AS MATERIALIZED (
  SELECT i.id, i.created_at FROM part_time.event_ids i WHERE i.id = ANY ('@IDS@'::bytea[])
  ORDER BY i.created_at DESC, i.id LIMIT 100)
SELECT m.created_at, m.id, e.event FROM m JOIN part_time.events e ON e.id = m.id AND e.created_at = m.created_at
WHERE (e.expires_at IS NULL OR e.expires_at > @NOW@);
