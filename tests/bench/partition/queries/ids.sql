-- REQ {"ids":[20 ids]}: plan.rs Plan::Unordered (primary-key lookups).
WITH m AS MATERIALIZED (
  SELECT id, created_at FROM (SELECT e.id, e.created_at FROM @S@.events e
    WHERE e.id = ANY ('@IDS@'::bytea[]) AND (e.expires_at IS NULL OR e.expires_at > @NOW@) OFFSET 0) f
  ORDER BY created_at DESC, id LIMIT 100)
SELECT m.created_at, m.id, e.event FROM m JOIN @S@.events e ON @MJOIN@;
