-- Asked once per connection (WebSocket or HTTP) before it is served.
SELECT nostr.ip_blocked($1::text::inet)
