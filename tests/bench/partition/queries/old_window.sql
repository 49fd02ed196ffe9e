-- REQ {"kinds":[1],"since":2025-03-10,"until":2025-03-12,"limit":100}: a window in an old month.
SELECT e.created_at, e.id, e.event FROM @S@.events e WHERE e.kind = 1 AND e.created_at >= 1741564800
AND e.created_at <= 1741737600 AND (e.expires_at IS NULL OR e.expires_at > @NOW@)
ORDER BY e.created_at DESC, e.id LIMIT 100;
