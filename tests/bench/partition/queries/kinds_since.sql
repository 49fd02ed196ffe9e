-- REQ {"kinds":[1],"since":<3 days before the dataset's end>,"limit":100}: plan.rs ordered(kind).
SELECT e.created_at, e.id, e.event FROM @S@.events e WHERE e.kind = 1 AND e.created_at >= @SINCE@
AND (e.expires_at IS NULL OR e.expires_at > @NOW@) ORDER BY e.created_at DESC, e.id LIMIT 100;
