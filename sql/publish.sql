-- The relay's write path as SQL sees it: nostr.publish_batch, with the
-- senders' addresses as inet (the work is done by nostr._publish_batch,
-- nostr_pg/src/publish.rs, which takes them as text: pgrx 0.18 has no
-- arrays of inet). One row per input event, in order.
CREATE FUNCTION nostr.publish_batch(
    events text[],
    auth_pubkeys text[] DEFAULT NULL,
    client_addrs inet[] DEFAULT NULL
) RETURNS TABLE (id text, accepted boolean, message text)
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM nostr._publish_batch(events, auth_pubkeys, client_addrs::text[])
$$;
COMMENT ON FUNCTION nostr.publish_batch(text[], text[], inet[]) IS
    'Publishes events through every rule in one statement: one row (id, accepted, message) per event, in order, with its NIP-01 OK answer. auth_pubkeys[i] and client_addrs[i]: the NIP-42 pubkey and address of the sender of events[i], when known.';
