-- nostr_pg in psql: a comment on every type, function, table, sequence and
-- column of nostr.events, so \dT+ nostr.*, \df+ nostr.* and \d+ nostr.events
-- explain themselves (the settings carry their descriptions in the
-- library: \dconfig+ nostr.*). Objects created in sql/*.sql with their
-- comment beside them are not repeated here. Run last (pulled in after
-- sql/privileges.sql); a #[pg_test] fails when an object lacks a comment.

COMMENT ON TYPE nostr.nostr_event IS
    'A verified Nostr event: the input recomputes the id over the canonical serialization and checks the BIP-340 signature; the text form is the exact canonical JSON. Casts from text and jsonb, to jsonb.';
COMMENT ON FUNCTION nostr.nostr_event_in(cstring) IS 'Input function of nostr_event: parses and verifies an event.';
COMMENT ON FUNCTION nostr.nostr_event_out(nostr.nostr_event) IS 'Output function of nostr_event: the canonical JSON.';
COMMENT ON FUNCTION nostr.nostr_event_from_jsonb(jsonb) IS 'Cast jsonb -> nostr_event (through text, so the same validation applies).';
COMMENT ON FUNCTION nostr.nostr_event_to_jsonb(nostr.nostr_event) IS 'Cast nostr_event -> jsonb.';

-- Accessors.
COMMENT ON FUNCTION nostr.id(nostr.nostr_event) IS 'The event id (64 hex characters).';
COMMENT ON FUNCTION nostr.pubkey(nostr.nostr_event) IS 'The author''s pubkey (64 hex characters).';
COMMENT ON FUNCTION nostr.sig(nostr.nostr_event) IS 'The BIP-340 signature (128 hex characters).';
COMMENT ON FUNCTION nostr.created_at(nostr.nostr_event) IS 'created_at, in seconds since 1970.';
COMMENT ON FUNCTION nostr.kind(nostr.nostr_event) IS 'The kind (0 to 65535).';
COMMENT ON FUNCTION nostr.content(nostr.nostr_event) IS 'The content.';
COMMENT ON FUNCTION nostr.tags(nostr.nostr_event) IS 'The tags as jsonb (an array of arrays of strings).';
COMMENT ON FUNCTION nostr.tag_values(nostr.nostr_event, text) IS 'The first values of every tag named name: nostr.tag_values(event, ''e'').';
COMMENT ON FUNCTION nostr.search_text(nostr.nostr_event) IS 'The content as NIP-50 full-text search indexes it.';
COMMENT ON FUNCTION nostr._tags_json(nostr.nostr_event) IS 'Internal: the tags as canonical JSON text (nostr.tags casts it to jsonb).';

-- Queries.
COMMENT ON FUNCTION nostr.req(text, text[]) IS
    'NIP-01 REQ: the stored events matching any of the filters (a JSON array), newest first, ties to the lowest id, each filter''s limit applied. viewers (hex pubkeys): DMs and gift wraps only of or to them.';
COMMENT ON FUNCTION nostr.req(jsonb, text[]) IS 'nostr.req with the filters as jsonb.';
COMMENT ON FUNCTION nostr.req_json(text, text[]) IS 'nostr.req as canonical JSON text, what a relay sends in EVENT.';
COMMENT ON FUNCTION nostr.count(text, text[]) IS 'NIP-45 COUNT: distinct stored events matching any of the filters (limits ignored), with nostr.req''s viewers restriction.';
COMMENT ON FUNCTION nostr.count(jsonb, text[]) IS 'nostr.count with the filters as jsonb.';
COMMENT ON FUNCTION nostr.matches(nostr.nostr_event, text) IS 'Whether the event matches the NIP-01 filter (an object, or an array of them).';
COMMENT ON FUNCTION nostr.matches(nostr.nostr_event, jsonb) IS 'nostr.matches with the filter as jsonb.';
COMMENT ON FUNCTION nostr._filter_plan(text) IS 'How a filter would be read (nothing, unordered, newest, ordered(...)): like EXPLAIN for the filter planner.';
COMMENT ON FUNCTION nostr._plan_cache_size() IS 'Internal: how many prepared plans this backend holds (at most 256).';

-- Publishing and the rules.
COMMENT ON FUNCTION nostr.publish(text, text) IS
    'Publishes one event through every rule: (id, accepted, message) with its NIP-01 OK answer. auth_pubkey: the NIP-42 authenticated pubkey (hex), for NIP-70.';
COMMENT ON FUNCTION nostr._publish_batch(text[], text[], text[]) IS 'Internal: nostr.publish_batch, with the addresses as text.';
COMMENT ON FUNCTION nostr.events_before_insert() IS 'Trigger: runs the publish rules for every row inserted into nostr.events (or stores a restored row as it is).';
COMMENT ON FUNCTION nostr._events_after_delete() IS 'Trigger: keeps nostr.event_tags in step with deleted events.';
COMMENT ON FUNCTION nostr._refuse_update() IS 'Trigger: events are immutable (delete and publish instead).';
COMMENT ON FUNCTION nostr._truncate_tags() IS 'Trigger: empties nostr.event_tags with nostr.events.';
COMMENT ON FUNCTION nostr._lock_author(bytea) IS 'Internal: takes the author''s advisory lock exclusively until commit (nostr.ban_pubkey).';
COMMENT ON FUNCTION nostr._lock_id(bytea) IS 'Internal: takes the event id''s advisory lock until commit (nostr.ban_event).';
COMMENT ON FUNCTION nostr._invalidate_moderation(oid) IS 'Internal: tells every backend at commit that a moderation table changed.';

-- Housekeeping.
COMMENT ON FUNCTION nostr.purge_expired() IS 'Removes NIP-40 expired events (never served meanwhile); returns how many.';
COMMENT ON FUNCTION nostr.purge_transit(interval) IS 'Removes nostr.transit rows of transactions that ended more than retention ago; returns how many.';
COMMENT ON FUNCTION nostr.housekeep(integer) IS 'One batch of housekeeping by hand (expired, transit, retention), at most max_rows rows each: (task, removed).';
COMMENT ON FUNCTION nostr._advance_transit_horizon(interval) IS 'Internal: moves nostr.transit_state.purged_below up to the oldest transaction running retention ago.';
COMMENT ON FUNCTION nostr._housekeeping_done(text, bigint, bigint) IS 'Internal: records one housekeeping run in nostr.housekeeping.';
COMMENT ON FUNCTION nostr._purge_expired_batch(integer) IS 'Internal: one batch of expired events removed.';
COMMENT ON FUNCTION nostr._purge_transit_batch(interval, integer) IS 'Internal: one batch of old transit rows removed.';
COMMENT ON FUNCTION nostr._purge_kinds_batch(integer, integer, bigint, integer) IS 'Internal: one batch of events of a kind range past their retention removed.';
COMMENT ON FUNCTION nostr._purge_other_kinds_batch(integer[], integer[], bigint, integer) IS 'Internal: one batch of events of the kinds no other retention entry names removed.';

-- Tables and the sequence.
COMMENT ON SEQUENCE nostr.event_seq IS 'Numbers accepted events (stored and ephemeral) in the order accepted.';
COMMENT ON TABLE nostr.event_tags IS 'Index of single-letter tags ordered by time, for "latest N with tag X"; kept by the triggers on nostr.events.';
COMMENT ON TABLE nostr.transit IS 'Live delivery: every accepted event with the id of the transaction that accepted it (transient; unlogged).';
COMMENT ON TABLE nostr.transit_state IS 'Live delivery: which incarnation of nostr.transit this is, and below which transaction ids rows may be gone.';
COMMENT ON TABLE nostr.transit_horizons IS 'Live delivery: the oldest running transaction at each purge.';
COMMENT ON TABLE nostr.deleted_ids IS 'NIP-09: event ids deleted by their author; such events are refused.';
COMMENT ON TABLE nostr.deleted_addresses IS 'NIP-09: replaceable addresses deleted by their author up to a time.';
COMMENT ON TABLE nostr.vanished IS 'NIP-62: authors who asked to vanish, and up to when.';

COMMENT ON COLUMN nostr.events.seq IS 'Order of acceptance (not commit order), assigned by the insert trigger; a row that brings its own is a restored one.';
COMMENT ON COLUMN nostr.events.id IS 'The event id (32 bytes), derived from event.';
COMMENT ON COLUMN nostr.events.pubkey IS 'The author (32 bytes), derived from event.';
COMMENT ON COLUMN nostr.events.created_at IS 'created_at (seconds since 1970), derived from event.';
COMMENT ON COLUMN nostr.events.kind IS 'The kind, derived from event.';
COMMENT ON COLUMN nostr.events.tags IS 'Index keys of single-letter tags (''e:<value>'', or ''e#<sha256>'' for long values), derived from event.';
COMMENT ON COLUMN nostr.events.d_key IS 'Replaceable address: '''' for kinds 0, 3, 10000-19999; the d tag key for 30000-39999; NULL otherwise.';
COMMENT ON COLUMN nostr.events.expires_at IS 'NIP-40 expiration, if any.';
COMMENT ON COLUMN nostr.events.event IS 'The verified event; its text form is the exact canonical JSON.';
