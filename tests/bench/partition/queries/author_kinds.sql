-- REQ {"authors":[busiest, 500th busiest],"kinds":[1,7],"limit":100}: plan.rs ordered(author,kind),
-- one ordered scan per (author, kind), merged by the relay (the probes are left out).
SELECT e.created_at, e.id, e.event FROM @S@.events e WHERE e.pubkey = '\x@AUTH1@' AND e.kind = 1 AND (e.expires_at IS NULL OR e.expires_at > @NOW@) ORDER BY e.created_at DESC, e.id LIMIT 100;
SELECT e.created_at, e.id, e.event FROM @S@.events e WHERE e.pubkey = '\x@AUTH1@' AND e.kind = 7 AND (e.expires_at IS NULL OR e.expires_at > @NOW@) ORDER BY e.created_at DESC, e.id LIMIT 100;
SELECT e.created_at, e.id, e.event FROM @S@.events e WHERE e.pubkey = '\x@AUTH2@' AND e.kind = 1 AND (e.expires_at IS NULL OR e.expires_at > @NOW@) ORDER BY e.created_at DESC, e.id LIMIT 100;
SELECT e.created_at, e.id, e.event FROM @S@.events e WHERE e.pubkey = '\x@AUTH2@' AND e.kind = 7 AND (e.expires_at IS NULL OR e.expires_at > @NOW@) ORDER BY e.created_at DESC, e.id LIMIT 100;
