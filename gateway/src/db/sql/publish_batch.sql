-- One round trip and one commit for a whole batch; one row per input, in
-- order, each with the id of the batch's transaction (NULL when nothing was
-- written), which names the batch in live delivery. The CTE runs the batch
-- before the transaction id is read.
WITH r AS MATERIALIZED (
    SELECT id, accepted, message, n FROM nostr.publish_batch($1::text[], $2::text[], $3::inet[]) WITH ORDINALITY AS p (id, accepted, message, n)
)
SELECT r.id, r.accepted, r.message, pg_current_xact_id_if_assigned()::text FROM r ORDER BY r.n
