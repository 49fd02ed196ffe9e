-- REQ {"#t":[popular],"since":2025-03-10,"until":2025-03-12,"limit":100}: plan.rs ordered(tag)
-- with the window on the side table.
SELECT t.created_at, t.id, e.event FROM @S@.event_tags t JOIN @S@.events e ON @JOIN@
WHERE t.tag = E'@T_POP@' AND t.created_at >= 1741564800 AND t.created_at <= 1741737600
AND (e.expires_at IS NULL OR e.expires_at > @NOW@) ORDER BY t.created_at DESC, t.id LIMIT 100;
