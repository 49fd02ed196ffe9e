-- REQ {"limit":500}: plan.rs Plan::Newest, one ordered scan.
SELECT e.created_at, e.id, e.event FROM @S@.events e WHERE (e.expires_at IS NULL OR e.expires_at > @NOW@)
ORDER BY e.created_at DESC, e.id LIMIT 500;
