-- One round trip and one commit for a whole batch; one row per input, in order.
SELECT id, accepted, message FROM nostr.publish_batch($1::text[], $2::text[])
