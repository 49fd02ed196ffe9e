-- The relay policy NIP-11 advertises. NULL when a setting is neither set nor
-- registered (the extension's library not loaded in this session yet): the
-- caller then assumes the extension's default.
SELECT current_setting('nostr.min_pow', true),
       current_setting('nostr.max_future_seconds', true),
       current_setting('nostr.max_past_seconds', true),
       current_setting('nostr.max_limit', true),
       current_setting('nostr.max_filters', true)
