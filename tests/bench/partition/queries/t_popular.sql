-- REQ {"#t":[@T_POP@ value],"limit":100}: plan.rs ordered(tag), the side table in
-- (tag, created_at) order joined to the events. @JOIN@ is `e.id = t.id` on flat; on
-- part_time it also names t.created_at, so each row reads one partition.
SELECT t.created_at, t.id, e.event FROM @S@.event_tags t JOIN @S@.events e ON @JOIN@
WHERE t.tag = E'@T_POP@' AND (e.expires_at IS NULL OR e.expires_at > @NOW@)
ORDER BY t.created_at DESC, t.id LIMIT 100;
