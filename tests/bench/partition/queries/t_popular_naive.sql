-- t_popular.sql with today's join (`e.id = t.id` only): what part_time costs if
-- plan.rs were left unchanged.
SELECT t.created_at, t.id, e.event FROM @S@.event_tags t JOIN @S@.events e ON e.id = t.id
WHERE t.tag = E'@T_POP@' AND (e.expires_at IS NULL OR e.expires_at > @NOW@)
ORDER BY t.created_at DESC, t.id LIMIT 100;
